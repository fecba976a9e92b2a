package query_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
)

func Example() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	key := chain.GenerateKey() // in production: chain.ReadKeyFile

	h, _ := handler.New(handler.Options{Dir: dir, Key: key, App: slog.DiscardHandler})
	log := slog.New(h)
	ctx := context.Background()
	for _, name := range []string{"obsidian", "github", "slack"} {
		handler.Log(ctx, log, handler.Event{Type: handler.CredentialAccess, Action: "get",
			ResourceType: "credential", Resource: name + "_token", Status: handler.StatusSuccess})
	}
	handler.Log(ctx, log, handler.Event{Type: handler.CredentialAccess, Action: "get",
		ResourceType: "credential", Resource: "aws_key", Status: handler.StatusDenied, Reason: "not_allowed"})
	h.Close()

	r, _ := query.NewReader(dir, query.Options{Key: key})
	req := query.Request{Filter: query.Filter{Event: handler.CredentialAccess, Status: "success"}, Limit: 2}
	for {
		page, err := r.Query(ctx, req)
		if err != nil {
			panic(err)
		}
		for _, e := range page.Events {
			fmt.Println(e.Seq, e.Action, e.Resource, e.Status, "verified:", e.Verified)
		}
		if page.NextCursor == "" {
			break
		}
		req.Cursor = page.NextCursor
	}
	// Output:
	// 4 get slack_token success verified: true
	// 3 get github_token success verified: true
	// 2 get obsidian_token success verified: true
}

func ExampleNewHandler() {
	tmp, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "audit-logs")
	h, _ := handler.New(handler.Options{Dir: dir, App: slog.DiscardHandler})
	defer h.Close()
	log := slog.New(h)
	handler.Log(context.Background(), log, handler.Event{Type: handler.AdminAction, Action: "start",
		ResourceType: "mcp_server", Resource: "obsidian", Status: handler.StatusSuccess})

	r, _ := query.NewReader(dir, query.Options{})
	events, err := query.NewHandler(query.HandlerOptions{
		Reader:   r,
		AuditLog: handler.Logger(log), // every query is audited
		Authorize: func(req *http.Request) (string, error) {
			if req.Header.Get("Authorization") != "Bearer auditor-token" { // use real authentication
				return "", query.ErrUnauthenticated
			}
			return "auditor", nil
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/audit/events", events) // no method in the pattern: a POST is refused on the record

	req := httptest.NewRequest("GET", "/audit/events?event=admin_action&limit=10", nil)
	req.Header.Set("Authorization", "Bearer auditor-token")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	fmt.Println(w.Code, strings.Contains(w.Body.String(), `"resource":"obsidian"`))

	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/audit/events", nil))
	fmt.Println(w.Code, w.Header().Get("WWW-Authenticate"))

	// Both requests are in the audit trail.
	page, _ := r.Query(context.Background(), query.Request{Filter: query.Filter{Event: query.AuditAccess}, Order: query.OldestFirst})
	for _, e := range page.Events {
		fmt.Println(e.Msg)
	}
	// Output:
	// 200 true
	// 401 Bearer
	// query audit_log audit-logs: success
	// query audit_log audit-logs: denied
}
