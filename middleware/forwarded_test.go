package middleware_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/middleware"
)

const (
	victimTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	victimTP    = "00-" + victimTrace + "-00f067aa0ba902b7-01"
)

// By default a loopback peer's traceparent is continued only when the
// request carries no forwarding header at all: a header that is present,
// even empty, means the peer is a proxy on this host relaying a client,
// whose traceparent must not give its records another request's trace id.
func TestLoopbackForwardingHeaderPresence(t *testing.T) {
	for _, tt := range []struct {
		name  string
		hdr   http.Header
		trust bool
	}{
		{"no forwarding header", http.Header{}, true},
		{"X-Forwarded-For", http.Header{"X-Forwarded-For": {"203.0.113.50"}}, false},
		{"Forwarded", http.Header{"Forwarded": {"for=203.0.113.50"}}, false},
		{"empty X-Forwarded-For", http.Header{"X-Forwarded-For": {""}}, false},
		{"empty Forwarded", http.Header{"Forwarded": {""}}, false},
		// The review's probe: the proxy writes Forwarded, the client adds an empty X-Forwarded-For.
		{"Forwarded and an empty X-Forwarded-For", http.Header{"Forwarded": {"for=203.0.113.50"}, "X-Forwarded-For": {""}}, false},
		{"X-Forwarded-For of blanks and commas", http.Header{"X-Forwarded-For": {" , ,"}}, false},
		{"Forwarded without for=", http.Header{"Forwarded": {"proto=https"}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, middleware.Options{})
			e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
			req := httptest.NewRequest("GET", "/x", nil)
			req.RemoteAddr = "127.0.0.1:5555"
			for k, v := range tt.hdr {
				req.Header[k] = v
			}
			req.Header.Set("traceparent", victimTP)
			e.srv.Config.Handler.ServeHTTP(httptest.NewRecorder(), req)
			r := e.records(t)[0]
			if got := r["trace_id"] == victimTrace; got != tt.trust {
				t.Errorf("traceparent continued: %v, want %v (record %v)", got, tt.trust, r)
			}
			if !tt.trust && r[middleware.ClaimedTraceKey] != victimTP {
				t.Errorf("%s = %v, want the claim %s", middleware.ClaimedTraceKey, r[middleware.ClaimedTraceKey], victimTP)
			}
		})
	}
}

// The same over a real connection from a loopback peer, as a proxy on this
// host would connect: an empty header line reaches the handler as a header
// that is present with an empty value.
func TestLoopbackEmptyForwardingHeaderOnTheWire(t *testing.T) {
	for _, line := range []string{"X-Forwarded-For:", "Forwarded:"} {
		t.Run(line, func(t *testing.T) {
			e := newEnv(t, middleware.Options{})
			e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
			c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: x\r\n%s\r\ntraceparent: %s\r\nConnection: close\r\n\r\n", line, victimTP)
			io.ReadAll(c)
			r := e.records(t)[0]
			if r["trace_id"] == victimTrace || r[middleware.ClaimedTraceKey] != victimTP {
				t.Errorf("trace_id %v, claim %v: the traceparent behind an empty %s was continued", r["trace_id"], r[middleware.ClaimedTraceKey], line)
			}
		})
	}
}
