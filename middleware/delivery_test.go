package middleware_test

import (
	"context"
	"fmt"
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

// cutOff returns the attributes that say the response did not reach the
// client, those present in r.
func cutOff(r map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{middleware.ResponseWriteErrorKey, middleware.CancelCauseKey} {
		if v, ok := r[k]; ok {
			out[k] = v
		}
	}
	return out
}

// A client that disconnects while the handler works: the handler's outcome
// is kept (success, 200: the action may well have happened), and the record
// says the response was not delivered: the write that failed, and the
// request context's cancellation.
func TestClientGoneResponseNotDelivered(t *testing.T) {
	e := newEnv(t, middleware.Options{})
	started := make(chan struct{})
	type result struct {
		err     error
		written int64
	}
	done := make(chan result, 1)
	e.mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // the client went away
		var res result
		chunk := []byte(strings.Repeat("x", 64<<10))
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			n, err := w.Write(chunk)
			res.written += int64(n)
			if err != nil {
				res.err = err
				break
			}
		}
		done <- res
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/slow", nil)
	go func() { <-started; cancel() }()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the client got a response")
	}
	res := <-done
	if res.err == nil {
		t.Fatal("the handler's writes to a closed connection did not fail within 5s")
	}
	r := e.waitRecord(t, "/slow")
	if r["status"] != "success" || r["http.response.status_code"] != 200.0 || r["http.response.body.size"] != float64(res.written) {
		t.Errorf("status %v code %v size %v, want the handler's success 200 and %d bytes: %v",
			r["status"], r["http.response.status_code"], r["http.response.body.size"], res.written, r)
	}
	if got := cutOff(r); got[middleware.ResponseWriteErrorKey] != res.err.Error() || got[middleware.CancelCauseKey] != context.Canceled.Error() {
		t.Errorf("%v, want %s=%q and %s=%q", got, middleware.ResponseWriteErrorKey, res.err, middleware.CancelCauseKey, context.Canceled)
	}
}

// The client leaves and the handler writes a short response that net/http
// buffers (no write fails) or nothing at all: the cancellation says the
// response was not delivered.
func TestClientGoneBufferedResponseNotDelivered(t *testing.T) {
	e := newEnv(t, middleware.Options{})
	for _, path := range []string{"/short", "/nothing"} {
		started := make(chan struct{})
		e.mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			close(started)
			<-r.Context().Done()
			if path == "/short" {
				if _, err := w.Write([]byte("done")); err != nil {
					t.Errorf("a buffered write failed: %v", err)
				}
			}
		})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
		go func() { <-started; cancel() }()
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("the client got a response")
		}
		r := e.waitRecord(t, path)
		if r["status"] != "success" || r["http.response.status_code"] != 200.0 {
			t.Errorf("%s: status %v code %v, want the handler's success 200", path, r["status"], r["http.response.status_code"])
		}
		if got := cutOff(r); len(got) != 1 || got[middleware.CancelCauseKey] != context.Canceled.Error() {
			t.Errorf("%s: %v, want only %s=%q", path, got, middleware.CancelCauseKey, context.Canceled)
		}
	}
}

// Responses that reach the client are not marked as cut off: a plain one,
// HEAD (net/http drops the body the handler writes), a 304 whose handler
// writes a body anyway (http.ErrBodyNotAllowed is the handler's mistake,
// not a lost response), and streams flushed through http.Flusher and
// through http.ResponseController that end when the client leaves.
func TestDeliveredResponsesNotCutOff(t *testing.T) {
	e := newEnv(t, middleware.Options{})
	e.mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
	e.mux.HandleFunc("GET /notmodified", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotModified)
		if _, err := w.Write([]byte("body")); err != http.ErrBodyNotAllowed {
			t.Errorf("a 304's body: %v", err)
		}
	})
	stream := func(flush func(http.ResponseWriter) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				if err := flush(w); err != nil {
					t.Errorf("flush: %v", err)
					return
				}
			}
			<-r.Context().Done() // a stream ends when the client goes
		}
	}
	e.mux.HandleFunc("GET /flusher", stream(func(w http.ResponseWriter) error {
		f, ok := w.(http.Flusher)
		if !ok {
			return fmt.Errorf("%T is not an http.Flusher", w)
		}
		f.Flush()
		return nil
	}))
	e.mux.HandleFunc("GET /controller", stream(func(w http.ResponseWriter) error {
		return http.NewResponseController(w).Flush()
	}))

	for _, c := range []struct {
		method, path string
		code         float64
	}{{"GET", "/plain", 200}, {"HEAD", "/plain", 200}, {"GET", "/notmodified", 304}} {
		req, _ := http.NewRequest(c.method, e.srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != int(c.code) {
			t.Errorf("%s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/flusher", "/controller"} {
		// Each event arrives while the handler runs: it is flushed.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len("data: 0\n\n")*3)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Errorf("%s: the stream's events: %v", path, err)
		}
		cancel() // the client leaves
		resp.Body.Close()
	}

	want := map[string]float64{"GET /plain": 200, "HEAD /plain": 200, "GET /notmodified": 304, "GET /flusher": 200, "GET /controller": 200}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := map[string]map[string]any{}
		for _, r := range e.records(t) {
			if r["event"] == "http_request" {
				got[r["http.request.method"].(string)+" "+r["url.path"].(string)] = r
			}
		}
		if len(got) == len(want) {
			for k, code := range want {
				r := got[k]
				if r == nil {
					t.Fatalf("no record of %s: %v", k, got)
				}
				if r["status"] != "success" || r["http.response.status_code"] != code {
					t.Errorf("%s: status %v code %v, want success %v", k, r["status"], r["http.response.status_code"], code)
				}
				if c := cutOff(r); len(c) > 0 {
					t.Errorf("%s marked as cut off: %v", k, c)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("records of %d requests within 5s, want %d: %v", len(got), len(want), got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An informational response (103 Early Hints) comes before the final one:
// the record has the final status code.
func TestEarlyHintsRecordsFinalStatus(t *testing.T) {
	e := newEnv(t, middleware.Options{})
	e.mux.HandleFunc("GET /hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusNotFound)
	})
	resp, err := http.Get(e.srv.URL + "/hints")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("client got %d", resp.StatusCode)
	}
	if r := e.waitRecord(t, "/hints"); r["http.response.status_code"] != float64(http.StatusNotFound) {
		t.Errorf("http.response.status_code %v, want 404: %v", r["http.response.status_code"], r)
	}
}
