package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/middleware"
)

// A credential change whose audit record cannot be written is undone: a
// new key goes away, an overwritten value comes back.
func TestPutCredentialUndoneWhenUnaudited(t *testing.T) {
	h, err := handler.New(handler.Options{Dir: t.TempDir(), App: slog.DiscardHandler})
	if err != nil {
		t.Fatal(err)
	}
	a := newApp(slog.New(h))
	ts := &tokens{}
	ts.add("ok", "tester", roleAdmin, "test")
	mux := ts.wrap(a.routes(), middleware.Options{})
	put := func(key, value string) int {
		req := httptest.NewRequest("PUT", "/credentials/"+key, strings.NewReader(value))
		req.Header.Set("Authorization", "Bearer ok")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := put("k", "v1"); code != http.StatusOK {
		t.Fatalf("PUT: %d", code)
	}
	h.Close() // from here no record can be written
	if code := put("k", "v2"); code != http.StatusServiceUnavailable {
		t.Fatalf("PUT without audit: %d", code)
	}
	if code := put("new", "v"); code != http.StatusServiceUnavailable {
		t.Fatalf("PUT without audit: %d", code)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if string(a.creds["k"]) != "v1" {
		t.Errorf("overwritten value is %q, want v1 back", a.creds["k"])
	}
	if _, ok := a.creds["new"]; ok {
		t.Error("a new credential stayed without its audit record")
	}
}

// A request without a valid token is refused and on record; an overlong
// name is refused before anything is logged at length; a credential is
// sent with headers that keep it out of caches.
func TestAppGuards(t *testing.T) {
	dir := t.TempDir()
	h, err := handler.New(handler.Options{Dir: dir, App: slog.DiscardHandler})
	if err != nil {
		t.Fatal(err)
	}
	a := newApp(slog.New(h))
	ts := &tokens{}
	ts.add("ok", "tester", roleAdmin, "test")
	mux := ts.wrap(a.routes(), middleware.Options{})
	do := func(method, path, token, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("GET", "/credentials/k", "", ""); rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("no token: %d %v", rec.Code, rec.Header())
	}
	if rec := do("PUT", "/credentials/k", "wrong", "v"); rec.Code != 401 {
		t.Errorf("wrong token: %d", rec.Code)
	}
	long := strings.Repeat("n", 100_000)
	if rec := do("GET", "/credentials/"+long, "ok", ""); rec.Code != 400 {
		t.Errorf("long key: %d", rec.Code)
	}
	if rec := do("POST", "/servers/x/"+long, "", ""); rec.Code != 401 {
		t.Errorf("long action without a token: %d", rec.Code)
	}
	if rec := do("PUT", "/credentials/k", "ok", "v"); rec.Code != 200 {
		t.Fatalf("PUT: %d", rec.Code)
	}
	rec := do("GET", "/credentials/k", "ok", "")
	if rec.Code != 200 || rec.Body.String() != "v" || rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events(t, dir) {
		switch e["event"] {
		case "credential_access":
			got = append(got, fmt.Sprint(e["action"], " ", e["status"], " ", e["reason"], " ", len(e["resource"].(string))))
		case "admin_action":
			got = append(got, fmt.Sprint("server ", len(e["action"].(string)), " ", e["status"], " ", e["reason"]))
		}
		if len(fmt.Sprint(e)) > 4096 {
			t.Errorf("a record of %d bytes", len(fmt.Sprint(e)))
		}
	}
	want := []string{"get denied unauthenticated 1", "create denied invalid_credentials 1", "get failed name_too_long 259", "server 259 denied unauthenticated", "create success <nil> 1", "get success <nil> 1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The lists name what there is and no more: GET /credentials the keys,
// never a value (neither in the answer nor in its audit event, action
// list), GET /servers the running servers; [] when there are none.
func TestListsGiveNamesOnly(t *testing.T) {
	s := newTestService(t)
	if rec := s.do("GET", "/servers", "Bearer demo-token", nil); rec.Code != 200 || rec.Body.String() != `{"running":[]}`+"\n" {
		t.Errorf("GET /servers with none running: %d %q", rec.Code, rec.Body)
	}
	const value = "value-SECRET-in-a-list-3c2b"
	for _, key := range []string{"b_key", "a_key"} {
		if rec := s.do("PUT", "/credentials/"+key, "Bearer admin-token", strings.NewReader(value)); rec.Code != 200 {
			t.Fatalf("PUT %s: %d", key, rec.Code)
		}
	}
	if rec := s.do("POST", "/servers/obsidian/start", "Bearer demo-token", nil); rec.Code != 200 {
		t.Fatalf("start: %d", rec.Code)
	}
	if rec := s.do("GET", "/credentials", "Bearer demo-token", nil); rec.Code != 200 || rec.Body.String() != `{"credentials":["a_key","b_key"]}`+"\n" {
		t.Errorf("GET /credentials: %d %q", rec.Code, rec.Body)
	}
	if rec := s.do("GET", "/servers", "Bearer demo-token", nil); rec.Code != 200 || rec.Body.String() != `{"running":["obsidian"]}`+"\n" {
		t.Errorf("GET /servers: %d %q", rec.Code, rec.Body)
	}
	var got []string
	for _, e := range s.events() {
		if e["action"] == "list" {
			got = append(got, fmt.Sprint(e["event"], " ", e["resource_type"], " ", e["status"], " ", e["user.id"], " ", e["resource"]))
		}
	}
	want := []string{"admin_action mcp_server success demo-user <nil>", "credential_access credential success demo-user <nil>", "admin_action mcp_server success demo-user <nil>"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("list events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(dirText(t, s.dir), value) {
		t.Error("a credential value is in the audit dir")
	}
}
