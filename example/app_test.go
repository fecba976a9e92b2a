package main

import (
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
	mux := middleware.Wrap(a.routes(), middleware.Options{Authenticate: func(*http.Request) string { return "tester" }})
	put := func(key, value string) int {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("PUT", "/credentials/"+key, strings.NewReader(value)))
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
