package handler_test

// What an auditor reads from a record (SOC 2 CC7.2, PCI DSS 10.2-10.3):
// the outcome, who, when, and that nothing went missing unnoticed. From a
// compliance review's probes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/middleware"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

var probeKey = bytes.Repeat([]byte{0x42}, chain.KeySize)

func probeHandler(t *testing.T, dir string, opts handler.Options) *handler.Handler {
	t.Helper()
	opts.Dir, opts.Key = dir, probeKey
	if opts.App == nil {
		opts.App = slog.DiscardHandler
	}
	h, err := handler.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// auditLines returns every line of the audit files (open/close included),
// in chain order.
func auditLines(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(bytes.TrimRight(data, "\x00")))
		for sc.Scan() {
			out = append(out, sc.Text())
		}
	}
	return out
}

// recordLines returns the audit records only (no open/close/checkpoint).
func recordLines(t *testing.T, dir string) []string {
	var out []string
	for _, l := range auditLines(t, dir) {
		if !strings.Contains(l, `,"rec":"`) {
			out = append(out, l)
		}
	}
	return out
}

// inRequest runs fn inside middleware.Wrap with the given authenticated
// principal, as the example does.
func inRequest(t *testing.T, principal string, fn func(ctx context.Context)) {
	t.Helper()
	srv := middleware.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fn(r.Context()) }),
		middleware.Options{Authenticate: func(*http.Request) string { return principal }})
	req := httptest.NewRequest("POST", "/x", nil)
	req.RemoteAddr = "127.0.0.1:1234"
	srv.ServeHTTP(httptest.NewRecorder(), req)
}

// An operation that panics is audited as a success: End runs deferred
// with *errp still nil and does not look at recover().
func TestEndOnPanicIsFailure(t *testing.T) {
	dir := t.TempDir()
	l := slog.New(probeHandler(t, dir, handler.Options{}))
	ctx := context.Background()
	op := func() (err error) {
		defer handler.Begin(ctx, l, handler.Event{Type: handler.CredentialAccess, Action: "rotate", ResourceType: "credential", Resource: "db_password"}).End(&err)
		panic("vault unreachable half way through the rotation")
	}
	var p any
	func() {
		defer func() { p = recover() }()
		op()
	}()
	if p != "vault unreachable half way through the rotation" {
		t.Errorf("End did not panic again with the value: %v", p)
	}
	recs := recordLines(t, dir)
	if len(recs) != 2 {
		t.Fatalf("want initiated + outcome, got %d records: %q", len(recs), recs)
	}
	for _, want := range []string{`"status":"failed"`, `"reason":"panic"`, `"panic":"vault unreachable half way through the rotation"`} {
		if !strings.Contains(recs[1], want) {
			t.Errorf("the outcome of a panicking operation lacks %s:\n%s", want, recs[1])
		}
	}
}

