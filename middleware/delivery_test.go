package middleware_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/middleware"
)

// waitRecord polls the trail for the activity record of path, for at most
// 5s: the record of a request whose connection net/http aborts may be
// written after the client has seen the abort.
func (e *env) waitRecord(t *testing.T, path string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, r := range e.records(t) {
			if r["event"] == "http_request" && r["url.path"] == path {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no activity record for %s within 5s", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A handler that aborts with panic(http.ErrAbortHandler) before writing
// anything: the client gets no response, and the record says the request
// failed, with no status code and an error that says why. The panic still
// reaches net/http, which closes the connection.
func TestAbortHandlerBeforeResponseFailed(t *testing.T) {
	e := newEnv(t, middleware.Options{})
	e.mux.HandleFunc("GET /abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	resp, err := http.Get(e.srv.URL + "/abort")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("the client got a response (%d): the abort did not reach net/http", resp.StatusCode)
	}
	r := e.waitRecord(t, "/abort")
	if r["status"] != "failed" || r["level"] != "WARN" {
		t.Errorf("status %v level %v, want failed WARN: %v", r["status"], r["level"], r)
	}
	if c, ok := r["http.response.status_code"]; ok {
		t.Errorf("http.response.status_code %v: the handler wrote none and the client got none", c)
	}
	if msg, _ := r["error"].(string); !strings.Contains(msg, "aborted the response") || !strings.Contains(msg, "no response") {
		t.Errorf("error %q, want that the handler aborted the response", r["error"])
	}
	if r["msg"] != "GET /abort aborted" {
		t.Errorf("msg %q", r["msg"])
	}
}

// httputil.ReverseProxy aborts with http.ErrAbortHandler when the upstream
// fails while the body is copied: the client has the status line and part
// of the body. The record says failed, with the status code written and an
// error that says the response was aborted after it.
func TestAbortHandlerReverseProxyMidCopyFailed(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write([]byte(strings.Repeat("x", 1000)))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // 99,000 bytes short
		}
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	proxy.FlushInterval = -1 // the client has the status line and what was copied

	e := newEnv(t, middleware.Options{})
	e.mux.Handle("GET /proxy/", proxy)
	resp, err := http.Get(e.srv.URL + "/proxy/file")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Error("the client read the whole body of an aborted response")
	}
	resp.Body.Close()
	r := e.waitRecord(t, "/proxy/file")
	if r["status"] != "failed" || r["http.response.status_code"] != 200.0 {
		t.Errorf("status %v code %v, want failed 200: %v", r["status"], r["http.response.status_code"], r)
	}
	if msg, _ := r["error"].(string); !strings.Contains(msg, "aborted the response") || !strings.Contains(msg, "status code 200") {
		t.Errorf("error %q, want that the handler aborted the response after status code 200", r["error"])
	}
	if r["msg"] != "GET /proxy/ 200 aborted" {
		t.Errorf("msg %q", r["msg"])
	}
}
