package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/middleware"
	"github.com/slogaudit/slogaudit/query"
)

// testService is the example's request path in process: the app's routes
// and GET /audit/events behind the example's handler chain (ts.wrap), an
// audit handler with its ContextAttrs. Tokens: viewer-token (vera, role
// viewer), demo-token (demo-user, operator) and admin-token (admin, admin).
type testService struct {
	t   *testing.T
	dir string
	h   *handler.Handler
	app *app
	srv http.Handler
}

func newTestService(t *testing.T) *testService {
	t.Helper()
	s := &testService{t: t, dir: t.TempDir()}
	h, err := handler.New(handler.Options{Dir: s.dir, App: slog.DiscardHandler, ContextAttrs: contextAttrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	s.h = h
	ts := &tokens{}
	ts.add("viewer-token", "vera", roleViewer, "test")
	ts.add("demo-token", demoPrincipal, roleOperator, "test")
	ts.add("admin-token", adminPrincipal, roleAdmin, "test")
	log := slog.New(h)
	s.app = newApp(log)
	mux := s.app.routes()
	reader, err := query.NewReader(s.dir, query.Options{EpochKey: h.EpochKey})
	if err != nil {
		t.Fatal(err)
	}
	events, err := query.NewHandler(query.HandlerOptions{Reader: reader, Authorize: ts.authorizeAudit, AuditLog: handler.Logger(log), OmitPrincipal: true})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/audit/events", events) // as run mounts it
	s.srv = ts.wrap(mux, middleware.Options{ActivityLog: handler.Logger(log)})
	return s
}

// do sends a request with the Authorization header auth ("" for none).
func (s *testService) do(method, path, auth string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = "127.0.0.1:4321"
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	s.srv.ServeHTTP(rec, req)
	return rec
}

// events closes the audit handler and returns the audit records.
func (s *testService) events() []map[string]any {
	s.t.Helper()
	if err := s.h.Close(); err != nil {
		s.t.Fatal(err)
	}
	return events(s.t, s.dir)
}

func ofEvent(evs []map[string]any, event string) []map[string]any {
	var out []map[string]any
	for _, e := range evs {
		if e["event"] == event {
			out = append(out, e)
		}
	}
	return out
}

// A wrong bearer token, or credentials of another scheme, is recorded as
// invalid_credentials, no credentials as unauthenticated: on the
// credential_access and admin_action events, the audit_access event of
// /audit/events, and (auth.result) the activity record. Records of an
// authenticated request say how it authenticated (auth.method=bearer),
// the principal's role and the role the endpoint needs.
func TestInvalidCredentialsRecorded(t *testing.T) {
	s := newTestService(t)
	auths := []string{"", "Bearer guessed-token", "Basic ZGVtbzpkZW1v"}
	for _, auth := range auths {
		for _, path := range []string{"/credentials/k", "/audit/events"} {
			if rec := s.do("GET", path, auth, nil); rec.Code != 401 {
				t.Errorf("GET %s with %q: %d", path, auth, rec.Code)
			}
		}
		if rec := s.do("POST", "/servers/x/start", auth, nil); rec.Code != 401 {
			t.Errorf("POST with %q: %d", auth, rec.Code)
		}
	}
	if rec := s.do("GET", "/credentials/k", "Bearer demo-token", nil); rec.Code != 404 {
		t.Fatalf("GET: %d", rec.Code)
	}
	evs := s.events()
	wantReasons := []string{"unauthenticated", "invalid_credentials", "invalid_credentials"}
	for _, event := range []string{handler.CredentialAccess, handler.AdminAction, handler.AuditAccess} {
		var reasons []string
		for _, e := range ofEvent(evs, event) {
			if e["status"] == "denied" {
				reasons = append(reasons, stringOf(e["reason"]))
				if e[authMethodKey] != nil || e["user.id"] != nil {
					t.Errorf("denied %s event with a principal or auth.method: %v", event, e)
				}
			}
		}
		if strings.Join(reasons, " ") != strings.Join(wantReasons, " ") {
			t.Errorf("%s denied reasons %v, want %v", event, reasons, wantReasons)
		}
	}
	var results []string
	for _, e := range ofEvent(evs, "http_request") {
		if e["status"] == "denied" {
			results = append(results, stringOf(e[authResultKey]))
		}
	}
	// three requests without credentials, then six with invalid ones
	if want := []string{"", "", "", "invalid_credentials", "invalid_credentials", "invalid_credentials", "invalid_credentials", "invalid_credentials", "invalid_credentials"}; strings.Join(results, ",") != strings.Join(want, ",") {
		t.Errorf("auth.result of the denied activity records: %q, want %q", results, want)
	}
	n := 0
	for _, e := range evs {
		if e["user.id"] == "demo-user" {
			n++
			if e[authMethodKey] != "bearer" || e[authResultKey] != nil || fmt.Sprint(e[userRolesKey]) != "[operator]" || e[requiredRoleKey] != "operator" {
				t.Errorf("record of an authenticated request: %v", e)
			}
		}
	}
	if n != 2 { // credential_access, http_request
		t.Errorf("%d records of the authenticated request", n)
	}
}

// Wired as in the middleware's documentation (Authenticate alone, no
// withAuth), the app still tells a wrong token from none.
func TestInvalidCredentialsWithPlainMiddleware(t *testing.T) {
	dir := t.TempDir()
	h, err := handler.New(handler.Options{Dir: dir, App: slog.DiscardHandler, ContextAttrs: middleware.Attrs})
	if err != nil {
		t.Fatal(err)
	}
	ts := &tokens{}
	ts.add("demo-token", demoPrincipal, roleOperator, "test")
	log := slog.New(h)
	mux := middleware.Wrap(newApp(log).routes(), middleware.Options{Authenticate: ts.principal, ActivityLog: handler.Logger(log)})
	for _, auth := range []string{"", "Bearer guessed-token"} {
		req := httptest.NewRequest("GET", "/credentials/k", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Errorf("%q: %d", auth, rec.Code)
		}
	}
	h.Close()
	evs := ofEvent(events(t, dir), handler.CredentialAccess)
	if len(evs) != 2 || evs[0]["reason"] != "unauthenticated" || evs[1]["reason"] != "invalid_credentials" {
		t.Errorf("credential events %v", evs)
	}
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

// Creating a credential and overwriting one are distinct actions (create,
// update), also for a refused attempt; no credential event says "set".
func TestCredentialCreateVsUpdate(t *testing.T) {
	s := newTestService(t)
	for _, c := range []struct {
		auth, body string
		code       int
	}{
		{"", "v0", 401},                   // would create
		{"Bearer admin-token", "v1", 200}, // creates
		{"Bearer guessed", "v2", 401},     // would update
		{"Bearer admin-token", "v3", 200}, // updates
	} {
		if rec := s.do("PUT", "/credentials/k", c.auth, strings.NewReader(c.body)); rec.Code != c.code {
			t.Errorf("PUT %q: %d, want %d", c.auth, rec.Code, c.code)
		}
	}
	if v := string(s.app.creds["k"]); v != "v3" {
		t.Errorf("value %q", v)
	}
	var got []string
	for _, e := range ofEvent(s.events(), handler.CredentialAccess) {
		got = append(got, stringOf(e["action"])+" "+stringOf(e["status"])+" "+stringOf(e["msg"]))
	}
	want := []string{"create denied create credential k (denied)", "create success credential created", "update denied update credential k (denied)", "update success credential updated"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("credential events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// errReader fails after its first bytes, as a connection cut mid-body.
type errReader struct{ sent bool }

func (e *errReader) Read(p []byte) (int, error) {
	if !e.sent {
		e.sent = true
		return copy(p, "partial-"), nil
	}
	return 0, errors.New("connection reset by peer")
}

// A credential PUT whose body cannot be read (over 64 KiB, a read error) is
// refused with 400 and on record as a failed create or update, reason
// bad_body; nothing is stored. When that record cannot be written the
// answer is 503, as everywhere else.
func TestCredentialBadBodyAudited(t *testing.T) {
	s := newTestService(t)
	if rec := s.do("PUT", "/credentials/k", "Bearer admin-token", strings.NewReader("v1")); rec.Code != 200 {
		t.Fatalf("PUT: %d", rec.Code)
	}
	for _, c := range []struct {
		key  string
		body io.Reader
	}{
		{"new_key", strings.NewReader(strings.Repeat("a", 70<<10))}, // too large
		{"k", &errReader{}}, // read error
	} {
		if rec := s.do("PUT", "/credentials/"+c.key, "Bearer admin-token", c.body); rec.Code != http.StatusBadRequest {
			t.Errorf("PUT %s: %d", c.key, rec.Code)
		}
	}
	if _, ok := s.app.creds["new_key"]; ok || string(s.app.creds["k"]) != "v1" {
		t.Errorf("store after failed PUTs: %q", s.app.creds)
	}
	var got []string
	for _, e := range ofEvent(s.events(), handler.CredentialAccess) {
		got = append(got, strings.Join([]string{stringOf(e["action"]), stringOf(e["resource"]), stringOf(e["status"]), stringOf(e["reason"]), stringOf(e["user.id"])}, " "))
		if e["status"] == "failed" && stringOf(e["error"]) == "" {
			t.Errorf("failed PUT without its error: %v", e)
		}
	}
	want := []string{"create k success  admin", "create new_key failed bad_body admin", "update k failed bad_body admin"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("credential events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Fail closed: with the audit log gone, 503.
	s = newTestService(t)
	s.h.Close()
	if rec := s.do("PUT", "/credentials/k", "Bearer admin-token", &errReader{}); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("unaudited bad PUT: %d, want 503", rec.Code)
	}
}

// A client that declares a request body and sends none (or sends it a
// byte at a time) holds its connection only for -body-timeout: net/http
// reads what a handler left unread before it answers, with no deadline of
// its own. Requests without a body, the live stream's, are not cut.
func TestStalledBodiesReleased(t *testing.T) {
	tmp := t.TempDir()
	const admin = "tok-admin-stalled-bodies"
	p := start(t, "-audit-dir", filepath.Join(tmp, "a"), "-key-file", filepath.Join(tmp, "k"), "-body-timeout", "300ms", "-admin-token", admin)
	addr := strings.TrimPrefix(p.base, "http://")
	// A live stream, open across the timeout: no body, no deadline.
	req, _ := http.NewRequest("GET", p.base+"/audit/stream", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	var conns []net.Conn
	for _, path := range []string{"/credentials/x", "/servers/obsidian/start"} {
		// A token the endpoint permits, so that its handler reads the body.
		token := p.token
		if strings.HasPrefix(path, "/credentials") {
			token = p.admin
		}
		for _, auth := range []string{"", "Authorization: Bearer " + token + "\r\n"} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			method := "PUT"
			if strings.HasPrefix(path, "/servers") {
				method = "POST"
			}
			fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 200000\r\n\r\n", method, path, auth)
			conns = append(conns, c)
		}
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("connection %d still open after 10s (body-timeout 300ms): %v; read %q", i, err, got)
		}
	}
	// The stream is still live: the next event arrives.
	if code, _ := p.do(t, "GET", "/credentials/after-the-timeout", ""); code != 404 {
		t.Fatal(code)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"resource":"after-the-timeout"`) {
				line <- sc.Text()
				return
			}
		}
		close(line)
	}()
	select {
	case _, ok := <-line:
		if !ok {
			t.Fatal("the live stream ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event on the live stream")
	}
}
