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

// role is what a principal may do (least privilege, PCI DSS 7.2): each
// role may do everything the roles below it may.
type role int

const (
	roleNone     role = iota // no role: may do nothing (no principal, or one whose role is not known)
	roleViewer               // lists servers and credential names, never a credential's value
	roleOperator             // a viewer that also starts and stops servers and reads credential values
	roleAdmin                // everything: also stores and deletes credentials and reads the audit log
)

var roleNames = [...]string{roleNone: "none", roleViewer: "viewer", roleOperator: "operator", roleAdmin: "admin"}

func (r role) String() string { return roleNames[r] }

// parseRole is the role named s; roleNone names none of the three.
func parseRole(s string) role {
	for r := roleViewer; r <= roleAdmin; r++ {
		if s == roleNames[r] {
			return r
		}
	}
	return roleNone
}

// defaultRole is the role of a tokens-file line that names none ("token
// principal", the form before roles): operator, as the demo token. Such a
// token may no longer store or delete credentials (admin only), and gains
// nothing.
const defaultRole = roleOperator

// tokens maps bearer tokens to principals and their roles. Lookups compare
// in constant time so that response timing does not reveal how much of a
// token was right.
type tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	digest    [sha256.Size]byte // of the token: the token itself is not kept
	principal string
	role      role
	from      string // where it was configured ("FILE:LINE", "the admin token"), for errors
}

// principalRole is a principal and its role, as the start event lists them.
type principalRole struct {
	Principal string `json:"principal"`
	Role      string `json:"role"`
}

// principals returns the principals that may authenticate, sorted, each
// once, with its role: names, not secrets, for the start event, so that a
// principal added or its role changed between two starts is on record.
func (ts *tokens) principals() []principalRole {
	var ps []principalRole
	for _, e := range ts.entries {
		ps = append(ps, principalRole{e.principal, e.role.String()})
	}
	slices.SortFunc(ps, func(a, b principalRole) int { return strings.Compare(a.Principal, b.Principal) })
	return slices.Compact(ps) // one role per principal (add): equal entries are adjacent
}

// loadTokens reads lines "token principal [role]" (blank lines and #
// comments ignored; the role defaults to defaultRole). Any line it cannot
// take (a wrong number of fields, an unknown role, a token given twice, a
// principal given two roles) is an error naming the file and line, and no
// tokens are returned: the service does not start with part of them.
func loadTokens(path string) (*tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ts := &tokens{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", path, n)
		// The fields are not quoted back: one of them may be a token.
		fields := strings.Fields(line)
		if len(fields) < 2 || len(fields) > 3 {
			return nil, fmt.Errorf("%s: want \"token principal [role]\" (2 or 3 fields), found %d", where, len(fields))
		}
		r := defaultRole
		if len(fields) == 3 {
			if r = parseRole(fields[2]); r == roleNone {
				return nil, fmt.Errorf("%s: unknown role %q (want viewer, operator or admin)", where, fields[2])
			}
		}
		if err := ts.add(fields[0], fields[1], r, where); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", path, n+1, err)
	}
	return ts, nil
}

// add adds a token of principal with role r, configured at from. A token
// already there, or a principal already there with another role, is an
// error: either way one of the two would silently decide what the
// principal may do.
func (ts *tokens) add(token, principal string, r role, from string) error {
	d := sha256.Sum256([]byte(token))
	for _, e := range ts.entries {
		if e.digest == d {
			return fmt.Errorf("%s: the same token as %s (a token names one principal and role)", from, e.from)
		}
		if e.principal == principal && e.role != r {
			return fmt.Errorf("%s: principal %s is %s in %s and %s here (one role per principal)", from, principal, e.role, e.from, r)
		}
	}
	ts.entries = append(ts.entries, tokenEntry{d, principal, r, from})
	return nil
}

