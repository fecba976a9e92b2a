package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A handler that goes on after its connection was cut is named in
// shutdown's error (which the example puts in the stop's outcome record);
// one that returns in time is not, and a server with nothing in flight
// stops without error.
func TestShutdownNamesRequestsLeft(t *testing.T) {
	var f inFlight
	release := make(chan struct{})
	started := make(chan string, 2)
	srv := httptest.NewServer(f.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.URL.Path
		if r.URL.Path == "/stubborn" {
			<-release // ignores its cut connection
			return
		}
		<-r.Context().Done() // returns once its connection is cut
	})))
	defer srv.Close()
	for _, path := range []string{"/stubborn", "/polite"} {
		go func() {
			if resp, err := http.Get(srv.URL + path); err == nil {
				resp.Body.Close()
			}
		}()
		<-started
	}
	err := shutdown(srv.Config, &f, 50*time.Millisecond, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "1 requests still running") || !strings.Contains(err.Error(), "GET /stubborn") || strings.Contains(err.Error(), "/polite") {
		t.Errorf("shutdown: %v", err)
	}
	close(release)
	if left := f.wait(5 * time.Second); len(left) != 0 {
		t.Errorf("still in flight: %v", left)
	}

	idle := httptest.NewServer(f.wrap(http.NotFoundHandler()))
	defer idle.Close()
	if resp, err := http.Get(idle.URL); err == nil {
		resp.Body.Close()
	}
	if err := shutdown(idle.Config, &f, time.Second, time.Second); err != nil {
		t.Errorf("shutdown with nothing in flight: %v", err)
	}
}
