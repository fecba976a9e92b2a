package query_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
)

// ErrInvalidCredentials is a 401 like ErrUnauthenticated, but its denied
// audit event says that credentials were presented (reason
// invalid_credentials), so that guessing tokens is told from anonymous
// access: on GET /audit/events, the page and the stream alike.
func TestInvalidCredentialsReason(t *testing.T) {
	if !errors.Is(query.ErrInvalidCredentials, query.ErrUnauthenticated) {
		t.Fatal("ErrInvalidCredentials does not wrap ErrUnauthenticated")
	}
	f := newUIFixture(t, nil)
	events, err := query.NewHandler(query.HandlerOptions{Reader: f.r, AuditLog: handler.Logger(f.l), Authorize: func(r *http.Request) (string, error) {
		_, err := authorize(r)
		return "", fmt.Errorf("token check: %w", err) // wrapped, as an Authorize may
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"", "guessed-token"} {
		req := httptest.NewRequest("GET", "/audit/events", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		events.ServeHTTP(rec, req)
		if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("events, token %q: %d %v", token, rec.Code, rec.Header())
		}
		for _, path := range []string{"/audit/ui", "/audit/stream"} {
			resp := f.get(path, token)
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Errorf("%s, token %q: %d", path, token, resp.StatusCode)
			}
		}
	}
	for _, action := range []string{query.ActionQuery, query.ActionView, query.ActionStream} {
		evs := f.accesses(action)
		if len(evs) != 2 {
			t.Fatalf("%s: events %v", action, evs)
		}
		for i, want := range []string{"unauthenticated", "invalid_credentials"} {
			if evs[i]["status"] != "denied" || evs[i]["reason"] != want {
				t.Errorf("%s event %d: status %v reason %v, want denied %s", action, i, evs[i]["status"], evs[i]["reason"], want)
			}
		}
	}
}
