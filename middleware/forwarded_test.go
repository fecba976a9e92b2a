package middleware_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/handler"
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
		// nginx's proxy_set_header X-Real-IP $remote_addr, alone: a relay too.
		{"X-Real-IP", http.Header{"X-Real-Ip": {"203.0.113.50"}}, false},
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

// absent is a claim that must not be in the record.
const absent = "\x00absent"

// client.address and the forwarding claims, for each forwarding header
// configuration, from trusted proxies (10.0.0.0/8) and an untrusted peer.
// Only Options.ForwardedHeader from a trusted proxy gives the address: the
// right-most hop that is not a trusted proxy. When that header names no
// client (empty, a hop that is not an address), client.address is the last
// trusted address reached and the header is recorded as a claim. Every
// other forwarding header is a claim, as received, never the address.
func TestClientAddressFromForwardingHeaders(t *testing.T) {
	const (
		proxy    = "10.0.0.2"
		client   = "203.0.113.50" // the client's address, as its proxy saw it
		spoofed  = "198.51.100.7" // what the client says it is
		stranger = "192.0.2.7"    // an untrusted peer
	)
	type hdr = http.Header
	for _, tt := range []struct {
		name   string
		header string // Options.ForwardedHeader
		remote string
		h      http.Header
		want   string // client.address
		xff    string // http.request.header.x-forwarded-for
		fwd    string // http.request.header.forwarded
	}{
		// X-Forwarded-For (the default).
		{"xff: one hop", "", proxy, hdr{"X-Forwarded-For": {client}}, client, absent, absent},
		{"xff: spoofed left of a trusted chain", "", proxy, hdr{"X-Forwarded-For": {spoofed + ", " + client + ", 10.0.0.3"}}, client, absent, absent},
		{"xff: all hops trusted: the left-most", "", proxy, hdr{"X-Forwarded-For": {"10.0.0.5, 10.0.0.3"}}, "10.0.0.5", absent, absent},
		{"xff: several lines are one list", "", proxy, hdr{"X-Forwarded-For": {spoofed, client + ", 10.0.0.3"}}, client, absent, absent},
		{"xff: an empty first line", "", proxy, hdr{"X-Forwarded-For": {"", client}}, client, absent, absent},
		{"xff: empty list elements are skipped", "", proxy, hdr{"X-Forwarded-For": {client + ", , 10.0.0.3,"}}, client, absent, absent},
		{"xff: empty: the proxy, and the claim", "", proxy, hdr{"X-Forwarded-For": {""}}, proxy, "", absent},
		{"xff: only commas and blanks", "", proxy, hdr{"X-Forwarded-For": {" , ,"}}, proxy, " , ,", absent},
		{"xff: garbage", "", proxy, hdr{"X-Forwarded-For": {"not-an-ip"}}, proxy, "not-an-ip", absent},
		{"xff: garbage behind a trusted hop: that hop", "", proxy, hdr{"X-Forwarded-For": {client + ", unknown, 10.0.0.3"}}, "10.0.0.3", client + ", unknown, 10.0.0.3", absent},
		{"xff: garbage left of the client is not read", "", proxy, hdr{"X-Forwarded-For": {"garbage, " + client}}, client, absent, absent},
		{"xff: IPv6 with port", "", proxy, hdr{"X-Forwarded-For": {"[2001:db8::1]:4711"}}, "2001:db8::1", absent, absent},
		{"xff: IPv6 zone dropped", "", proxy, hdr{"X-Forwarded-For": {"fe80::1%eth0"}}, "fe80::1", absent, absent},
		{"xff: IPv4-mapped", "", proxy, hdr{"X-Forwarded-For": {"::ffff:" + client}}, client, absent, absent},
		{"xff: IPv4 with port", "", proxy, hdr{"X-Forwarded-For": {client + ":4711"}}, client, absent, absent},
		{"xff: a Forwarded header is a claim", "", proxy, hdr{"Forwarded": {"for=" + client}}, proxy, absent, "for=" + client},
		// The configuration decides, not which header is present: with
		// X-Forwarded-For configured, a proxy that writes Forwarded lets
		// the client choose the address; its real one is in the claim.
		{"xff: misconfigured for a Forwarded proxy", "", proxy, hdr{"Forwarded": {"for=" + client}, "X-Forwarded-For": {spoofed}}, spoofed, absent, "for=" + client},
		{"xff: header name in any case", "x-forwarded-for", proxy, hdr{"X-Forwarded-For": {client}, "Forwarded": {"for=" + spoofed}}, client, absent, "for=" + spoofed},

		// Forwarded (RFC 7239). The review's probe: the proxy writes
		// Forwarded and passes the client's X-Forwarded-For through.
		{"fwd: the client's X-Forwarded-For is a claim", "Forwarded", proxy, hdr{"Forwarded": {"for=" + client}, "X-Forwarded-For": {spoofed}}, client, spoofed, absent},
		{"fwd: the client's empty X-Forwarded-For is a claim", "Forwarded", proxy, hdr{"Forwarded": {"for=" + client}, "X-Forwarded-For": {""}}, client, "", absent},
		{"fwd: no Forwarded, only X-Forwarded-For", "Forwarded", proxy, hdr{"X-Forwarded-For": {spoofed}}, proxy, spoofed, absent},
		{"fwd: other parameters", "Forwarded", proxy, hdr{"Forwarded": {"proto=https;For=" + client + ";by=10.0.0.2"}}, client, absent, absent},
		{"fwd: quoted IPv6 with port", "Forwarded", proxy, hdr{"Forwarded": {`for="[2001:db8::1]:4711"`}}, "2001:db8::1", absent, absent},
		{"fwd: quoted IPv6 without port", "Forwarded", proxy, hdr{"Forwarded": {`for="[2001:db8::1]"`}}, "2001:db8::1", absent, absent},
		{"fwd: IPv6 zone dropped", "Forwarded", proxy, hdr{"Forwarded": {`for="[fe80::1%25eth0]:80"`}}, "fe80::1", absent, absent},
		{"fwd: IPv6 without brackets (lenient)", "Forwarded", proxy, hdr{"Forwarded": {`for="2001:db8::7"`}}, "2001:db8::7", absent, absent},
		{"fwd: quoted IPv4 with port", "Forwarded", proxy, hdr{"Forwarded": {`for="` + client + `:4711"`}}, client, absent, absent},
		{"fwd: obfuscated port", "Forwarded", proxy, hdr{"Forwarded": {`for="` + client + `:_p1"`}}, client, absent, absent},
		{"fwd: IPv4-mapped", "Forwarded", proxy, hdr{"Forwarded": {`for="[::ffff:` + client + `]"`}}, client, absent, absent},
		{"fwd: multiple elements", "Forwarded", proxy, hdr{"Forwarded": {"for=" + spoofed + ";proto=http, for=" + client + ";by=10.0.0.2"}}, client, absent, absent},
		{"fwd: trusted chain", "Forwarded", proxy, hdr{"Forwarded": {"for=" + spoofed + ", for=" + client + ", for=10.0.0.3"}}, client, absent, absent},
		{"fwd: multiple lines", "Forwarded", proxy, hdr{"Forwarded": {"for=" + spoofed, "for=" + client + ";proto=https"}}, client, absent, absent},
		{"fwd: empty list elements are skipped", "Forwarded", proxy, hdr{"Forwarded": {"", "for=" + client + ", ,"}}, client, absent, absent},
		{"fwd: empty", "Forwarded", proxy, hdr{"Forwarded": {""}}, proxy, absent, ""},
		{"fwd: unknown", "Forwarded", proxy, hdr{"Forwarded": {"for=" + spoofed + ", for=unknown"}}, proxy, absent, "for=" + spoofed + ", for=unknown"},
		{"fwd: obfuscated", "Forwarded", proxy, hdr{"Forwarded": {"for=" + spoofed + ", for=_hidden"}}, proxy, absent, "for=" + spoofed + ", for=_hidden"},
		{"fwd: obfuscated behind a trusted hop: that hop", "Forwarded", proxy, hdr{"Forwarded": {"for=_hidden, for=10.0.0.3"}}, "10.0.0.3", absent, "for=_hidden, for=10.0.0.3"},
		{"fwd: an element without for=", "Forwarded", proxy, hdr{"Forwarded": {"for=" + spoofed + ", proto=https;by=10.0.0.2"}}, proxy, absent, "for=" + spoofed + ", proto=https;by=10.0.0.2"},
		{"fwd: two for= in an element", "Forwarded", proxy, hdr{"Forwarded": {"for=" + spoofed + ";for=" + client}}, proxy, absent, "for=" + spoofed + ";for=" + client},
		{"fwd: garbage", "Forwarded", proxy, hdr{"Forwarded": {"for=not-an-ip"}}, proxy, absent, "for=not-an-ip"},
		{"fwd: bracketed IPv4 is garbage", "Forwarded", proxy, hdr{"Forwarded": {`for="[` + client + `]"`}}, proxy, absent, `for="[` + client + `]"`},
		{"fwd: port too long", "Forwarded", proxy, hdr{"Forwarded": {`for="` + client + `:123456"`}}, proxy, absent, `for="` + client + `:123456"`},
		{"fwd: unterminated quote", "Forwarded", proxy, hdr{"Forwarded": {`for="` + client}}, proxy, absent, `for="` + client},
		{"fwd: a lone quote", "Forwarded", proxy, hdr{"Forwarded": {`for="`}}, proxy, absent, `for="`},
		{"fwd: a quote inside a quoted string", "Forwarded", proxy, hdr{"Forwarded": {`for="` + client + `"x"`}}, proxy, absent, `for="` + client + `"x"`},
		{"fwd: a quoted-pair", "Forwarded", proxy, hdr{"Forwarded": {`for="\` + client[:1] + client[1:] + `"`}}, client, absent, absent},
		// What a client writes left of its proxy's element cannot change
		// how that element reads: an unmatched quote does not swallow it...
		{"fwd: the client's unmatched quote", "Forwarded", proxy, hdr{"Forwarded": {`for="` + spoofed + ", for=" + client}}, client, absent, absent},
		// ... and a quoted string (a client-chosen Host the proxy quoted)
		// is one value, however many commas and for= it holds.
		{"fwd: a comma in a quoted string", "Forwarded", proxy, hdr{"Forwarded": {"for=" + client + `;host="x, for=` + spoofed + `"`}}, client, absent, absent},
		{"fwd: an escaped quote in a quoted string", "Forwarded", proxy, hdr{"Forwarded": {"for=" + client + `;host="x\", for=` + spoofed + `"`}}, client, absent, absent},
		{"fwd: header name in any case", "forwarded", proxy, hdr{"Forwarded": {"for=" + client}}, client, absent, absent},

		// An untrusted peer: its forwarding headers are claims, whichever is configured.
		{"untrusted: xff", "", stranger, hdr{"X-Forwarded-For": {client}}, stranger, client, absent},
		{"untrusted: empty xff", "", stranger, hdr{"X-Forwarded-For": {""}}, stranger, "", absent},
		{"untrusted: both, xff configured", "", stranger, hdr{"X-Forwarded-For": {client}, "Forwarded": {"for=" + spoofed}}, stranger, client, "for=" + spoofed},
		{"untrusted: both, Forwarded configured", "Forwarded", stranger, hdr{"X-Forwarded-For": {client}, "Forwarded": {"for=" + spoofed}}, stranger, client, "for=" + spoofed},
		{"untrusted: xff lines", "", stranger, hdr{"X-Forwarded-For": {spoofed, client}}, stranger, spoofed + "," + client, absent},
		{"untrusted: no forwarding header", "Forwarded", stranger, hdr{}, stranger, absent, absent},
		{"trusted: no forwarding header", "Forwarded", proxy, hdr{}, proxy, absent, absent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, middleware.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, ForwardedHeader: tt.header})
			e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {
				e.log.InfoContext(r.Context(), "inside", handler.Audit)
			})
			req := httptest.NewRequest("GET", "/x", nil)
			req.RemoteAddr = net.JoinHostPort(tt.remote, "5555")
			for k, v := range tt.h {
				req.Header[k] = v
			}
			e.srv.Config.Handler.ServeHTTP(httptest.NewRecorder(), req)
			rs := e.records(t)
			if len(rs) != 2 {
				t.Fatalf("%d records", len(rs))
			}
			for _, r := range rs {
				if r[middleware.ClientAddressKey] != tt.want {
					t.Errorf("client.address = %v, want %s", r[middleware.ClientAddressKey], tt.want)
				}
				for k, want := range map[string]string{middleware.ClaimedForwardedKey: tt.xff, middleware.ClaimedRFC7239Key: tt.fwd} {
					got, ok := r[k]
					if want == absent && ok || want != absent && got != want {
						t.Errorf("%s = %q (present %v), want %q", k, got, ok, want)
					}
				}
			}
		})
	}
}

