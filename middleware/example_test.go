package middleware_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/middleware"
	"github.com/slogaudit/slogaudit/rotate"
)

func ExampleWrap() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	h, _ := handler.New(handler.Options{Dir: dir, App: slog.DiscardHandler, ContextAttrs: middleware.Attrs})
	log := slog.New(h)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /servers/{name}/start", func(w http.ResponseWriter, r *http.Request) {
		handler.Log(r.Context(), log, handler.Event{Type: handler.AdminAction, Action: "start",
			ResourceType: "mcp_server", Resource: r.PathValue("name"), Status: handler.StatusSuccess})
	})
	srv := middleware.Wrap(mux, middleware.Options{
		Authenticate: func(r *http.Request) string {
			if r.Header.Get("Authorization") == "Bearer t0ken" {
				return "alice"
			}
			return ""
		},
		ActivityLog: handler.Logger(log),
	})

	req := httptest.NewRequest("POST", "/servers/obsidian/start", nil)
	req.RemoteAddr = "192.0.2.7:51234"
	req.Header.Set("Authorization", "Bearer t0ken")
	req.Header.Set("X-Client-ID", "cli-42")
	srv.ServeHTTP(httptest.NewRecorder(), req)
	h.Close()

	paths, _ := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	f, _ := os.Open(paths[0])
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r map[string]any
		json.Unmarshal(sc.Bytes(), &r)
		if r["event"] != nil {
			fmt.Println(r["event"], r["user.id"], r["client.address"], r["client.claimed_id"], len(r["trace_id"].(string)))
		}
	}
	// Output:
	// admin_action alice 192.0.2.7 cli-42 32
	// http_request alice 192.0.2.7 cli-42 32
}