// A record attribute named like a standard member (user.id, status,
// event, time, client.address, trace_id ...) is not written a second time
// after the authentic one: it gets a leading underscore. (Readers that kept
// the last of duplicate keys, as query.Reader, the alert engine and the
// OTLP bridge once did, showed the application's or the request's value
// as the principal, the outcome, the time.)
func TestStandardMembersNotOverridden(t *testing.T) {
	dir := t.TempDir()
	h := probeHandler(t, dir, handler.Options{ContextAttrs: middleware.Attrs})
	l := slog.New(h)
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	inRequest(t, "alice", func(ctx context.Context) {
		// alice (an admin) disables bob's account; the app records the
		// affected user as OTel's user.id, a very natural choice, and an
		// app-level "status" of the account.
		if err := handler.Log(ctx, l, handler.Event{
			Type: handler.AdminAction, Action: "disable", ResourceType: "account", Resource: "bob",
			Status: handler.StatusDenied, Reason: "forbidden",
			Attrs: []slog.Attr{slog.String("user.id", "bob"), slog.String("status", "success"), slog.Time("time", old)},
		}); err != nil {
			t.Fatal(err)
		}
	})
	recs := recordLines(t, dir)
	if len(recs) != 1 {
		t.Fatalf("records: %q", recs)
	}
	t.Logf("line: %s", recs[0])
	for _, k := range []string{`"user.id":`, `"status":`, `"time":`} {
		if n := strings.Count(recs[0], k); n != 1 {
			t.Errorf("member %s appears %d times in one audit record", k, n)
		}
	}
	r, _ := query.NewReader(dir, query.Options{Key: probeKey})
	page, err := r.Query(context.Background(), query.Request{Filter: query.Filter{Principal: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 {
		t.Errorf("query principal=alice finds %d events; the authenticated principal's action is not attributable to her", len(page.Events))
	}
	page, _ = r.Query(context.Background(), query.Request{Filter: query.Filter{Status: "denied"}})
	if len(page.Events) != 1 {
		t.Errorf("query status=denied finds %d events: the denial reads as a success", len(page.Events))
	}
	page, _ = r.Query(context.Background(), query.Request{Filter: query.Filter{Since: time.Now().Add(-time.Hour)}})
	if len(page.Events) != 1 {
		t.Errorf("query since=1h ago finds %d events: the record reads as written in 2001", len(page.Events))
	}
}

// The audit record's time is whatever the caller's slog.Record holds:
// a zero time writes no "time" member at all (PCI 10.3.3), and such a record
// is invisible to every time-bounded query. There is no writer-side time.
func TestZeroTimeAudited(t *testing.T) {
	dir := t.TempDir()
	h := probeHandler(t, dir, handler.Options{})
	r := slog.NewRecord(time.Time{}, slog.LevelWarn, "credential read", 0)
	r.AddAttrs(handler.Audit, slog.String("event", "credential_access"), slog.String("status", "success"))
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	recs := recordLines(t, dir)
	if len(recs) != 1 || !strings.Contains(recs[0], `"time":"`) {
		t.Errorf("audit record without a time:\n%s", strings.Join(recs, "\n"))
	}
	rd, _ := query.NewReader(dir, query.Options{Key: probeKey})
	page, _ := rd.Query(context.Background(), query.Request{Filter: query.Filter{Since: time.Now().Add(-time.Hour)}})
	if len(page.Events) != 1 {
		t.Errorf("a record written just now is missing from a since=1h-ago query (%d events)", len(page.Events))
	}
}

// failingFS makes writes to audit files fail while fail is set.
type failingFS struct{ fail atomic.Bool }

type failingFile struct {
	*os.File
	fs *failingFS
}

func (f failingFile) Write(p []byte) (int, error) {
	if f.fs.fail.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func (fs *failingFS) open(name string, flag int, perm os.FileMode) (rotate.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return failingFile{f, fs}, nil
}

// An audit outage leaves no trace in the trail: records that could not
// be written (ENOSPC) are reported to OnError only, the chain continues
// seamlessly once the disk has room, and `auditctl verify` says INTACT.
// PCI 10.2.1.6 ("pausing of the audit logs") and CC7.2 need the gap on record.
func TestOutageOnRecord(t *testing.T) {
	dir := t.TempDir()
	fs := &failingFS{}
	var errs []error
	h := probeHandler(t, dir, handler.Options{Rotate: rotate.Options{OpenFile: fs.open}, OnError: func(err error) { errs = append(errs, err) }})
	l := slog.New(h)
	ctx := context.Background()
	ev := func(res string) handler.Event {
		return handler.Event{Type: handler.CredentialAccess, Action: "get", ResourceType: "credential", Resource: res, Status: handler.StatusSuccess}
	}
	if err := handler.Log(ctx, l, ev("before")); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	for range 3 {
		slog.New(h).InfoContext(ctx, "lost", handler.Audit, "event", "credential_access", "resource", "during")
	}
	fs.fail.Store(false)
	if err := handler.Log(ctx, l, ev("after")); err != nil {
		t.Fatal(err)
	}
	if len(errs) == 0 {
		t.Fatal("the outage did not happen (no error reported)")
	}
	h.Close()
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: probeKey})
	if err != nil {
		t.Fatal(err)
	}
	recs := recordLines(t, dir)
	t.Logf("verify intact=%v; records: %q", rep.Intact, recs)
	if len(recs) != 3 || !rep.Intact {
		t.Fatalf("want before, the outage, after; got %d records, verify intact=%v", len(recs), rep.Intact)
	}
	var gap map[string]any
	if err := json.Unmarshal([]byte(recs[1]), &gap); err != nil {
		t.Fatal(err)
	}
	if gap["event"] != handler.AuditOutage || gap["lost"] != 3.0 || gap["status"] != "failed" ||
		!strings.Contains(gap["error"].(string), "no space left on device") || gap["first"] == nil || gap["last"] == nil ||
		!strings.Contains(recs[2], `"resource":"after"`) {
		t.Errorf("the outage record: %v", gap)
	}
}

// The default message of an event about a resource named like a secret
// key (obsidian_api_key, db_password, deploy_token) reads "<action>
// <type> <name>: <status>", which the redactor's key: value pattern takes
// for a secret: the outcome is cut from the message and the record counts a
// redaction that did not happen (redacted=1), also in the example's 401s.
func TestDefaultMessageKeepsOutcome(t *testing.T) {
	dir := t.TempDir()
	l := slog.New(probeHandler(t, dir, handler.Options{}))
	if err := handler.Log(context.Background(), l, handler.Event{Type: handler.CredentialAccess, Action: "get",
		ResourceType: "credential", Resource: "obsidian_api_key", Status: handler.StatusDenied, Reason: "unauthenticated"}); err != nil {
		t.Fatal(err)
	}
	recs := recordLines(t, dir)
	if len(recs) != 1 || !strings.Contains(recs[0], `"msg":"get credential obsidian_api_key (denied)"`) || strings.Contains(recs[0], `"redacted"`) {
		t.Errorf("outcome redacted from the message:\n%s", strings.Join(recs, "\n"))
	}
}

// handler.Log accepts an event that answers nothing: no type, action,
// status; it is written as `"event":"","action":"","status":""` and Log
// returns nil, so a caller's bug produces an unusable record silently.
func TestLogRejectsIncompleteEvent(t *testing.T) {
	dir := t.TempDir()
	l := slog.New(probeHandler(t, dir, handler.Options{}))
	err := handler.Log(context.Background(), l, handler.Event{Resource: "obsidian_api_key"})
	if err == nil {
		t.Errorf("Log accepted an event without type, action and status; wrote %q", recordLines(t, dir))
	}
}

// Time-valued attributes are written in the process's local zone
// (RFC3339Nano without UTC), unlike the record time: one record mixes zones.
func TestAttributeTimesInUTC(t *testing.T) {
	dir := t.TempDir()
	l := slog.New(probeHandler(t, dir, handler.Options{}))
	local := time.Date(2026, 11, 27, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	if err := handler.Log(context.Background(), l, handler.Event{Type: handler.CredentialAccess, Action: "set",
		ResourceType: "credential", Resource: "k", Status: handler.StatusSuccess,
		Attrs: []slog.Attr{slog.Time("expires_at", local)}}); err != nil {
		t.Fatal(err)
	}
	recs := recordLines(t, dir)
	if len(recs) != 1 || !strings.Contains(recs[0], `"expires_at":"2026-11-27T11:00:00.000000000Z"`) {
		t.Errorf("time attribute not in UTC / fixed width:\n%s", strings.Join(recs, "\n"))
	}
}

// Records lost with nothing written after them are on record at Close,
// before the close record.
func TestOutageOnRecordAtClose(t *testing.T) {
	dir := t.TempDir()
	fs := &failingFS{}
	h := probeHandler(t, dir, handler.Options{Rotate: rotate.Options{OpenFile: fs.open}, OnError: func(error) {}})
	ctx := context.Background()
	fs.fail.Store(true)
	for range 2 {
		slog.New(h).InfoContext(ctx, "lost", handler.Audit, "event", "credential_access")
	}
	fs.fail.Store(false)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	lines := auditLines(t, dir)
	if n := len(lines); n < 3 || !strings.Contains(lines[n-2], `"event":"audit_outage"`) || !strings.Contains(lines[n-2], `"lost":2`) ||
		!strings.Contains(lines[n-1], `"rec":"close"`) {
		t.Errorf("want the outage record before the close record:\n%s", strings.Join(lines, "\n"))
	}
}
