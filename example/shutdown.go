package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// closeGrace is how long shutdown waits, once it has cut the connections
// of the requests still running, for their handlers to return.
const closeGrace = 5 * time.Second

// inFlight keeps the requests being served, so that the service does not
// close its audit trail under them: a record logged after the handler's
// Close is refused (handler.ErrClosed), which for a plain slog call means
// it is lost.
type inFlight struct {
	mu   sync.Mutex
	reqs map[*http.Request]struct{}
	idle chan struct{} // closed while no request is in flight; nil: none is
}

func (f *inFlight) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		if f.reqs == nil {
			f.reqs = map[*http.Request]struct{}{}
		}
		if len(f.reqs) == 0 {
			f.idle = make(chan struct{})
		}
		f.reqs[r] = struct{}{}
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.reqs, r)
			if len(f.reqs) == 0 {
				close(f.idle)
			}
			f.mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

// wait waits up to d for the requests in flight to end and returns those
// still running then, as "METHOD path", sorted.
func (f *inFlight) wait(d time.Duration) []string {
	f.mu.Lock()
	idle := f.idle
	f.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-time.After(d):
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var left []string
	for r := range f.reqs {
		left = append(left, r.Method+" "+r.URL.Path)
	}
	slices.Sort(left)
	return left
}

// shutdown stops srv: no new connections, then up to timeout for the
// requests in flight to end (http.Server.Shutdown). Past it, it cuts the
// connections left (their handlers' reads and writes fail) and waits up to
// grace for the handlers to return, so that what they log is in the
// audit trail before it closes. The error says what was cut off, and which
// requests were still running when shutdown gave up on them.
func shutdown(srv *http.Server, f *inFlight, timeout, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err == nil {
		return nil
	}
	srv.Close()
	left := f.wait(grace)
	if len(left) == 0 {
		return fmt.Errorf("requests still in flight after %v were cut off (their records are in the trail): %w", timeout, err)
	}
	const most = 20
	names := strings.Join(left[:min(len(left), most)], ", ")
	if len(left) > most {
		names += fmt.Sprintf(" and %d more", len(left)-most)
	}
	return errors.Join(err, fmt.Errorf("%d requests still running %v after their connections were cut; what they log once the audit trail is closed is refused: %s", len(left), grace, names))
}
