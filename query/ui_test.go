package query_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

type uiFixture struct {
	t   *testing.T
	dir string
	h   *handler.Handler
	l   *slog.Logger
	r   *query.Reader
	ui  *query.UI
	srv *httptest.Server
}

func authorize(req *http.Request) (string, error) {
	switch req.Header.Get("Authorization") {
	case "Bearer alice-token":
		return "alice", nil
	case "Bearer mallory-token":
		return "mallory", query.ErrForbidden
	case "":
		return "", query.ErrUnauthenticated
	}
	return "", query.ErrInvalidCredentials
}

func newUIFixture(t *testing.T, mod func(*query.UIOptions)) *uiFixture {
	t.Helper()
	f := &uiFixture{t: t, dir: t.TempDir()}
	n := query.NewNotifier()
	h, err := handler.New(handler.Options{Dir: f.dir, Key: testKey, App: slog.DiscardHandler, Sinks: []handler.Sink{n}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	f.h, f.l = h, slog.New(h)
	for i := range 5 {
		f.log("start", fmt.Sprint("srv", i), handler.StatusSuccess)
	}
	f.r = newReader(t, f.dir, testKey)
	opts := query.UIOptions{
		HandlerOptions: query.HandlerOptions{Reader: f.r, AuditLog: handler.Logger(f.l), Authorize: authorize},
		Notifier:       n,
		TraceURL:       "http://jaeger.example:16686/trace/{trace_id}",
	}
	if mod != nil {
		mod(&opts)
	}
	if f.ui, err = query.NewUI(opts); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /audit/ui", f.ui.Page())
	mux.Handle("GET /audit/stream", f.ui.Stream())
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	t.Cleanup(f.ui.Close) // before srv.Close, which waits for the streams
	return f
}

func (f *uiFixture) log(action, resource string, status handler.Status) {
	f.t.Helper()
	logEvent(f.t, f.l, handler.Event{Type: handler.AdminAction, Action: action, ResourceType: "mcp_server", Resource: resource, Status: status})
}

func (f *uiFixture) get(path, token string, hdr ...string) *http.Response {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp
}

// accesses returns the audit_access events of the given action, oldest first.
func (f *uiFixture) accesses(action string) []map[string]any {
	p := mustQuery(f.t, f.r, query.Request{Filter: query.Filter{Event: "audit_access", Action: action}, Order: query.OldestFirst})
	var out []map[string]any
	for _, e := range p.Events {
		var m map[string]any
		json.Unmarshal(e.Record, &m)
		out = append(out, m)
	}
	return out
}

type sse struct {
	id, event, data string
}

// readSSE parses the frames of an event stream into a channel, closed at
// the end of the body.
func readSSE(body io.Reader) <-chan sse {
	ch := make(chan sse, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		sc.Buffer(nil, 1<<20)
		var cur sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.event != "" || cur.data != "" {
					ch <- cur
				}
				cur = sse{}
			case strings.HasPrefix(line, ":"):
				ch <- sse{event: "comment", data: line}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
		}
	}()
	return ch
}

// next returns the next frame that is not a comment, or fails after a deadline.
func next(t *testing.T, ch <-chan sse) sse {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatal("stream ended")
			}
			if m.event != "comment" && m.event != "" {
				return m
			}
		case <-deadline:
			t.Fatal("no event within 10s")
		}
	}
}

func decode(t *testing.T, m sse) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(m.data), &v); err != nil {
		t.Fatalf("data %q: %v", m.data, err)
	}
	return v
}

func TestUIPageNeedsAuthorization(t *testing.T) {
	f := newUIFixture(t, nil)
	resp := f.get("/audit/ui", "")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("no token: %d %v", resp.StatusCode, resp.Header)
	}
	// The page is the sign-in shell, without data; its script and style are
	// the only ones the CSP allows.
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(string(body), `id="login-form"`) || strings.Contains(string(body), "srv0") ||
		!strings.Contains(csp, "script-src 'sha256-") || !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(string(body), `data-trace-url="http://jaeger.example:16686/trace/{trace_id}"`) {
		t.Errorf("page: CSP %q\n%s", csp, body)
	}
	for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	for _, c := range []struct {
		token string
		code  int
	}{{"mallory-token", 403}, {"alice-token", 200}} {
		resp := f.get("/audit/ui", c.token)
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s: %d, want %d", c.token, resp.StatusCode, c.code)
		}
	}
	views := f.accesses(query.ActionView)
	if len(views) != 3 || views[0]["status"] != "denied" || views[0]["reason"] != "unauthenticated" ||
		views[2]["status"] != "success" || views[2]["user.id"] != "alice" || views[2]["resource_type"] != "audit_log" {
		t.Errorf("view events %v", views)
	}
}

