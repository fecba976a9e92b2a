package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	traceID = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
)

// fixture writes a keyed audit dir holding these records (msg r0..r7, one
// minute apart), split over files, the older ones compressed.
func fixture(t *testing.T) (dir string) {
	dir = t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{MaxBytes: 900, Compress: true})
	std := func(ev, action, rtype, res, status string) []slog.Attr {
		return []slog.Attr{slog.String("event", ev), slog.String("action", action), slog.String("resource_type", rtype),
			slog.String("resource", res), slog.String("status", status)}
	}
	ctx := context.Background()
	traced := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled}))
	recs := []struct {
		ctx   context.Context
		attrs []slog.Attr
	}{
		{ctx, append(std("admin_action", "start", "mcp_server", "obsidian", "success"), slog.String("user.id", "alice"), slog.String("client.address", "10.0.0.1"))},
		{ctx, append(std("credential_access", "get", "credential", "obsidian_api_key", "denied"), slog.String("user.id", "bob"), slog.String("client.address", "10.0.0.2"), slog.String("client.id", "cli-tool"))},
		{traced, append(std("admin_action", "stop", "mcp_server", "obsidian", "failed"), slog.String("user.id", "alice"))},
		{ctx, append(std("credential_access", "get", "credential", "github_token", "success"), slog.String("user.id", "carol"), slog.String("client.claimed_id", "webapp"))},
		{ctx, []slog.Attr{slog.String("note", "config reloaded"), slog.Group("user", slog.String("id", "alice"))}},
		{ctx, append(std("admin_action", "start", "mcp_server", "github", "initiated"), slog.String("client.address", "10.0.0.1"), slog.Int("user.id", 42))},
		{ctx, append(std("admin_action", "delete", "mcp_server", "a\"b<c>&é", "success"), slog.String("user.id", "dave"), slog.String("client.address", "2001:db8::7"), slog.String("client.claimed_id", "10.0.0.1"))},
		{ctx, append(std("Admin_Action", "start", "mcp_server", "obsidian", "success"), slog.String("USER.ID", "alice"))},
	}
	for i, r := range recs {
		logAt(t, r.ctx, h, t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("r%d", i), r.attrs...)
	}
	slog.New(h).Info("not an audit record", "event", "admin_action")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func msgs(p query.Page) []string {
	var s []string
	for _, e := range p.Events {
		s = append(s, e.Msg)
	}
	return s
}

var filterCases = []struct {
	name   string
	filter query.Filter
	params string
	want   []string // newest first
}{
	{"all", query.Filter{}, "", []string{"r7", "r6", "r5", "r4", "r3", "r2", "r1", "r0"}},
	{"since inclusive", query.Filter{Since: t0.Add(5 * time.Minute)}, "since=2026-03-01T12:05:00Z", []string{"r7", "r6", "r5"}},
	{"until exclusive", query.Filter{Until: t0.Add(2 * time.Minute)}, "until=2026-03-01T12:02:00Z", []string{"r1", "r0"}},
	{"time range, other zone", query.Filter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)},
		"since=2026-03-01T13:01:00%2B01:00&until=2026-03-01T12:03:00Z", []string{"r2", "r1"}},
	{"event", query.Filter{Event: "credential_access"}, "event=credential_access", []string{"r3", "r1"}},
	{"event exact, case matters", query.Filter{Event: "Admin_Action"}, "event=Admin_Action", []string{"r7"}},
	{"action", query.Filter{Action: "stop"}, "action=stop", []string{"r2"}},
	{"resource_type", query.Filter{ResourceType: "credential"}, "resource_type=credential", []string{"r3", "r1"}},
	{"resource", query.Filter{Resource: "obsidian"}, "resource=obsidian", []string{"r7", "r2", "r0"}},
	{"resource with escapes", query.Filter{Resource: "a\"b<c>&é"}, "resource=" + url.QueryEscape("a\"b<c>&é"), []string{"r6"}},
	{"resource prefix does not match", query.Filter{Resource: "obsid"}, "resource=obsid", nil},
	{"status", query.Filter{Status: "success"}, "status=success", []string{"r7", "r6", "r3", "r0"}},
	{"status denied", query.Filter{Status: "denied"}, "status=denied", []string{"r1"}},
	{"trace_id", query.Filter{TraceID: traceID.String()}, "trace_id=" + traceID.String(), []string{"r2"}},
	{"principal", query.Filter{Principal: "alice"}, "principal=alice", []string{"r2", "r0"}}, // not the group user{id}, not USER.ID
	{"principal number", query.Filter{Principal: "42"}, "principal=42", []string{"r5"}},
	{"client address", query.Filter{Client: "10.0.0.1"}, "client=10.0.0.1", []string{"r5", "r0"}},
	{"client claimed id", query.Filter{Client: "cli-tool"}, "client=cli-tool", []string{"r1"}},
	{"client claimed_id", query.Filter{Client: "webapp"}, "client=webapp", []string{"r3"}},
	// r6 claims to be 10.0.0.1: an address is matched by client.address
	// only, in its canonical form.
	{"client address, not a claim of it", query.Filter{Client: "10.0.0.1"}, "client=10.0.0.1", []string{"r5", "r0"}},
	{"client IPv6, canonical", query.Filter{Client: "2001:DB8:0::7"}, "client=2001:DB8:0::7", []string{"r6"}},
	{"combined", query.Filter{Event: "admin_action", Resource: "obsidian", Principal: "alice", Status: "failed"},
		"event=admin_action&resource=obsidian&principal=alice&status=failed", []string{"r2"}},
	{"unknown value", query.Filter{Event: "nope"}, "event=nope", nil},
	{"absent member", query.Filter{TraceID: "00000000000000000000000000000000"}, "trace_id=00000000000000000000000000000000", nil},
}

