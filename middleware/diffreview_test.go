package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/slogaudit/slogaudit/middleware"
)

// A loopback peer that is not a trusted proxy but forwards (a reverse proxy
// on the same host) has its X-Forwarded-For recorded as a claim, and the
// traceparent it passes through from the client is not continued either.
func TestLoopbackProxyTraceparentTrusted(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	e := newEnv(t, middleware.Options{})
	e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
	req := httptest.NewRequest("GET", "/x", nil)
	req.RemoteAddr = "127.0.0.1:4000"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	e.srv.Config.Handler.ServeHTTP(httptest.NewRecorder(), req)
	r := e.records(t)[0]
	if r[middleware.ClaimedForwardedKey] == nil {
		t.Fatalf("X-Forwarded-For believed: %v", r)
	}
	if r["trace_id"] == traceID {
		t.Errorf("the forwarded headers of this peer are a claim, its traceparent is continued: trace_id %v chosen by the client", r["trace_id"])
	}
}