// The review's first probe, with the proxy's header configured: a client
// behind a proxy that writes Forwarded cannot choose client.address with an
// X-Forwarded-For of its own, or hide it with an empty one.
func TestProbeForwardedSpoof(t *testing.T) {
	const attacker = "203.0.113.50" // the attacker's real address, as the proxy saw it
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tt := range []struct {
		name string
		xff  []string // what the attacker sent (passed through by the proxy)
	}{
		{"attacker-chosen X-Forwarded-For", []string{"198.51.100.7"}},
		{"empty X-Forwarded-For hides the client", []string{""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, middleware.Options{TrustedProxies: proxies, ForwardedHeader: "Forwarded"})
			e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
			req := httptest.NewRequest("GET", "/x", nil)
			req.RemoteAddr = "10.0.0.2:5555"             // the trusted proxy
			req.Header.Set("Forwarded", "for="+attacker) // what the proxy added
			req.Header["X-Forwarded-For"] = tt.xff       // what the client sent
			e.srv.Config.Handler.ServeHTTP(httptest.NewRecorder(), req)
			r := e.records(t)[0]
			if r["client.address"] != attacker {
				t.Errorf("client.address = %v, want the proxy-attested %s (Forwarded)", r["client.address"], attacker)
			}
			if r[middleware.ClaimedForwardedKey] != tt.xff[0] {
				t.Errorf("%s = %v, want the client's %q as a claim", middleware.ClaimedForwardedKey, r[middleware.ClaimedForwardedKey], tt.xff[0])
			}
		})
	}
}

// Options.ForwardedHeader is one of the two headers; anything else is a
// mistake Wrap refuses rather than guess.
func TestForwardedHeaderOption(t *testing.T) {
	for _, name := range []string{"", "X-Forwarded-For", "x-forwarded-for", "Forwarded", "FORWARDED"} {
		middleware.Wrap(http.NotFoundHandler(), middleware.Options{ForwardedHeader: name})
	}
	for _, name := range []string{"X-Real-IP", "X-Forwarded", "Forwarded-For", "X-Forwarded-For,Forwarded"} {
		func() {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "ForwardedHeader") {
					t.Errorf("ForwardedHeader %q: panic %v", name, p)
				}
			}()
			middleware.Wrap(http.NotFoundHandler(), middleware.Options{ForwardedHeader: name})
		}()
	}
}