func TestStreamNeedsAuthorization(t *testing.T) {
	f := newUIFixture(t, nil)
	for token, code := range map[string]int{"": 401, "wrong": 401, "mallory-token": 403} {
		resp := f.get("/audit/stream?event=admin_action", token)
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != code || body["error"] == nil || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("token %q: %d %v", token, resp.StatusCode, body)
		}
	}
	streams := f.accesses(query.ActionStream)
	if len(streams) != 3 || streams[0]["status"] != "denied" || streams[0]["query"].(map[string]any)["event"] != "admin_action" {
		t.Errorf("stream events %v", streams)
	}
}

// The stream sends the backlog (oldest first), "live", then new records as
// they are written, filtered on the server.
func TestStreamBacklogAndLive(t *testing.T) {
	f := newUIFixture(t, nil)
	resp := f.get("/audit/stream?backlog=3&action=start", "alice-token")
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	ch := readSSE(resp.Body)
	for i := 2; i < 5; i++ {
		m := next(t, ch)
		ev := decode(t, m)
		if m.event != "audit" || ev["resource"] != fmt.Sprint("srv", i) || ev["verified"] != true || m.id != fmt.Sprint(ev["seq"]) {
			t.Fatalf("backlog %d: %+v", i, m)
		}
	}
	if m := next(t, ch); m.event != "live" {
		t.Fatalf("want live, got %+v", m)
	}
	f.log("stop", "srv0", handler.StatusSuccess) // filtered out
	f.log("start", "srv9", handler.StatusFailed)
	m := next(t, ch)
	if ev := decode(t, m); m.event != "audit" || ev["resource"] != "srv9" || ev["status"] != "failed" || ev["verified"] != true {
		t.Fatalf("live: %+v", m)
	}
	streams := f.accesses(query.ActionStream)
	if len(streams) != 1 || streams[0]["status"] != "success" || streams[0]["user.id"] != "alice" ||
		streams[0]["query"].(map[string]any)["backlog"] != "3" {
		t.Errorf("stream events %v", streams)
	}
}

// A reconnect with Last-Event-ID (or after=) resumes after that seq.
func TestStreamResume(t *testing.T) {
	f := newUIFixture(t, nil)
	seqs := auditSeqs(t, f.dir)
	resp := f.get("/audit/stream?event=admin_action", "alice-token", "Last-Event-ID", fmt.Sprint(seqs[2]))
	defer resp.Body.Close()
	ch := readSSE(resp.Body)
	for i := 3; i < 5; i++ {
		if m := next(t, ch); m.id != fmt.Sprint(seqs[i]) {
			t.Fatalf("resume: %+v, want seq %d", m, seqs[i])
		}
	}
	if m := next(t, ch); m.event != "live" {
		t.Fatalf("%+v", m)
	}
	resp2 := f.get(fmt.Sprintf("/audit/stream?after=%d&resource=srv4", seqs[0]), "alice-token")
	defer resp2.Body.Close()
	if m := next(t, readSSE(resp2.Body)); m.id != fmt.Sprint(seqs[4]) {
		t.Fatalf("after=: %+v", m)
	}
}

func TestStreamBadParameters(t *testing.T) {
	f := newUIFixture(t, nil)
	for q, param := range map[string]string{
		"order=oldest": "order", "limit=3": "limit", "cursor=x": "cursor", "backlog=-1": "backlog",
		"backlog=5000": "backlog", "after=x": "after", "status=weird": "status", "bogus=1": "bogus",
	} {
		resp := f.get("/audit/stream?"+q, "alice-token")
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || body["parameter"] != param {
			t.Errorf("%s: %d %v", q, resp.StatusCode, body)
		}
	}
}

// Streams are bounded, end at Close, and a heartbeat keeps idle ones alive.
func TestStreamLimitsAndClose(t *testing.T) {
	f := newUIFixture(t, func(o *query.UIOptions) { o.MaxStreams = 1; o.Heartbeat = 50 * time.Millisecond })
	resp := f.get("/audit/stream", "alice-token")
	defer resp.Body.Close()
	ch := readSSE(resp.Body)
	if m := next(t, ch); m.event != "live" {
		t.Fatalf("%+v", m)
	}
	resp2 := f.get("/audit/stream", "alice-token")
	resp2.Body.Close()
	if resp2.StatusCode != 503 {
		t.Errorf("second stream: %d", resp2.StatusCode)
	}
	deadline := time.After(5 * time.Second)
	for got := false; !got; {
		select {
		case m := <-ch:
			got = m.event == "comment" && m.data == ": ping"
		case <-deadline:
			t.Fatal("no heartbeat")
		}
	}
	f.ui.Close()
	deadline = time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return // ended
			}
		case <-deadline:
			t.Fatal("stream still open after Close")
		}
	}
}

