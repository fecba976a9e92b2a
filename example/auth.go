package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/slogaudit/slogaudit/middleware"
	"github.com/slogaudit/slogaudit/query"
)

// tokens maps bearer tokens to principals. Lookups compare in constant time
// so that response timing does not reveal how much of a token was right.
type tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	digest    [sha256.Size]byte // of the token: the token itself is not kept
	principal string
}

// principals returns the principals that may authenticate, sorted, each
// once: names, not secrets, for the start event.
func (ts *tokens) principals() []string {
	var ps []string
	for _, e := range ts.entries {
		ps = append(ps, e.principal)
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

// loadTokens reads lines "token principal" (blank lines and # comments
// ignored).
func loadTokens(path string) (*tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ts := &tokens{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"token principal\"", path, n)
		}
		ts.add(fields[0], fields[1])
	}
	return ts, sc.Err()
}

func (ts *tokens) add(token, principal string) {
	ts.entries = append(ts.entries, tokenEntry{sha256.Sum256([]byte(token)), principal})
}

// lookup compares digests, in constant time and over every entry: the
// time taken says neither which token matched nor how long the tokens are
// (ConstantTimeCompare returns at once for a length mismatch).
func (ts *tokens) lookup(token string) string {
	d := sha256.Sum256([]byte(token))
	found := ""
	for _, e := range ts.entries {
		if subtle.ConstantTimeCompare(e.digest[:], d[:]) == 1 {
			found = e.principal
		}
	}
	return found
}

func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// principal is the principal of the request's bearer token, or "".
func (ts *tokens) principal(r *http.Request) string {
	if tok := bearer(r); tok != "" {
		return ts.lookup(tok)
	}
	return ""
}

// presented reports whether the request carries credentials at all: an
// Authorization header, of any scheme. One that does and has no principal
// presented invalid credentials (a wrong token, another scheme), which
// its records tell from a request that presented none.
func presented(r *http.Request) bool {
	return strings.TrimSpace(r.Header.Get("Authorization")) != ""
}

// Reasons of the audit event of a request refused for want of a principal.
const (
	reasonUnauthenticated    = "unauthenticated"     // no credentials presented
	reasonInvalidCredentials = "invalid_credentials" // credentials presented, not valid
)

// deniedReason is the reason of a refused request's audit event.
func deniedReason(r *http.Request) string {
	if presented(r) {
		return reasonInvalidCredentials
	}
	return reasonUnauthenticated
}

// Attributes that say how a request authenticated, on every record logged
// with its context (see contextAttrs).
const (
	authMethodKey = "auth.method" // "bearer": the principal's credential (the example knows no other)
	authResultKey = "auth.result" // "invalid_credentials": credentials presented but not valid
)

// authn is a request's authentication, done once by withAuth before the
// middleware runs, so that the middleware's principal and every record's
// auth attributes come from the same lookup.
type authn struct {
	principal string
	attrs     []slog.Attr // auth.method, auth.result

	once sync.Once
	all  []slog.Attr // middleware.Attrs and attrs, built once per request
}

type authnKey struct{}

// withAuth authenticates each request (bearer token) and puts the outcome
// into its context, for middleware.Options.Authenticate (authnPrincipal)
// and handler.Options.ContextAttrs (contextAttrs). Wrap the middleware
// with it.
func (ts *tokens) withAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := &authn{principal: ts.principal(r)}
		switch {
		case a.principal != "":
			a.attrs = []slog.Attr{slog.String(authMethodKey, "bearer")}
		case presented(r):
			a.attrs = []slog.Attr{slog.String(authResultKey, reasonInvalidCredentials)}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authnKey{}, a)))
	})
}

// wrap is middleware.Wrap(next, opts) behind withAuth, with opts.Authenticate
// set to what withAuth found: the example's handler chain.
func (ts *tokens) wrap(next http.Handler, opts middleware.Options) http.Handler {
	opts.Authenticate = authnPrincipal
	return ts.withAuth(middleware.Wrap(next, opts))
}

// authnPrincipal is the middleware's Authenticate: the principal withAuth
// found, or "".
func authnPrincipal(r *http.Request) string {
	if a, ok := r.Context().Value(authnKey{}).(*authn); ok {
		return a.principal
	}
	return ""
}

// contextAttrs is handler.Options.ContextAttrs: middleware.Attrs (who and
// where) and how the request authenticated.
func contextAttrs(ctx context.Context) []slog.Attr {
	as := middleware.Attrs(ctx)
	a, ok := ctx.Value(authnKey{}).(*authn)
	if !ok || len(a.attrs) == 0 {
		return as
	}
	a.once.Do(func() { a.all = append(as[:len(as):len(as)], a.attrs...) })
	return a.all
}

// adminPrincipal is the principal of the admin token.
const adminPrincipal = "admin"

// authorizeAudit lets only the admin read the audit log.
func (ts *tokens) authorizeAudit(r *http.Request) (string, error) {
	tok := bearer(r)
	if tok == "" {
		if presented(r) { // another scheme
			return "", query.ErrInvalidCredentials
		}
		return "", query.ErrUnauthenticated
	}
	p := ts.lookup(tok)
	switch p {
	case "":
		return "", query.ErrInvalidCredentials
	case adminPrincipal:
		return p, nil
	}
	return p, query.ErrForbidden
}

func randomToken(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
