package middleware

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// The forwarding headers: the one Options.ForwardedHeader names is read from
// a trusted proxy, any other is a claim.
const (
	xForwardedFor = "X-Forwarded-For"
	forwardedRFC  = "Forwarded" // RFC 7239
)

// forwardedHeader returns whether name, Options.ForwardedHeader, is
// Forwarded (true) or X-Forwarded-For (false, also for ""). Wrap panics on
// any other name: guessing which header the proxies write is the mistake
// this option exists to avoid.
func forwardedHeader(name string) (rfc7239 bool) {
	switch http.CanonicalHeaderKey(name) {
	case "", xForwardedFor:
		return false
	case forwardedRFC:
		return true
	}
	panic(fmt.Sprintf("middleware: Options.ForwardedHeader is %q: want %q or %q", name, xForwardedFor, forwardedRFC))
}

// forwarding reports whether h has a forwarding header at all, even an
// empty one: a peer that sends one relays someone else's request.
func forwarding(h http.Header) bool {
	return len(h.Values(xForwardedFor)) > 0 || len(h.Values(forwardedRFC)) > 0 || len(h.Values("X-Real-Ip")) > 0
}

// clientFromHops walks a forwarding chain from the right, skipping trusted
// proxies: the first hop that is not one is the client (the left-most hop
// when all are). Everything left of it could have been made up by the
// client, and is not read.
//
// ok is false when the chain does not name the client: it has no hop, or
// the walk reaches a hop that is not an IP address (garbage, Forwarded's
// "unknown" or an obfuscated identifier, an element without for=) before
// an untrusted one. The address returned is then the last trusted one the
// walk reached: the peer's when not even the right-most hop is an address.
func clientFromHops(h hops, proxies []netip.Prefix, peer netip.Addr) (client netip.Addr, ok bool) {
	client = peer
	for {
		a, more := h.next()
		if !more {
			return client, ok
		}
		if !a.IsValid() {
			return client, false
		}
		if !trusted(proxies, a) {
			return a, true
		}
		client, ok = a, true
	}
}

// hops reads the hops of a forwarding header right to left: the last line's
// last hop first (lines of a header are one comma-separated list).
type hops struct {
	lines   []string // the header's lines not yet read
	rest    string   // what is left of the line being read
	rfc7239 bool     // Forwarded (for= of each element), not X-Forwarded-For
}

// next returns the next hop leftwards, the zero Addr if it is not an IP
// address; more is false when no hop is left. Empty list elements are
// skipped, as HTTP's list syntax says (RFC 9110, 5.6.1). A forwarded IPv6
// address's zone names an interface of the host that wrote the hop, not of
// this one, and is dropped (it is free text, of any length); an
// IPv4-mapped IPv6 address is its IPv4 address.
func (h *hops) next() (a netip.Addr, more bool) {
	for {
		for h.rest == "" {
			if len(h.lines) == 0 {
				return netip.Addr{}, false
			}
			h.rest, h.lines = h.lines[len(h.lines)-1], h.lines[:len(h.lines)-1]
		}
		var elem string
		if h.rfc7239 {
			elem, h.rest = lastElement(h.rest)
		} else {
			i := strings.LastIndexByte(h.rest, ',')
			elem, h.rest = h.rest[i+1:], h.rest[:max(i, 0)]
		}
		if elem = strings.TrimSpace(elem); elem == "" {
			continue
		}
		if h.rfc7239 {
			return forwardedFor(elem), true
		}
		return peerAddr(elem).WithZone(""), true // an address, with or without a port
	}
}

// lastElement splits a Forwarded header line before its last element: at
// the last comma outside a quoted string. A quoted string is matched from
// its closing quote leftwards, so nothing a client wrote left of the
// elements its proxies appended changes how those read: an unmatched quote
// makes all of the line left of it one element, with no address.
func lastElement(s string) (elem, rest string) {
	for j := len(s) - 1; j >= 0; j-- {
		switch s[j] {
		case ',':
			return s[j+1:], s[:j]
		case '"':
			if j = openingQuote(s, j); j < 0 {
				return s, ""
			}
		}
	}
	return s, ""
}

// openingQuote returns the index of the quote that opens the quoted string
// that the quote at s[end] closes, -1 if there is none. A quote preceded by
// an odd number of backslashes is a quoted-pair, inside the string.
func openingQuote(s string, end int) int {
	for k := end - 1; k >= 0; k-- {
		if s[k] != '"' {
			continue
		}
		n := 0
		for n < k && s[k-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return k
		}
	}
	return -1
}

// forwardedFor returns the address of the for= parameter of a Forwarded
// element (RFC 7239: "for=192.0.2.60;proto=http;by=203.0.113.43",
// `for="[2001:db8::1]:4711"`). It is the zero Addr when the element has no
// for=, more than one, or one that is not an address: "unknown", an
// obfuscated identifier ("_hidden"), garbage.
func forwardedFor(elem string) netip.Addr {
	node, found := "", false
	for elem != "" {
		var pair string
		pair, elem = cutUnquoted(elem, ';')
		k, v, _ := strings.Cut(pair, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "for") {
			continue
		}
		if found {
			return netip.Addr{} // a parameter occurs once per element
		}
		node, found = strings.TrimSpace(v), true
	}
	if !found {
		return netip.Addr{}
	}
	node, ok := unquote(node)
	if !ok {
		return netip.Addr{}
	}
	return forwardedNode(node)
}

// cutUnquoted cuts s at the first sep outside a quoted string.
func cutUnquoted(s string, sep byte) (before, after string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// unquote returns the value of a token or quoted string; ok is false when
// v is neither.
func unquote(v string) (string, bool) {
	if !strings.HasPrefix(v, `"`) {
		return v, !strings.ContainsAny(v, `"\`)
	}
	if !strings.Contains(v, `\`) { // no quoted-pair: the text between the quotes
		if len(v) < 2 || strings.IndexByte(v[1:], '"') != len(v)-2 {
			return "", false
		}
		return v[1 : len(v)-1], true
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			return b.String(), i == len(v)-1
		case '\\':
			if i++; i == len(v) {
				return "", false
			}
			b.WriteByte(v[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", false // no closing quote
}

// forwardedNode parses a Forwarded node: an IPv4 address or a bracketed
// IPv6 one, either with an optional port (":4711", or an obfuscated
// ":_port"), or leniently an IPv6 address without brackets and port.
// "unknown" and obfuscated identifiers ("_hidden") are not addresses.
func forwardedNode(node string) netip.Addr {
	host, port := node, ""
	switch {
	case strings.HasPrefix(node, "["):
		end := strings.IndexByte(node, ']')
		if end < 0 {
			return netip.Addr{}
		}
		host, port = node[1:end], node[end+1:]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return netip.Addr{}
		}
	case strings.Count(node, ":") > 1: // an IPv6 address without brackets: no port
	default: // an IPv4 address, with or without a port
		if i := strings.IndexByte(node, ':'); i >= 0 {
			host, port = node[:i], node[i:]
		}
	}
	if port != "" && (port[0] != ':' || !validPort(port[1:])) {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// validPort reports whether p is an RFC 7239 node-port: 1 to 5 digits, or
// "_" and at least one letter, digit, '.', '_' or '-'.
func validPort(p string) bool {
	obf := strings.HasPrefix(p, "_")
	if p == "" || p == "_" || !obf && len(p) > 5 {
		return false
	}
	for _, c := range []byte(p) {
		ok := '0' <= c && c <= '9'
		if obf {
			ok = ok || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '_' || c == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}
