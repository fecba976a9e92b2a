package middleware_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/slogaudit/slogaudit/middleware"
)

// discardWriter is a ResponseWriter that keeps nothing but its header map,
// reused across iterations (Wrap sets the same two headers each time).
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// benchWrap serves req through Wrap (private tracer provider, an activity
// log that discards) to a handler that does nothing: what the middleware
// costs a request.
func benchWrap(b *testing.B, opts middleware.Options, req *http.Request) {
	opts.ActivityLog = slog.New(slog.DiscardHandler)
	h := middleware.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), opts)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

func benchRequest(remote string, hdr ...string) *http.Request {
	req := httptest.NewRequest("GET", "/servers/obsidian", nil)
	req.RemoteAddr = remote
	req.Header.Set("User-Agent", "curl/8")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return req
}

var benchProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}

// BenchmarkWrap: the common case, a request without forwarding headers,
// and requests through a trusted proxy.
func BenchmarkWrap(b *testing.B) {
	b.Run("NoForwarding", func(b *testing.B) {
		benchWrap(b, middleware.Options{TrustedProxies: benchProxies}, benchRequest("192.0.2.7:51234"))
	})
	b.Run("LoopbackTraceparent", func(b *testing.B) {
		benchWrap(b, middleware.Options{}, benchRequest("127.0.0.1:51234",
			"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	})
	b.Run("TrustedXFF", func(b *testing.B) {
		benchWrap(b, middleware.Options{TrustedProxies: benchProxies}, benchRequest("10.0.0.2:51234",
			"X-Forwarded-For", "203.0.113.9, 10.0.0.3"))
	})
	b.Run("TrustedForwarded", func(b *testing.B) {
		benchWrap(b, middleware.Options{TrustedProxies: benchProxies, ForwardedHeader: "Forwarded"}, benchRequest("10.0.0.2:51234",
			"Forwarded", `for="[2001:db8::1]:4711";proto=https, for=10.0.0.3`))
	})
	b.Run("UntrustedXFF", func(b *testing.B) {
		benchWrap(b, middleware.Options{TrustedProxies: benchProxies}, benchRequest("192.0.2.7:51234",
			"X-Forwarded-For", "203.0.113.9"))
	})
}
