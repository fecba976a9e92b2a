package handler

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/slogtest"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

var testKey = bytes.Repeat([]byte{0x42}, chain.KeySize)

type fixture struct {
	h   *Handler
	dir string
	app *bytes.Buffer
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), app: new(bytes.Buffer)}
	opts.Dir = f.dir
	if opts.App == nil {
		opts.App = slog.NewJSONHandler(f.app, nil)
	}
	if opts.Key == nil {
		opts.Key = testKey
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	f.h = h
	return f
}

// records returns the audit records (not open/close) in the audit files,
// decoded, with the chain members removed.
func (f *fixture) records(t *testing.T) []map[string]any {
	t.Helper()
	paths, err := rotate.List(f.dir, chain.DefaultPrefix, chain.DefaultExt)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			l, err := chain.ParseLine(sc.Bytes())
			if err != nil {
				t.Fatalf("%s: %v: %q", p, err, sc.Bytes())
			}
			if l.Kind != "" {
				continue
			}
			m := map[string]any{}
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("audit line is not JSON: %v: %s", err, sc.Bytes())
			}
			delete(m, "seq")
			delete(m, "prev")
			delete(m, "mac")
			out = append(out, m)
		}
	}
	return out
}

func (f *fixture) appRecords(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(f.app.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestSlogtest(t *testing.T) {
	t.Run("app", func(t *testing.T) {
		var f *fixture
		slogtest.Run(t, func(t *testing.T) slog.Handler {
			f = newFixture(t, Options{})
			return f.h
		}, func(t *testing.T) map[string]any {
			if rs := f.records(t); len(rs) != 0 {
				t.Errorf("plain record reached the audit file: %v", rs)
			}
			rs := f.appRecords(t)
			if len(rs) != 1 {
				t.Fatalf("%d app records", len(rs))
			}
			return rs[0]
		})
	})
	t.Run("audit file", func(t *testing.T) {
		var f *fixture
		slogtest.Run(t, func(t *testing.T) slog.Handler {
			if strings.HasSuffix(t.Name(), "/zero-time") {
				t.Skip("an audit record always has a time: a zero one is the time it was handled (TestZeroTimeAudited)")
			}
			f = newFixture(t, Options{AuditOnlyToFile: true})
			return f.h.WithAttrs([]slog.Attr{Audit})
		}, func(t *testing.T) map[string]any {
			if f.app.Len() != 0 {
				t.Errorf("AuditOnlyToFile record reached the app handler: %s", f.app)
			}
			rs := f.records(t)
			if len(rs) != 1 {
				t.Fatalf("%d audit records", len(rs))
			}
			return rs[0]
		})
	})
}

func TestRouting(t *testing.T) {
	f := newFixture(t, Options{})
	l := slog.New(f.h)
	l.Info("plain", "a", 1)
	l.Info("tagged", Audit, "a", 2)
	Logger(l).Debug("derived debug", "a", 3)
	l.With("x", "y").WithGroup("g").With(Audit).Info("derived in group", "a", 4)

	audit := f.records(t)
	var msgs []string
	for _, r := range audit {
		msgs = append(msgs, r["msg"].(string))
		if _, ok := r[AuditKey]; ok {
			t.Errorf("tag written to the audit file: %v", r)
		}
	}
	if got := strings.Join(msgs, ","); got != "tagged,derived debug,derived in group" {
		t.Errorf("audit records %q", got)
	}
	if g, ok := audit[2]["g"].(map[string]any); !ok || g["a"] != 4.0 || audit[2]["x"] != "y" {
		t.Errorf("group/attrs lost: %v", audit[2])
	}
	app := f.appRecords(t)
	if len(app) != 3 { // debug is below the app handler's level
		t.Fatalf("app records: %v", app)
	}
	if _, ok := app[0][AuditKey]; ok || app[1][AuditKey] != true {
		t.Errorf("app copy should show audit=true on audit records only: %v", app)
	}
}

func TestReservedKeysRenamed(t *testing.T) {
	f := newFixture(t, Options{})
	Logger(slog.New(f.h)).With("seq", 1).Info("m", "mac", "x", slog.Group("g", "seq", 2))
	r := f.records(t)[0]
	if r["_seq"] != 1.0 || r["_mac"] != "x" || r["g"].(map[string]any)["seq"] != 2.0 {
		t.Errorf("record %v", r)
	}
	rep, err := chain.Verify(f.dir, chain.VerifyOptions{Key: testKey})
	if err != nil || !rep.Intact {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

func spanCtx() (context.Context, trace.SpanContext) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(context.Background(), sc), sc
}

func TestTraceEnrichment(t *testing.T) {
	f := newFixture(t, Options{})
	ctx, sc := spanCtx()
	l := slog.New(f.h)
	l.InfoContext(ctx, "audited", Audit)
	l.InfoContext(ctx, "plain")
	l.Info("no ctx", Audit)
	audit, app := f.records(t), f.appRecords(t)
	want := sc.TraceID().String()
	if audit[0][TraceIDKey] != want || audit[0][SpanIDKey] != sc.SpanID().String() {
		t.Errorf("audit record %v", audit[0])
	}
	if _, ok := audit[1][TraceIDKey]; ok {
		t.Errorf("trace id without a span: %v", audit[1])
	}
	if app[0][TraceIDKey] != want || app[1][TraceIDKey] != want || app[1][SpanIDKey] != sc.SpanID().String() {
		t.Errorf("app records %v", app)
	}
}

func TestTimeIsUTCNanos(t *testing.T) {
	f := newFixture(t, Options{})
	Logger(slog.New(f.h)).Info("m")
	ts := f.records(t)[0]["time"].(string)
	if len(ts) != len("2006-01-02T15:04:05.000000000Z") || !strings.HasSuffix(ts, "Z") {
		t.Errorf("time %q", ts)
	}
}

func TestCloseIdempotentAndErrClosed(t *testing.T) {
	var got []error
	f := newFixture(t, Options{OnError: func(err error) { got = append(got, err) }})
	l := slog.New(f.h)
	if err := f.h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := Log(context.Background(), l, Event{Type: AdminAction, Action: "stop", Status: StatusSuccess}); !errors.Is(err, ErrClosed) {
		t.Errorf("Log after Close: %v", err)
	}
	l.Info("tagged", Audit)
	if len(got) != 2 || !errors.Is(got[1], ErrClosed) {
		t.Errorf("OnError got %v", got)
	}
	// Plain records still reach the app handler.
	l.Info("plain")
	if !strings.Contains(f.app.String(), `"msg":"plain"`) {
		t.Errorf("app log: %s", f.app)
	}
	rep, err := chain.Verify(f.dir, chain.VerifyOptions{Key: testKey})
	if err != nil || !rep.Intact || !rep.Files[0].Closed {
		t.Errorf("after Close: %v %+v", err, rep)
	}
}

func TestEventsAndOperation(t *testing.T) {
	f := newFixture(t, Options{})
	l := slog.New(f.h)
	ctx := context.Background()
	ev := Event{Type: AdminAction, Action: "start", ResourceType: "mcp_server", Resource: "obsidian"}
	run := func(opErr error) (err error) {
		defer Begin(ctx, l, ev).End(&err)
		return opErr
	}
	if err := run(nil); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("exec: not found")
	if err := run(boom); err != boom {
		t.Fatal(err)
	}
	run(errors.Join(ErrDenied, errors.New("no token")))
	if err := Log(ctx, l, Event{Type: CredentialAccess, Action: "get", ResourceType: "credential", Resource: "k", Status: StatusFailed, Reason: "not_found", Attrs: []slog.Attr{slog.String("x", "y")}}); err != nil {
		t.Fatal(err)
	}
	rs := f.records(t)
	var got []string
	for _, r := range rs {
		got = append(got, r[StatusKey].(string)+"/"+r["level"].(string))
	}
	want := "initiated/INFO,success/INFO,initiated/INFO,failed/WARN,initiated/INFO,denied/WARN,failed/WARN"
	if strings.Join(got, ",") != want {
		t.Errorf("statuses %v, want %s", got, want)
	}
	if rs[3][ErrorKey] != "exec: not found" || rs[3]["msg"] != "start mcp_server obsidian (failed)" ||
		rs[3][EventKey] != AdminAction || rs[3][ResourceKey] != "obsidian" || rs[3][ResourceTypeKey] != "mcp_server" {
		t.Errorf("failed event %v", rs[3])
	}
	if rs[6][ReasonKey] != "not_found" || rs[6]["x"] != "y" {
		t.Errorf("event %v", rs[6])
	}

	// Not an audit handler: the error says so.
	plain := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ev.Status = StatusSuccess
	if err := Log(ctx, plain, ev); !errors.Is(err, ErrNotAuditHandler) {
		t.Errorf("Log through a plain handler: %v", err)
	}
}

// failingFile fails one write with err, after writing part of it, once limit
// bytes have been written.
type failingFile struct {
	f     *os.File
	mu    sync.Mutex
	limit int
	err   error
}

func (ff *failingFile) Write(p []byte) (int, error) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if ff.limit >= 0 && len(p) > ff.limit {
		n, _ := ff.f.Write(p[:ff.limit])
		ff.limit = -1
		return n, ff.err
	}
	if ff.limit >= 0 {
		ff.limit -= len(p)
	}
	return ff.f.Write(p)
}
func (ff *failingFile) Sync() error               { return ff.f.Sync() }
func (ff *failingFile) Truncate(size int64) error { return ff.f.Truncate(size) }
func (ff *failingFile) Close() error              { return ff.f.Close() }

// A full disk fails the audit write: Log returns the error (fail closed),
// OnError hears it, and the file holds no half line.
func TestAuditWriteErrorFailsClosed(t *testing.T) {
	var ff *failingFile
	var onErr []error
	f := newFixture(t, Options{
		OnError: func(err error) { onErr = append(onErr, err) },
		Rotate: rotate.Options{OpenFile: func(name string, flag int, perm os.FileMode) (rotate.File, error) {
			osf, err := os.OpenFile(name, flag, perm)
			if err != nil {
				return nil, err
			}
			ff = &failingFile{f: osf, limit: 700, err: syscall.ENOSPC}
			return ff, nil
		}},
	})
	l := slog.New(f.h)
	var errs []error
	for i := range 6 {
		errs = append(errs, Log(context.Background(), l, Event{Type: AdminAction, Action: "start", Resource: strings.Repeat("x", 50+i), Status: StatusSuccess}))
	}
	failed := 0
	for _, err := range errs {
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("error %v does not wrap ENOSPC", err)
			}
			failed++
		}
	}
	if failed == 0 || failed == len(errs) || len(onErr) != failed {
		t.Errorf("%d of %d writes failed, OnError saw %d: %v", failed, len(errs), len(onErr), errs)
	}
	f.h.Close()
	rep, err := chain.Verify(f.dir, chain.VerifyOptions{Key: testKey})
	if err != nil || !rep.Intact || len(rep.Problems()) != 0 {
		t.Fatalf("verify after ENOSPC: %v %+v", err, rep.Problems())
	}
	// The writes that failed are on record: one audit_outage record
	// before the first that worked again (see TestOutageOnRecord).
	starts, lost := 0, 0.0
	for _, r := range f.records(t) {
		switch r[EventKey] {
		case AdminAction:
			starts++
		case AuditOutage:
			lost += r["lost"].(float64)
		}
	}
	if starts != len(errs)-failed || int(lost) != failed {
		t.Errorf("%d records and %v lost on record in the file; %d writes succeeded, %d failed", starts, lost, len(errs)-failed, failed)
	}
}

func TestResumeAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	for i := range 3 {
		h, err := New(Options{Dir: dir, Key: testKey, App: slog.DiscardHandler})
		if err != nil {
			t.Fatal(err)
		}
		if err := Log(context.Background(), slog.New(h), Event{Type: AdminAction, Action: "run", Resource: string(rune('a' + i)), Status: StatusSuccess}); err != nil {
			t.Fatal(err)
		}
		h.Close()
	}
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: testKey})
	if err != nil || !rep.Intact || len(rep.Files) != 3 || rep.LastSeq != 9 {
		t.Fatalf("%v %+v", err, rep)
	}
	if _, err := os.Stat(filepath.Join(dir)); err != nil {
		t.Fatal(err)
	}
}

type principalKey struct{}

func TestContextAttrs(t *testing.T) {
	f := newFixture(t, Options{ContextAttrs: func(ctx context.Context) []slog.Attr {
		as, _ := ctx.Value(principalKey{}).([]slog.Attr)
		return as
	}})
	ctx := context.WithValue(context.Background(), principalKey{}, []slog.Attr{slog.String("user.id", "alice"), slog.String("client.address", "127.0.0.1")})
	l := slog.New(f.h).WithGroup("g")
	l.InfoContext(ctx, "audited", Audit, "a", 1)
	l.InfoContext(ctx, "plain", "a", 2)
	l.Info("no ctx", Audit)
	audit := f.records(t)
	if audit[0]["user.id"] != "alice" || audit[0]["client.address"] != "127.0.0.1" || audit[0]["g"].(map[string]any)["a"] != 1.0 {
		t.Errorf("audit record: %v", audit[0])
	}
	if _, ok := audit[1]["user.id"]; ok {
		t.Errorf("attrs without ctx: %v", audit[1])
	}
	app := f.appRecords(t)
	if g := app[1]["g"].(map[string]any); g["user.id"] != "alice" || g["a"] != 2.0 {
		t.Errorf("app record: %v", app[1])
	}
}

