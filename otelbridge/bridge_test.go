package otelbridge

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/rotate"
)

var _ handler.Sink = (*Bridge)(nil)

// otelErrors collects what the bridge reports to the OTel error handler.
var otelErrors struct {
	sync.Mutex
	msgs []string
}

func TestMain(m *testing.M) {
	// The tests (and ExampleSetup, whose output is the file-only case)
	// must not depend on, or export to, what a developer's shell sets:
	// tests that want a variable set it with t.Setenv.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			os.Unsetenv(k)
		}
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		otelErrors.Lock()
		otelErrors.msgs = append(otelErrors.msgs, err.Error())
		otelErrors.Unlock()
	}))
	os.Exit(m.Run())
}

func otelErrorsContaining(s string) int {
	otelErrors.Lock()
	defer otelErrors.Unlock()
	n := 0
	for _, m := range otelErrors.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// newTestBridge returns a Bridge exporting to endpoint with the real
// otlploghttp exporter, with short batch delays and backoff for tests.
func newTestBridge(t *testing.T, dir, endpoint string, opts ...Option) *Bridge {
	t.Helper()
	exp, err := otlploghttp.New(context.Background(),
		otlploghttp.WithEndpointURL(endpoint+"/v1/logs"),
		otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}),
		otlploghttp.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	all := append([]Option{
		WithDir(dir), WithService("slogaudit-test", "v0.0.1"),
		WithBatch(256, 20*time.Millisecond), withBackoff(10*time.Millisecond, 250*time.Millisecond),
	}, opts...)
	b, err := New(exp, all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, b, 5*time.Second) })
	return b
}

func shutdown(t *testing.T, b *Bridge, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return b.Shutdown(ctx)
}