func TestFilters(t *testing.T) {
	dir := fixture(t)
	if gzCount(t, dir) == 0 {
		// Compression runs in the background; Close waits for it.
		t.Fatal("expected compressed files in the fixture")
	}
	r := newReader(t, dir, testKey)
	for _, tc := range filterCases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustQuery(t, r, query.Request{Filter: tc.filter})
			if got := msgs(p); !slices.Equal(got, tc.want) {
				t.Errorf("newest first: got %q, want %q", got, tc.want)
			}
			for _, e := range p.Events {
				if !e.Verified {
					t.Errorf("%s seq %d not verified", e.Msg, e.Seq)
				}
			}
			p = mustQuery(t, r, query.Request{Filter: tc.filter, Order: query.OldestFirst})
			want := slices.Clone(tc.want)
			slices.Reverse(want)
			if got := msgs(p); !slices.Equal(got, want) {
				t.Errorf("oldest first: got %q, want %q", got, want)
			}
			req, err := query.ParseRequest(mustParseQuery(t, tc.params))
			if err != nil {
				t.Fatal(err)
			}
			if got := msgs(mustQuery(t, r, req)); !slices.Equal(got, tc.want) {
				t.Errorf("parameters %q: got %q, want %q", tc.params, got, tc.want)
			}
		})
	}
}

