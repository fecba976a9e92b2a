package middleware_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/middleware"
)

// bodySink keeps the audit records written, as sealed.
type bodySink struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (s *bodySink) Audit(body []byte, _ chain.Position) {
	s.mu.Lock()
	s.bodies = append(s.bodies, append(append([]byte("{"), body...), '}'))
	s.mu.Unlock()
}

func (s *bodySink) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bodies
	s.bodies = nil
	return b
}

// Bounds of what a request's headers put into its records, in characters
// (a marker "…" may follow a cut value).
var claimBounds = map[string]int{
	middleware.ClaimedForwardedKey: 256 + len("…"),
	middleware.ClaimedRFC7239Key:   256 + len("…"),
	middleware.ClaimedClientKey:    128 + len("…"),
	middleware.UserAgentKey:        256 + len("…"),
	middleware.ClaimedRequestIDKey: 128,
	middleware.ClaimedTraceKey:     55,
	middleware.SessionKey:          len("sha256:") + 16,
	"url.path":                     1024 + len("…"),
	"url.query":                    1024 + len("…"),
}

// FuzzWrap sends requests with arbitrary forwarding, client id, request id,
// traceparent, user agent, cookie and authorization headers from arbitrary
// remote addresses through middleware.Wrap, with a handler that writes an
// audit record, each through one Wrap per Options.ForwardedHeader, and checks
// every record: valid UTF-8 JSON; client.address absent or a valid IP, the
// peer's own unless the peer is a trusted proxy; a forwarding header that is
// present recorded as a claim unless it is the configured one from a trusted
// proxy, one that is absent not; the claims bounded; user.id only what
// Authenticate returned.
func FuzzWrap(f *testing.F) {
	for _, s := range [][9]string{
		{"192.0.2.1:1234", "", "", "", "", "", "", "", ""},
		{"10.0.0.2:80", "203.0.113.9, 10.0.0.3", "", "client-7", "req-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "curl/8", "sid=abc", "Bearer good-token"},
		{"198.51.100.4:9", "1.2.3.4", "for=5.6.7.8", " me ", "x y", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "Mozilla", "sid=", "Bearer bad"},
		{"10.1.1.1:5", "", `for="[2001:db8::1]:4711";proto=https, for=10.0.0.9`, "", "", "", "", "", ""},
		{"[::1]:443", "fe80::1%eth0", "", "", "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "", ""},
		{"[fe80::1%eth0]:1", "", "", "", "", "", "", "", ""},
		{"10.0.0.2:80", "fe80::1%" + strings.Repeat("z", 300), "", "", "", "", "", "", ""},
		{"10.0.0.2:80", "::ffff:10.0.0.1, 10.0.0.5", "", "", "", "", "", "", ""},
		{"garbage", "\xff\xfe", "for=\xff", "\xc0\x80" + strings.Repeat("é", 100), strings.Repeat("a", 129), "ff-" + strings.Repeat("0", 60), strings.Repeat("\u2028 ", 200), "sid=\x00", "Bearer good-token\x00"},
		{"", "unknown", "for=_hidden, for=unknown", "", "", "", "", "", ""},
		{"10.0.0.2:80", "", "", "", "", "", "", "", "user.id=eve"},
		{"10.0.0.2:80", "\n", "for=203.0.113.50", "", "", "", "", "", ""},
		{"127.0.0.1:80", "198.51.100.7", "\n\nfor=\"198.51.100.7, for=203.0.113.50;host=\"x\\\", for=1.1.1.1\"", "", "", "", "", "", ""},
		{"10.0.0.2:80", " , ", "for=_hidden, for=10.0.0.3, for=unknown;for=1.2.3.4, proto=https", "", "", "", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], "/p", "q=1")
	}
	sink := &bodySink{}
	dir := f.TempDir()
	h, err := handler.New(handler.Options{Dir: dir, App: slog.DiscardHandler, AuditOnlyToFile: true,
		ContextAttrs: middleware.Attrs, Sinks: []handler.Sink{sink}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close() })
	log := slog.New(h)
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	// One handler per Options.ForwardedHeader, each request through both.
	var wrapped [2]http.Handler
	for i, fh := range [...]string{"X-Forwarded-For", "Forwarded"} {
		wrapped[i] = middleware.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.InfoContext(r.Context(), "inside", handler.Audit, "n", 1)
			w.WriteHeader(http.StatusTeapot)
		}), middleware.Options{
			ActivityLog:     handler.Logger(log),
			TrustedProxies:  proxies,
			ForwardedHeader: fh,
			SessionCookie:   "sid",
			Authenticate: func(r *http.Request) string {
				if r.Header.Get("Authorization") == "Bearer good-token" {
					return "alice"
				}
				return ""
			},
		})
	}
	f.Fuzz(func(t *testing.T, remote, xff, fwd, clientID, reqID, tp, ua, cookie, authz, path, rawQuery string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.URL.Path, r.URL.RawQuery = path, rawQuery
		for k, v := range map[string]string{"X-Forwarded-For": xff, "Forwarded": fwd, "X-Client-ID": clientID,
			"X-Request-ID": reqID, "Traceparent": tp, "User-Agent": ua, "Cookie": cookie, "Authorization": authz} {
			if v == "" {
				continue
			}
			for _, one := range strings.Split(v, "\n") { // "\n": one empty header line
				r.Header.Add(k, one)
			}
		}
		principal := ""
		if r.Header.Get("Authorization") == "Bearer good-token" {
			principal = "alice"
		}
		peer := fuzzPeer(remote)
		peerTrusted := false
		for _, p := range proxies {
			peerTrusted = peerTrusted || peer.IsValid() && p.Contains(peer)
		}
		for fh := range wrapped {
			sink.take()
			w := httptest.NewRecorder()
			wrapped[fh].ServeHTTP(w, r)
			if w.Code != http.StatusTeapot {
				t.Fatalf("status %d", w.Code)
			}
			bodies := sink.take()
			if len(bodies) != 2 {
				t.Fatalf("%d audit records, want the handler's and the activity record", len(bodies))
			}
			for _, b := range bodies {
				if !utf8.Valid(b) {
					t.Fatalf("record is not valid UTF-8: %q", b)
				}
				var m map[string]any
				dec := json.NewDecoder(bytes.NewReader(b))
				dec.UseNumber()
				if err := dec.Decode(&m); err != nil {
					t.Fatalf("record is not JSON: %v\n%s", err, b)
				}
				if got, ok := m[middleware.PrincipalKey]; principal == "" && ok || principal != "" && got != principal {
					t.Fatalf("user.id %v, Authenticate said %q\n%s", got, principal, b)
				}
				for k, max := range claimBounds {
					// In characters: an invalid byte is written as U+FFFD,
					// three bytes.
					if s, ok := m[k].(string); ok && utf8.RuneCountInString(s) > max {
						t.Fatalf("%s is %d characters (at most %d): %q", k, utf8.RuneCountInString(s), max, s)
					}
				}
				// A forwarding header is a claim unless it is the configured
				// one from a trusted proxy; an absent one is not.
				for i, k := range [...]string{middleware.ClaimedForwardedKey, middleware.ClaimedRFC7239Key} {
					present := len(r.Header.Values([...]string{"X-Forwarded-For", "Forwarded"}[i])) > 0
					_, claimed := m[k]
					if !present && claimed || present && (!peerTrusted || i != fh) && !claimed {
						t.Fatalf("header present %v, %s recorded %v (ForwardedHeader %d, peer %v trusted %v)\n%s", present, k, claimed, fh, peer, peerTrusted, b)
					}
				}
				ca, ok := m[middleware.ClientAddressKey]
				if !ok {
					if peer.IsValid() {
						t.Fatalf("no client.address for peer %v\n%s", peer, b)
					}
					continue
				}
				s, _ := ca.(string)
				a, err := netip.ParseAddr(s)
				if err != nil || a.String() != s {
					t.Fatalf("client.address %q is not an IP address\n%s", s, b)
				}
				if a.Zone() != "" && a != peer {
					t.Fatalf("client.address %q has a zone the peer does not\n%s", s, b)
				}
				if !peerTrusted && a != peer {
					t.Fatalf("client.address %q from untrusted peer %v\n%s", s, peer, b)
				}
			}
		}
	})
}

// fuzzPeer is the IP address of a RemoteAddr, as the middleware should
// read it.
func fuzzPeer(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