// lookup compares digests, in constant time and over every entry: the
// time taken says neither which token matched nor how long the tokens are
// (ConstantTimeCompare returns at once for a length mismatch). It returns
// the principal and role of the token, or "" and roleNone.
func (ts *tokens) lookup(token string) (string, role) {
	d := sha256.Sum256([]byte(token))
	found, r := "", roleNone
	for _, e := range ts.entries {
		if subtle.ConstantTimeCompare(e.digest[:], d[:]) == 1 {
			found, r = e.principal, e.role
		}
	}
	return found, r
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
	tok := bearer(r)
	if tok == "" {
		return ""
	}
	p, _ := ts.lookup(tok)
	return p
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

// endpointRoles is the least role each endpoint needs (PCI DSS 7.2): the
// one place that says who may do what. A route missing here is refused to
// every role; GET /healthz alone needs no token. README "Roles" has the
// same table, and TestEndpointRoles checks every route against it. A
// request is looked up by neededRole.
var endpointRoles = map[string]role{
	"GET /servers":                  roleViewer,   // the running servers' names
	"GET /credentials":              roleViewer,   // the credentials' names, never a value
	"POST /servers/{name}/{action}": roleOperator, // start, stop
	"GET /credentials/{key}":        roleOperator, // a credential's value
	"PUT /credentials/{key}":        roleAdmin,    // create or overwrite a credential
	"DELETE /credentials/{key}":     roleAdmin,
	"GET /audit/events":             roleAdmin, // the audit log (PCI DSS 10.3.1)
	"GET /audit/ui":                 roleAdmin,
	"GET /audit/stream":             roleAdmin,
}

// methodless are the routes mounted without a method, the audit
// endpoints: package query answers a method they do not serve with 405
// and a denied audit event, where a "GET /audit/events" pattern would have
// the mux answer it, off the record.
var methodless = map[string]bool{"/audit/events": true, "/audit/ui": true, "/audit/stream": true}

// neededRole is the least role of a request with method routed to pattern
// (its Pattern once routed), roleNone if no role may make it. A
// method-less route is looked up with the request's method, as a pattern
// with it would have routed it (HEAD as GET): a POST to the audit log
// has no entry, so query's refusal is not all that stands in its way.
func neededRole(method, pattern string) role {
	if methodless[pattern] {
		if method == http.MethodHead {
			method = http.MethodGet
		}
		pattern = method + " " + pattern
	}
	return endpointRoles[pattern]
}

// permits reports whether role have may make a request with method routed
// to pattern.
func permits(have role, method, pattern string) bool {
	need := neededRole(method, pattern)
	return need != roleNone && have >= need
}

// reasonForbidden is the reason of the audit event of a request refused
// because its principal's role falls short (403), as package query's.
const reasonForbidden = "forbidden"

// Attributes that say how a request authenticated and what its principal
// may do, on every record logged with its context (see contextAttrs).
const (
	authMethodKey   = "auth.method"        // "bearer": the principal's credential (the example knows no other)
	authResultKey   = "auth.result"        // "invalid_credentials": credentials presented but not valid
	userRolesKey    = "user.roles"         // the principal's role, as a list (OpenTelemetry's user.roles)
	requiredRoleKey = "auth.required_role" // the least role the endpoint needs (endpointRoles)
)

// authn is a request's authentication, done once by withAuth before the
// middleware runs, so that the middleware's principal and every record's
// auth attributes come from the same lookup.
type authn struct {
	principal string
	role      role        // roleNone without a principal
	attrs     []slog.Attr // auth.method, user.roles, auth.required_role; or auth.result

	once sync.Once
	all  []slog.Attr // middleware.Attrs and attrs, built once per request
}

type authnKey struct{}

// withAuth authenticates each request (bearer token) and puts the outcome
// into its context, for middleware.Options.Authenticate (authnPrincipal),
// handler.Options.ContextAttrs (contextAttrs) and the app's authorization
// (permitted). The role the request's endpoint needs is looked up in mux
// now, before anything is logged, so that every record of the request
// says it, also those package query writes for the audit endpoints. Wrap
// the middleware with it.
func (ts *tokens) withAuth(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := &authn{}
		if tok := bearer(r); tok != "" {
			a.principal, a.role = ts.lookup(tok)
		}
		switch {
		case a.principal != "":
			a.attrs = []slog.Attr{slog.String(authMethodKey, "bearer"), slog.Any(userRolesKey, []string{a.role.String()})}
			_, pattern := mux.Handler(r)
			if need := neededRole(r.Method, pattern); need != roleNone {
				a.attrs = append(a.attrs, slog.String(requiredRoleKey, need.String()))
			}
		case presented(r):
			a.attrs = []slog.Attr{slog.String(authResultKey, reasonInvalidCredentials)}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authnKey{}, a)))
	})
}

// wrap is middleware.Wrap(mux, opts) behind withAuth, with
// opts.Authenticate set to what withAuth found: the example's handler
// chain.
func (ts *tokens) wrap(mux *http.ServeMux, opts middleware.Options) http.Handler {
	opts.Authenticate = authnPrincipal
	return ts.withAuth(mux, middleware.Wrap(mux, opts))
}

// permitted reports whether the principal of a routed request has the
// role its endpoint needs. Without withAuth (middleware.Wrap alone) no
// role is known, and nothing is permitted.
func permitted(r *http.Request) bool {
	a, ok := r.Context().Value(authnKey{}).(*authn)
	return ok && a.principal != "" && permits(a.role, r.Method, r.Pattern)
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

// The principals of the admin token (role admin) and of the demo token
// printed when there is no -tokens file (role operator).
const (
	adminPrincipal = "admin"
	demoPrincipal  = "demo-user"
)

// authorizeAudit is the audit endpoints' query.HandlerOptions.Authorize:
// the principal of the request's token, and whether its role may use the
// endpoint (endpointRoles: admin). It looks the token up again each time,
// as the live stream asks at every heartbeat.
func (ts *tokens) authorizeAudit(r *http.Request) (string, error) {
	tok := bearer(r)
	if tok == "" {
		if presented(r) { // another scheme
			return "", query.ErrInvalidCredentials
		}
		return "", query.ErrUnauthenticated
	}
	p, role := ts.lookup(tok)
	switch {
	case p == "":
		return "", query.ErrInvalidCredentials
	case !permits(role, r.Method, r.Pattern):
		return p, query.ErrForbidden
	}
	return p, nil
}

func randomToken(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