type sinkRec struct {
	body string
	pos  chain.Position
}

type memSink struct {
	mu   sync.Mutex
	recs []sinkRec
}

func (m *memSink) Audit(body []byte, pos chain.Position) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, sinkRec{string(body), pos})
}

func TestSinksGetWhatTheFileHolds(t *testing.T) {
	sink := &memSink{}
	f := newFixture(t, Options{Sinks: []Sink{sink}})
	l := slog.New(f.h)
	l.Info("plain")
	Logger(l).Info("one", "a", 1)
	Logger(l).Info("two")
	f.h.Close()
	if len(sink.recs) != 2 {
		t.Fatalf("sink got %v", sink.recs)
	}
	paths, _ := rotate.List(f.dir, chain.DefaultPrefix, chain.DefaultExt)
	data, _ := os.ReadFile(paths[0])
	lines := strings.Split(string(data), "\n")
	for i, r := range sink.recs {
		l, err := chain.ParseLine([]byte(lines[i+1]))
		if err != nil || l.Seq != r.pos.Seq || l.MAC != r.pos.Chain || !strings.HasSuffix(string(l.Sealed), ","+r.body) {
			t.Errorf("sink record %d %+v does not match line %q (%v)", i, r, lines[i+1], err)
		}
	}
}

// failingHandler is an app handler whose every Handle fails (a full disk).
type failingHandler struct{ slog.Handler }

func (failingHandler) Handle(context.Context, slog.Record) error {
	return errors.New("app log: no space left")
}
func (f failingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return failingHandler{f.Handler.WithAttrs(as)}
}
func (f failingHandler) WithGroup(name string) slog.Handler {
	return failingHandler{f.Handler.WithGroup(name)}
}

// Log answers for the audit write only: a record that is in the file is
// reported written although its copy for the app log failed, which goes to
// OnError; Handle still returns both.
func TestLogIgnoresAppLegError(t *testing.T) {
	var errs []error
	f := newFixture(t, Options{App: failingHandler{slog.NewJSONHandler(io.Discard, nil)}, OnError: func(err error) { errs = append(errs, err) }})
	l := slog.New(f.h)
	if err := Log(context.Background(), l, Event{Type: AdminAction, Action: "start", Resource: "x", Status: StatusSuccess}); err != nil {
		t.Errorf("Log: %v", err)
	}
	if err := f.h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)); err == nil {
		t.Error("Handle of an app record whose app handler failed returned nil")
	}
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "no space left") {
		t.Errorf("OnError got %v", errs)
	}
	if rs := f.records(t); len(rs) != 1 || rs[0][ActionKey] != "start" {
		t.Errorf("records %v", rs)
	}
}