func TestNewUIRequires(t *testing.T) {
	r := newReader(t, t.TempDir(), testKey)
	h := openLog(t, t.TempDir(), testKey, rotate.Options{})
	base := query.HandlerOptions{Reader: r, AuditLog: handler.Logger(slog.New(h)), Authorize: authorize}
	if _, err := query.NewUI(query.UIOptions{HandlerOptions: query.HandlerOptions{Reader: r, AuditLog: base.AuditLog}}); err == nil {
		t.Error("no Authorize: no error")
	}
	for _, u := range []string{"javascript:alert(1)//{trace_id}", "http://jaeger/trace/", "::"} {
		if _, err := query.NewUI(query.UIOptions{HandlerOptions: base, TraceURL: u}); err == nil {
			t.Errorf("TraceURL %q accepted", u)
		}
	}
}

// An open stream asks Authorize again at every heartbeat: credentials
// revoked meanwhile end it, with an "end" event and a denied audit event.
func TestStreamEndsWhenRevoked(t *testing.T) {
	var revoked atomic.Bool
	f := newUIFixture(t, func(o *query.UIOptions) {
		o.Heartbeat = 20 * time.Millisecond
		o.Authorize = func(r *http.Request) (string, error) {
			if revoked.Load() {
				return "", query.ErrUnauthenticated
			}
			return authorize(r)
		}
	})
	resp := f.get("/audit/stream", "alice-token")
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
	ch := readSSE(resp.Body)
	if m := next(t, ch); m.event != "live" {
		t.Fatalf("want live, got %+v", m)
	}
	revoked.Store(true)
	m := next(t, ch)
	for m.event == "audit" { // the stream's own access events, live
		m = next(t, ch)
	}
	if m.event != "end" || !strings.Contains(m.data, "revoked") {
		t.Fatalf("want end, got %+v", m)
	}
	for deadline := time.After(10 * time.Second); ; {
		select {
		case _, ok := <-ch:
			if ok {
				continue
			}
		case <-deadline:
			t.Fatal("the stream did not close")
		}
		break
	}
	streams := f.accesses(query.ActionStream)
	if len(streams) != 2 || streams[0]["status"] != "success" || streams[1]["status"] != "denied" || streams[1]["reason"] != "revoked" || streams[1]["user.id"] != "alice" {
		t.Errorf("stream events %v", streams)
	}
	// The denied event is the end's record: no second one.
	if ends := f.accesses(query.ActionStreamEnd); len(ends) != 0 {
		t.Errorf("stream_end events after a revocation: %v", ends)
	}
}

// A method other than GET on the page or the stream is refused (405) and
// on record as a denied access, naming the method and, when the
// credentials are valid, the principal.
func TestUIMethodNotAllowed(t *testing.T) {
	f := newUIFixture(t, nil)
	mux := http.NewServeMux()
	mux.Handle("/audit/ui", f.ui.Page())
	mux.Handle("/audit/stream", f.ui.Stream())
	for _, c := range []struct {
		method, path, token, action, principal, allow string
	}{
		{"POST", "/audit/ui", "alice-token", query.ActionView, "alice", "GET, HEAD"},
		{"DELETE", "/audit/stream", "mallory-token", query.ActionStream, "mallory", "GET"},
		{"PUT", "/audit/stream", "", query.ActionStream, "", "GET"},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != 405 || rec.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d, Allow %q", c.method, c.path, rec.Code, rec.Header().Get("Allow"))
		}
		ev := f.accesses(c.action)
		if len(ev) == 0 {
			t.Fatalf("%s %s: no audit event", c.method, c.path)
		}
		last := ev[len(ev)-1]
		var who any
		if c.principal != "" {
			who = c.principal
		}
		if last["status"] != "denied" || last["reason"] != "method_not_allowed" || last[query.MethodKey] != c.method || last[query.PrincipalKey] != who {
			t.Errorf("%s %s: audit event %v", c.method, c.path, last)
		}
	}
}