func mustParseQuery(t *testing.T, s string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEventFields(t *testing.T) {
	r := newReader(t, fixture(t), testKey)
	p := mustQuery(t, r, query.Request{Filter: query.Filter{Resource: "obsidian_api_key"}})
	if len(p.Events) != 1 {
		t.Fatalf("%+v", p)
	}
	e := p.Events[0]
	if e.Seq == 0 || e.Line < 2 || !strings.HasPrefix(e.File, "audit-") || strings.HasSuffix(e.File, ".gz") || !e.Verified ||
		!e.Time.Equal(t0.Add(time.Minute)) || e.Level != "INFO" || e.Msg != "r1" || e.Event != "credential_access" ||
		e.Action != "get" || e.ResourceType != "credential" || e.Resource != "obsidian_api_key" || e.Status != "denied" ||
		e.Principal != "bob" || e.Client != "10.0.0.2" || e.TraceID != "" {
		t.Errorf("%+v", e)
	}
	if !bytes.HasPrefix(e.Record, fmt.Appendf(nil, `{"seq":%d,"prev":"`, e.Seq)) || !bytes.Contains(e.Record, []byte(`,"mac":"`)) {
		t.Errorf("record %s", e.Record)
	}
	traced := mustQuery(t, r, query.Request{Filter: query.Filter{Action: "stop"}}).Events[0]
	if traced.TraceID != traceID.String() {
		t.Errorf("trace id %q", traced.TraceID)
	}
}

func TestRequestErrors(t *testing.T) {
	r := newReader(t, fixture(t), testKey)
	older := query.EncodeCursor(query.OldestFirst, 3)
	for _, tc := range []struct {
		req   query.Request
		param string
	}{
		{query.Request{Limit: -1}, "limit"},
		{query.Request{Limit: query.MaxLimit + 1}, "limit"},
		{query.Request{Order: 7}, "order"},
		{query.Request{Filter: query.Filter{Status: "ok"}}, "status"},
		{query.Request{Filter: query.Filter{Since: t0, Until: t0}}, "until"},
		{query.Request{Cursor: "!!"}, "cursor"},
		{query.Request{Cursor: older}, "cursor"}, // an oldest-first cursor for a newest-first query
	} {
		_, err := r.Query(context.Background(), tc.req)
		var pe *query.ParamError
		if !errors.As(err, &pe) || pe.Param != tc.param {
			t.Errorf("%+v: %v, want a ParamError for %s", tc.req, err, tc.param)
		}
	}
	if _, err := query.NewReader(t.TempDir(), query.Options{Key: []byte("short")}); err == nil {
		t.Error("short key accepted")
	}
	missing := newReader(t, t.TempDir()+"/missing", nil)
	if _, err := missing.Query(context.Background(), query.Request{}); err == nil {
		t.Error("missing directory: no error")
	}
	empty := newReader(t, t.TempDir(), nil)
	if p := mustQuery(t, empty, query.Request{}); len(p.Events) != 0 || p.NextCursor != "" || p.Events == nil {
		t.Errorf("empty directory: %+v", p)
	}
}

func TestCursor(t *testing.T) {
	r := newReader(t, fixture(t), testKey)
	for _, order := range []query.Order{query.NewestFirst, query.OldestFirst} {
		var got []string
		req := query.Request{Order: order, Limit: 3}
		for {
			p := mustQuery(t, r, req)
			if len(p.Events) > 3 {
				t.Fatal(len(p.Events))
			}
			got = append(got, msgs(p)...)
			if p.NextCursor == "" {
				break
			}
			req.Cursor = p.NextCursor
			// The HTTP form: the cursor alone selects the order.
			v, err := query.ParseRequest(url.Values{"cursor": {p.NextCursor}, "limit": {"3"}})
			if err != nil || v.Order != order {
				t.Fatalf("cursor order: %v %v", v.Order, err)
			}
		}
		want := []string{"r7", "r6", "r5", "r4", "r3", "r2", "r1", "r0"}
		if order == query.OldestFirst {
			slices.Reverse(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%v: %q", order, got)
		}
	}
	// An exactly full last page says so: no next cursor.
	p := mustQuery(t, r, query.Request{Limit: 8})
	if len(p.Events) != 8 || p.NextCursor != "" {
		t.Errorf("full page: %d %q", len(p.Events), p.NextCursor)
	}
	p = mustQuery(t, r, query.Request{Limit: 7})
	if len(p.Events) != 7 || p.NextCursor == "" {
		t.Errorf("short page: %d %q", len(p.Events), p.NextCursor)
	}
}

func TestMarshalJSON(t *testing.T) {
	e := query.Event{Seq: 7, File: "audit-x.jsonl", Line: 3, Verified: false,
		Record: []byte(`{"seq":7,"prev":"00","msg":"m","file":"evil","verified":true,"g":{"file":1},"lin\u0065" : 9,"_verified":"own","mac":"ff"}`)}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if m["seq"] != 7.0 || m["file"] != "audit-x.jsonl" || m["line"] != 3.0 || m["verified"] != false ||
		m["_file"] != "evil" || m["__verified"] != true || m["_verified"] != "own" || m["_line"] != 9.0 || m["msg"] != "m" ||
		m["g"].(map[string]any)["file"] != 1.0 {
		t.Errorf("%s", b)
	}
	// Each key once: count the top-level keys.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token()
	seen := map[string]int{}
	for dec.More() {
		k, _ := dec.Token()
		seen[k.(string)]++
		var v json.RawMessage
		dec.Decode(&v)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("key %q %d times in %s", k, n, b)
		}
	}
	b, err = json.Marshal(query.Event{Seq: 1, File: "f"})
	if err != nil || string(b) != `{"seq":1,"file":"f","line":0,"verified":false}` {
		t.Errorf("empty record: %s %v", b, err)
	}
	if _, err := json.Marshal(query.Event{Record: []byte(`[1]`)}); err == nil {
		t.Error("not an object: no error")
	}
}

// --- HTTP ---

type httpFixture struct {
	t   *testing.T
	dir string
	h   *handler.Handler
	srv http.Handler
	r   *query.Reader
}

func newHTTPFixture(t *testing.T) *httpFixture {
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{})
	for i := range 3 {
		if err := handler.Log(context.Background(), slog.New(h), handler.Event{Type: handler.AdminAction, Action: "start",
			ResourceType: "mcp_server", Resource: fmt.Sprint("srv", i), Status: handler.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	r := newReader(t, dir, testKey)
	srv, err := query.NewHandler(query.HandlerOptions{
		Reader:   r,
		AuditLog: handler.Logger(slog.New(h)),
		Authorize: func(req *http.Request) (string, error) {
			switch req.Header.Get("Authorization") {
			case "Bearer alice-token":
				return "alice", nil
			case "Bearer mallory-token":
				return "mallory", query.ErrForbidden
			}
			return "", query.ErrUnauthenticated
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &httpFixture{t, dir, h, srv, r}
}

func (f *httpFixture) get(token, params string) (*httptest.ResponseRecorder, map[string]any) {
	f.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/audit/events?"+params, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, req)
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("Content-Type %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		f.t.Fatalf("body %q: %v", w.Body, err)
	}
	return w, body
}

// trail returns the audit_access events, oldest first.
func (f *httpFixture) trail() []map[string]any {
	f.t.Helper()
	p := mustQuery(f.t, f.r, query.Request{Filter: query.Filter{Event: "audit_access"}, Order: query.OldestFirst, Limit: query.MaxLimit})
	var out []map[string]any
	for _, e := range p.Events {
		if !e.Verified {
			f.t.Errorf("audit event not verified: %s", e.Record)
		}
		var m map[string]any
		if err := json.Unmarshal(e.Record, &m); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestHTTP(t *testing.T) {
	f := newHTTPFixture(t)
	base := f.dir[strings.LastIndexByte(f.dir, '/')+1:]

	w, body := f.get("", "event=admin_action")
	if w.Code != 401 || w.Header().Get("WWW-Authenticate") != "Bearer" || body["error"] == "" {
		t.Fatalf("no credentials: %d %v %v", w.Code, w.Header(), body)
	}
	w, body = f.get("mallory-token", "")
	if w.Code != 403 || body["error"] == "" {
		t.Fatalf("forbidden: %d %v", w.Code, body)
	}
	w, body = f.get("alice-token", "event=admin_action&limit=2&order=oldest")
	if w.Code != 200 {
		t.Fatalf("alice: %d %v", w.Code, body)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
	}
	events := body["events"].([]any)
	if len(events) != 2 || body["next_cursor"] == "" {
		t.Fatalf("page: %v", body)
	}
	for i, x := range events {
		ev := x.(map[string]any)
		if ev["seq"].(float64) != float64(i+2) || ev["verified"] != true || !strings.HasPrefix(ev["file"].(string), "audit-") ||
			ev["line"].(float64) != float64(i+2) || ev["event"] != "admin_action" || ev["resource"] != fmt.Sprint("srv", i) ||
			ev["msg"] == nil || ev["prev"] == nil || ev["mac"] == nil || ev["time"] == nil || ev["level"] != "INFO" {
			t.Errorf("event %d: %v", i, ev)
		}
	}
	w, body = f.get("alice-token", "event=admin_action&cursor="+body["next_cursor"].(string))
	if w.Code != 200 || len(body["events"].([]any)) != 1 || body["next_cursor"] != "" {
		t.Fatalf("next page: %d %v", w.Code, body)
	}

	trail := f.trail()
	if len(trail) != 4 {
		t.Fatalf("trail: %v", trail)
	}
	for i, want := range []map[string]any{
		{"status": "denied", "reason": "unauthenticated", "level": "WARN"},
		{"status": "denied", "reason": "forbidden", "user.id": "mallory", "level": "WARN"},
		{"status": "success", "user.id": "alice", "results": 2.0, "level": "INFO",
			"query": map[string]any{"event": "admin_action", "limit": "2", "order": "oldest"}},
		{"status": "success", "user.id": "alice", "results": 1.0},
	} {
		ev := trail[i]
		for k, v := range want {
			if fmt.Sprint(ev[k]) != fmt.Sprint(v) {
				t.Errorf("trail %d: %s = %v, want %v (%v)", i, k, ev[k], v, ev)
			}
		}
		if ev["action"] != "query" || ev["resource_type"] != "audit_log" || ev["resource"] != base {
			t.Errorf("trail %d: %v", i, ev)
		}
		if i == 0 && (ev["user.id"] != nil || ev["query"].(map[string]any)["event"] != "admin_action") {
			t.Errorf("trail 0: %v", ev)
		}
	}

	// Every successful query is in the trail: the trail query itself too.
	for range 3 {
		if w, _ := f.get("alice-token", "event=audit_access"); w.Code != 200 {
			t.Fatal(w.Code)
		}
	}
	w, body = f.get("alice-token", "event=audit_access&status=success&principal=alice")
	if got := len(body["events"].([]any)); w.Code != 200 || got != 2+3 {
		t.Errorf("successful queries in the trail: %d, want 5", got)
	}
	if len(f.trail()) != 4+3+1 {
		t.Errorf("trail has %d events", len(f.trail()))
	}

	// Not GET.
	req := httptest.NewRequest(http.MethodPost, "/audit/events", nil)
	req.Header.Set("Authorization", "Bearer alice-token")
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d", rec.Code)
	}
	// An attempt on the audit log is on record, with who made it.
	tr := f.trail()
	if last := tr[len(tr)-1]; last["status"] != "denied" || last["reason"] != "method_not_allowed" ||
		last[query.MethodKey] != "POST" || last[query.PrincipalKey] != "alice" || last["action"] != "query" {
		t.Errorf("POST's audit event: %v", last)
	}
	req = httptest.NewRequest(http.MethodDelete, "/audit/events", nil)
	rec = httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	tr = f.trail()
	if last := tr[len(tr)-1]; rec.Code != 405 || last["reason"] != "method_not_allowed" || last[query.MethodKey] != "DELETE" || last[query.PrincipalKey] != nil {
		t.Errorf("anonymous DELETE: %d, audit event %v", rec.Code, last)
	}
	// HEAD is a query like GET (a "GET /audit/events" pattern routes it
	// here), audited as one; the body is net/http's to drop.
	req = httptest.NewRequest(http.MethodHead, "/audit/events?limit=1", nil)
	req.Header.Set("Authorization", "Bearer alice-token")
	rec = httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	tr = f.trail()
	if last := tr[len(tr)-1]; rec.Code != 200 || last["status"] != "success" || last["action"] != "query" || last[query.PrincipalKey] != "alice" {
		t.Errorf("HEAD: %d, audit event %v", rec.Code, last)
	}

	// Fail closed: no results when the access cannot be audited.
	f.h.Close()
	w, body = f.get("alice-token", "")
	if w.Code != 500 || body["events"] != nil {
		t.Errorf("audit log closed: %d %v", w.Code, body)
	}
}

func TestHTTPBadParameters(t *testing.T) {
	f := newHTTPFixture(t)
	for _, tc := range []struct {
		params, param, msg string
	}{
		{"since=yesterday", "since", "not an RFC 3339 time"},
		{"until=2026-13-01T00:00:00Z", "until", "not an RFC 3339 time"},
		{"since=-1h", "since", "or a duration back from now"},
		{"since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", "until", "must be after since"},
		{"limit=0", "limit", "must be a positive integer not above 1000"},
		{"limit=-5", "limit", "must be a positive integer"},
		{"limit=ten", "limit", "must be a positive integer"},
		{"limit=1001", "limit", "not above 1000"},
		{"cursor=xyz", "cursor", "not a cursor"},
		{"cursor=" + query.EncodeCursor(query.NewestFirst, 5) + "&order=oldest", "cursor", "order newest"},
		{"status=ok", "status", "must be initiated, success, failed or denied"},
		{"order=up", "order", "must be newest or oldest"},
		{"evnt=admin_action", "evnt", "unknown parameter"},
		{"event=a&event=b", "event", "more than once"},
		{"event=%zz", "query", "malformed query string"},
		// FuzzHTTPQuery: was {"error":"parameter : unknown parameter"}.
		{"=x", "", "parameter without a name: unknown parameter"},
	} {
		w, body := f.get("alice-token", tc.params)
		if w.Code != 400 || body["parameter"] != tc.param || !strings.Contains(body["error"].(string), tc.msg) ||
			!strings.Contains(body["error"].(string), tc.param) {
			t.Errorf("%s: %d %v", tc.params, w.Code, body)
		}
	}
	// Bad requests are in the trail as failed.
	n := 0
	for _, ev := range f.trail() {
		if ev["status"] == "failed" && ev["reason"] == "bad_request" && ev["user.id"] == "alice" && ev["error"] != nil {
			n++
		}
	}
	if n != 16 {
		t.Errorf("%d failed queries in the trail, want 16", n)
	}
	// Unauthenticated requests are refused before the parameters are read.
	if w, _ := f.get("", "limit=ten"); w.Code != 401 {
		t.Errorf("unauthenticated with bad parameters: %d", w.Code)
	}
}

func TestNewHandlerRequires(t *testing.T) {
	r := newReader(t, t.TempDir(), nil)
	authz := func(*http.Request) (string, error) { return "x", nil }
	log := slog.New(slog.DiscardHandler)
	for _, o := range []query.HandlerOptions{
		{Reader: r, AuditLog: log},
		{Reader: r, Authorize: authz},
		{Authorize: authz, AuditLog: log},
	} {
		if h, err := query.NewHandler(o); err == nil || h != nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if _, err := query.NewHandler(query.HandlerOptions{Reader: r, Authorize: authz, AuditLog: log}); err != nil {
		t.Error(err)
	}
}

type introspectErr struct{ Token string }

func (e *introspectErr) Error() string { return "introspection of " + e.Token + " timed out" }

// The error Authorize returns is logged as the error, not as its text, so
// the redactor sees its fields: a secret one is cut from the message.
func TestAuthorizeErrorRedactedByFields(t *testing.T) {
	const tok = "opaque-SECRET-8f7e6d5c"
	file, body := serveOnce(t, func(*http.Request) (string, error) { return "", &introspectErr{Token: tok} }, "/audit/events")
	if strings.Contains(file+body, tok) || !strings.Contains(file, `"error":"introspection of [REDACTED] timed out"`) {
		t.Errorf("audit file:\n%s\nresponse: %s", file, body)
	}
}

// serveOnce serves one GET of target by a query handler with authorize over
// a fresh audit directory and returns the audit file and the response body.
func serveOnce(t *testing.T, authorize func(*http.Request) (string, error), target string) (file, body string) {
	t.Helper()
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{})
	qh, err := query.NewHandler(query.HandlerOptions{Reader: newReader(t, dir, testKey), Authorize: authorize, AuditLog: handler.Logger(slog.New(h))})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	qh.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	h.Close()
	b, _ := os.ReadFile(plainFile(t, dir))
	return string(b), rec.Body.String()
}

// A long parameter value is cut at a space, not inside a word: a token cut
// short would no longer be recognised by the redactor.
func TestLoggedParameterCutAtSpace(t *testing.T) {
	const tok = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	long := strings.Repeat("x", 240) + " " + tok // 256 falls inside tok
	file, _ := serveOnce(t, func(*http.Request) (string, error) { return "", query.ErrForbidden }, "/audit/events?resource="+url.QueryEscape(long))
	if strings.Contains(file, tok[:10]) || !strings.Contains(file, `"resource":"`+strings.Repeat("x", 240)+`…"`) {
		t.Errorf("audit file:\n%s", file)
	}
}

func TestParseRequestDurations(t *testing.T) {
	before := time.Now()
	req, err := query.ParseRequest(url.Values{"since": {"24h"}, "until": {"90m"}})
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  time.Time
		back time.Duration
	}{{"since", req.Filter.Since, 24 * time.Hour}, {"until", req.Filter.Until, 90 * time.Minute}} {
		if tc.got.Before(before.Add(-tc.back)) || tc.got.After(after.Add(-tc.back)) {
			t.Errorf("%s = %v, want now - %v (now between %v and %v)", tc.name, tc.got, tc.back, before, after)
		}
	}
}