func newTestHandler(t *testing.T, dir string, sinks ...handler.Sink) *handler.Handler {
	t.Helper()
	h, err := handler.New(handler.Options{
		Dir:             dir,
		App:             slog.NewJSONHandler(io.Discard, nil),
		AuditOnlyToFile: true,
		Rotate:          rotate.Options{MaxBytes: 128 << 10, Compress: true},
		Sinks:           sinks,
		OnError:         func(err error) { t.Errorf("handler: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// writeRecords logs n audit records from 4 goroutines, so that Audit calls
// arrive out of seq order.
func writeRecords(t *testing.T, h *handler.Handler, n int, tag string) {
	t.Helper()
	l := handler.Logger(slog.New(h))
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				l.Info("audit op", "tag", tag, "i", i, slog.Group("req", "user", "alice", "n", i%7))
			}
		})
	}
	wg.Wait()
}

// fileLines returns every complete line in the chain's files, oldest first.
// A file compressed while it is read is read again as .gz.
func fileLines(t *testing.T, dir string) []chain.Line {
	t.Helper()
	files, err := rotate.List(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var out []chain.Line
	for _, p := range files {
		src, err := rotate.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(src)
		for {
			raw, err := br.ReadBytes('\n')
			if err != nil {
				break // EOF, or a torn tail
			}
			l, err := chain.ParseLine(slices.Clone(raw[:len(raw)-1]))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			out = append(out, l)
		}
		src.Close()
	}
	return out
}

func seqsOf(lines []chain.Line) []uint64 {
	s := make([]uint64, len(lines))
	for i, l := range lines {
		s[i] = l.Seq
	}
	return s
}

// waitDelivered polls until the receiver has every seq in the files.
func waitDelivered(t *testing.T, r *receiver, dir string, d time.Duration) []chain.Line {
	t.Helper()
	var lines []chain.Line
	var miss []uint64
	deadline := time.Now().Add(d)
	for {
		lines = fileLines(t, dir)
		miss = r.missing(seqsOf(lines))
		if len(lines) > 0 && len(miss) == 0 {
			return lines
		}
		if time.Now().After(deadline) {
			if len(miss) > 10 {
				miss = append(miss[:5], miss[len(miss)-5:]...)
			}
			t.Fatalf("not within %v: %d lines, missing %v ...", d, len(lines), miss)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// (a) Every record, audit and open/close, arrives with its attributes, trace
// ids, event name and chain members; Shutdown after Close delivers the close
// record.
func TestExportAttributesAndTraceIDs(t *testing.T) {
	r := newReceiver(t)
	dir := t.TempDir()
	mp := &countingMeterProvider{}
	b := newTestBridge(t, dir, r.endpoint(), WithMeterProvider(mp))
	h := newTestHandler(t, dir, b)
	l := slog.New(h)

	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	l.InfoContext(ctx, "credential read", handler.Audit,
		"event", "credential_access", "n", 42, "f", 1.5, "ok", true, "list", []string{"a", "b"},
		slog.Group("g", "a", 1, slog.Group("h", "b", "x")))
	l.Log(ctx, slog.LevelInfo+2, "elevated", handler.Audit)
	l.WarnContext(context.Background(), "no trace", handler.Audit)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t, b, 10*time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	lines := fileLines(t, dir)
	if len(lines) != 5 {
		t.Fatalf("%d lines in the file, want 5 (open, 3 records, close)", len(lines))
	}
	if miss := r.missing(seqsOf(lines)); len(miss) != 0 {
		t.Fatalf("missing seqs after Shutdown: %v", miss)
	}
	for _, ln := range lines {
		got, _ := r.bySeq(ln.Seq)
		if v, _ := attr(got.rec.Attributes, ChainKey); v.GetStringValue() != hex.EncodeToString(ln.MAC[:]) {
			t.Errorf("seq %d: audit.chain %q, want the line's mac", ln.Seq, v.GetStringValue())
		}
		if v, _ := attr(got.res.GetAttributes(), "service.name"); v.GetStringValue() != "slogaudit-test" {
			t.Errorf("seq %d: service.name %q", ln.Seq, v.GetStringValue())
		}
		if got.rec.ObservedTimeUnixNano == 0 || got.rec.TimeUnixNano == 0 {
			t.Errorf("seq %d: timestamps %d/%d", ln.Seq, got.rec.TimeUnixNano, got.rec.ObservedTimeUnixNano)
		}
	}

	open, _ := r.bySeq(lines[0].Seq)
	if open.rec.EventName != EventFileOpen || open.rec.Body.GetStringValue() != "audit file open" {
		t.Errorf("open record: event %q body %v", open.rec.EventName, open.rec.Body)
	}
	if v, _ := attr(open.rec.Attributes, "alg"); v.GetStringValue() != chain.AlgSHA256 {
		t.Errorf("open record alg = %v", v)
	}
	closeRec, _ := r.bySeq(lines[4].Seq)
	if closeRec.rec.EventName != EventFileClose {
		t.Errorf("close record: event %q", closeRec.rec.EventName)
	}

	cred, _ := r.bySeq(lines[1].Seq)
	rec := cred.rec
	if rec.Body.GetStringValue() != "credential read" || rec.SeverityNumber != 9 || rec.SeverityText != "INFO" {
		t.Errorf("body/severity: %v %v %q", rec.Body, rec.SeverityNumber, rec.SeverityText)
	}
	if rec.EventName != "audit.credential_access" {
		t.Errorf("event name %q", rec.EventName)
	}
	if hex.EncodeToString(rec.TraceId) != tid.String() || hex.EncodeToString(rec.SpanId) != sid.String() {
		t.Errorf("trace/span id %x/%x", rec.TraceId, rec.SpanId)
	}
	for key, want := range map[string]string{
		"n": "int_value:42", "f": "double_value:1.5", "ok": "bool_value:true",
		"list": `array_value:{values:{string_value:"a"} values:{string_value:"b"}}`,
		"g.a":  "int_value:1", "g.h.b": `string_value:"x"`, "event": `string_value:"credential_access"`,
		SeqKey: fmt.Sprintf("int_value:%d", lines[1].Seq),
	} {
		v, ok := attr(rec.Attributes, key)
		if got := strings.Join(strings.Fields(fmt.Sprint(v)), " "); !ok || got != want {
			t.Errorf("attribute %s = %s, want %s", key, got, want)
		}
	}
	for _, key := range []string{"msg", "level", "time", "trace_id", "span_id", "g"} {
		if _, ok := attr(rec.Attributes, key); ok {
			t.Errorf("attribute %s should have been mapped, not copied", key)
		}
	}
	elevated, _ := r.bySeq(lines[2].Seq)
	if elevated.rec.SeverityNumber != 11 || elevated.rec.SeverityText != "INFO+2" {
		t.Errorf("INFO+2: %v %q", elevated.rec.SeverityNumber, elevated.rec.SeverityText)
	}
	if warn, _ := r.bySeq(lines[3].Seq); warn.rec.SeverityNumber != 13 || len(warn.rec.TraceId) != 0 {
		t.Errorf("WARN without trace: %v %x", warn.rec.SeverityNumber, warn.rec.TraceId)
	}

	st := b.Stats()
	if st.Cursor != lines[4].Seq || st.Exported < 5 || st.Replayed < 2 {
		t.Errorf("Stats = %+v; want cursor %d, exported >= 5, replayed >= 2 (open and close)", st, lines[4].Seq)
	}
	if got := mp.get("slogaudit.otlp.exported"); got != int64(st.Exported) {
		t.Errorf("metric exported = %d, Stats %d", got, st.Exported)
	}
	if got := mp.get("slogaudit.otlp.replayed"); got != int64(st.Replayed) {
		t.Errorf("metric replayed = %d, Stats %d", got, st.Replayed)
	}
	// The cursor file is persisted and invisible to the chain's readers.
	if seq, _, err := readCursor(cursorPath(dir, chain.DefaultPrefix)); err != nil || seq != st.Cursor {
		t.Errorf("cursor file: %d, %v", seq, err)
	}
	files, _ := rotate.List(dir, "", "")
	for _, f := range files {
		if strings.Contains(f, "cursor") {
			t.Errorf("rotate.List lists %s", f)
		}
	}
	if rep, err := chain.Verify(dir, chain.VerifyOptions{}); err != nil || !rep.Intact || len(rep.Problems()) != 0 {
		t.Errorf("verify with the cursor file present: %v %+v", err, rep)
	}
}

// (b) With the receiver down, 5,000 records go into the file; when it is back
// every seq in the file arrives.
func TestOutageNoLoss(t *testing.T) {
	r := newReceiver(t)
	r.stop()
	dir := t.TempDir()
	b := newTestBridge(t, dir, r.endpoint())
	h := newTestHandler(t, dir, b)

	writeRecords(t, h, 5000, "outage")
	eventually(t, 10*time.Second, "export failures during the outage", func() bool { return b.Stats().ExportFailures > 0 })
	if c := b.Stats().Cursor; c != 0 {
		t.Fatalf("cursor %d with the receiver down", c)
	}
	r.start()
	lines := waitDelivered(t, r, dir, 20*time.Second)
	if len(lines) < 5000 {
		t.Fatalf("%d lines", len(lines))
	}
	n, dups := r.counts()
	st := b.Stats()
	t.Logf("%d lines, %d files; received %d records (%d duplicates); %+v", len(lines), len(fileListing(t, dir)), n, dups, st)
	if len(fileListing(t, dir)) < 2 {
		t.Errorf("want several files (rotation and gzip on the replay path)")
	}
}

func fileListing(t *testing.T, dir string) []string {
	files, err := rotate.List(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// (c) The process stops in the middle of an outage; the next one replays
// from the persisted cursor.
func TestRestartDuringOutage(t *testing.T) {
	r := newReceiver(t)
	dir := t.TempDir()

	b1 := newTestBridge(t, dir, r.endpoint())
	h1 := newTestHandler(t, dir, b1)
	writeRecords(t, h1, 1000, "first")
	eventually(t, 10*time.Second, "the first 1000 records acknowledged", func() bool { return b1.Stats().Cursor >= 1000 })
	r.stop() // outage
	writeRecords(t, h1, 1500, "during outage")
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t, b1, 300*time.Millisecond); err == nil {
		t.Errorf("Shutdown during the outage returned nil; want the deadline error")
	}
	cursor1 := b1.Stats().Cursor
	if seq, _, err := readCursor(cursorPath(dir, chain.DefaultPrefix)); err != nil || seq != cursor1 {
		t.Fatalf("persisted cursor %d (%v), want %d", seq, err, cursor1)
	}
	linesBefore := len(fileLines(t, dir))
	if cursor1 >= uint64(linesBefore) {
		t.Fatalf("cursor %d already at the end (%d lines): the outage did not hold anything back", cursor1, linesBefore)
	}

	// The new process: new handler and bridge on the same directory.
	b2 := newTestBridge(t, dir, r.endpoint())
	h2 := newTestHandler(t, dir, b2)
	writeRecords(t, h2, 1500, "after restart")
	r.start()
	lines := waitDelivered(t, r, dir, 20*time.Second)
	st := b2.Stats()
	t.Logf("cursor at restart %d of %d lines; now %d lines; b2 %+v", cursor1, linesBefore, len(lines), st)
	if st.Replayed < uint64(linesBefore)-cursor1 {
		t.Errorf("b2 replayed %d, want at least the %d records the first process left", st.Replayed, uint64(linesBefore)-cursor1)
	}
	// b2 started from the cursor, not from seq 1.
	if st.Exported >= uint64(len(lines)) {
		t.Errorf("b2 exported %d of %d lines: it did not resume from cursor %d", st.Exported, len(lines), cursor1)
	}
}

// (d) A queue too small for the burst drops records (counted) and the file
// replay still delivers all of them.
func TestQueueOverflowReplays(t *testing.T) {
	r := newReceiver(t)
	r.setStatus(http.StatusServiceUnavailable)
	dir := t.TempDir()
	b := newTestBridge(t, dir, r.endpoint(), WithQueueSize(16<<10))
	h := newTestHandler(t, dir, b)
	writeRecords(t, h, 2000, "burst")
	if st := b.Stats(); st.Dropped == 0 {
		t.Fatalf("nothing dropped with a 16 KiB queue: %+v", st)
	}
	eventually(t, 10*time.Second, "503s counted as failures", func() bool { return b.Stats().ExportFailures > 0 })
	r.setStatus(http.StatusOK)
	waitDelivered(t, r, dir, 20*time.Second)
	st := b.Stats()
	t.Logf("%+v", st)
	if st.Replayed < st.Dropped {
		t.Errorf("replayed %d < dropped %d", st.Replayed, st.Dropped)
	}
	if st.Skipped != 0 {
		t.Errorf("skipped %d", st.Skipped)
	}
}

// A cursor that does not belong to the chain in the directory (a new chain)
// is ignored: everything is exported.
func TestCursorOfAnotherChain(t *testing.T) {
	r := newReceiver(t)
	dir := writtenTrail(t, 20)
	if err := writeCursor(cursorPath(dir, chain.DefaultPrefix), 10, [32]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	b := newTestBridge(t, dir, r.endpoint())
	waitDelivered(t, r, dir, 10*time.Second)
	if otelErrorsContaining("does not match record 10") == 0 {
		t.Errorf("the mismatch was not reported")
	}
	if err := shutdown(t, b, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// Records the files no longer hold (retention removed the oldest file) are
// skipped and counted; the rest is exported.
func TestSkipsRecordsRemovedFromFiles(t *testing.T) {
	r := newReceiver(t)
	dir := writtenTrail(t, 1500)
	files := fileListing(t, dir)
	if len(files) < 2 {
		t.Fatalf("want several files, got %d", len(files))
	}
	removed := len(fileLinesOf(t, files[0]))
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	b := newTestBridge(t, dir, r.endpoint())
	waitDelivered(t, r, dir, 10*time.Second)
	if err := shutdown(t, b, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Skipped != uint64(removed) {
		t.Errorf("skipped %d, want %d", st.Skipped, removed)
	}
}

func fileLinesOf(t *testing.T, path string) []chain.Line {
	dir := t.TempDir()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return fileLines(t, dir)
}

func TestNilBridge(t *testing.T) {
	var b *Bridge
	b.Audit([]byte(`"msg":"x"`), chain.Position{Seq: 1})
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.Stats() != (Stats{}) || b.TracerProvider() != nil {
		t.Fatal("nil bridge not inert")
	}
	if _, err := New(nil, WithDir(t.TempDir())); err == nil {
		t.Error("New(nil exporter) succeeded")
	}
}

// countingMeterProvider records the sums of Int64Counters.
type countingMeterProvider struct {
	noop.MeterProvider
	mu   sync.Mutex
	sums map[string]int64
}

func (p *countingMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return countingMeter{p: p}
}

func (p *countingMeterProvider) get(name string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sums[name]
}

type countingMeter struct {
	noop.Meter
	p *countingMeterProvider
}

func (m countingMeter) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return countingCounter{p: m.p, name: name}, nil
}

type countingCounter struct {
	noop.Int64Counter
	p    *countingMeterProvider
	name string
}

func (c countingCounter) Add(_ context.Context, n int64, _ ...metric.AddOption) {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if c.p.sums == nil {
		c.p.sums = make(map[string]int64)
	}
	c.p.sums[c.name] += n
}

// TestWakeAfterIdle: a record logged while the exporter goroutine waits
// with nothing to do is exported within the batch delay, every time (a
// record arriving between its last look at the queue and its wait must not
// be left until the next one), and the cursor file catches up while idle.
func TestWakeAfterIdle(t *testing.T) {
	r := newReceiver(t)
	dir := t.TempDir()
	b := newTestBridge(t, dir, r.endpoint(), WithBatch(1000, 5*time.Millisecond))
	h := newTestHandler(t, dir, b)
	l := handler.Logger(slog.New(h))
	for i := range 50 {
		if i%2 == 0 {
			// Half the time wait until it is idle, half the time log at once.
			eventually(t, 5*time.Second, "the exporter goes idle", b.idle.Load)
		}
		l.Info("ping", "i", i)
		want := uint64(i + 1)
		eventually(t, 5*time.Second, fmt.Sprintf("record %d exported", i), func() bool { return b.Stats().Cursor >= want })
	}
	eventually(t, 5*time.Second, "the cursor file at the last record", func() bool {
		seq, _, err := readCursor(cursorPath(dir, chain.DefaultPrefix))
		return err == nil && seq >= 50 && seq == b.Stats().Cursor
	})
}

// A cursor that cannot be checked against the record it names (the line at
// its seq does not parse: read finds the next one) is not trusted: every
// record before it is exported too.
func TestCursorAtUnparsableLineNotTrusted(t *testing.T) {
	r := newReceiver(t)
	dir := writtenTrail(t, 20)
	files := fileListing(t, dir)
	p := files[len(files)-1]
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) < 12 {
		t.Fatalf("%d lines in %s", len(lines), p)
	}
	l10, err := chain.ParseLine([]byte(strings.TrimSuffix(lines[9], "\n")))
	if err != nil {
		t.Fatal(err)
	}
	lines[9] = "{\"damaged\":true}\n"
	if err := os.WriteFile(p, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeCursor(cursorPath(dir, chain.DefaultPrefix), l10.Seq, [32]byte{9, 9, 9}); err != nil {
		t.Fatal(err)
	}
	b := newTestBridge(t, dir, r.endpoint())
	if err := shutdown(t, b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for s := uint64(1); s < l10.Seq; s++ {
		want = append(want, s)
	}
	if miss := r.missing(want); len(miss) != 0 {
		t.Errorf("the unchecked cursor %d was kept: seqs %v never exported", l10.Seq, miss)
	}
}
