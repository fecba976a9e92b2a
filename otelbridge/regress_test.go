package otelbridge

// Regression tests for the findings of the review of branch review-bridge
// (one test per finding, adapted from its probe), with their helpers.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/slogaudit/slogaudit/internal/faultfile"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	logpb "go.opentelemetry.io/proto/otlp/logs/v1"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/rotate"
)

// fwdSink forwards to a Bridge set later.
type fwdSink struct{ b atomic.Pointer[Bridge] }

func (s *fwdSink) Audit(body []byte, pos chain.Position) {
	if b := s.b.Load(); b != nil {
		b.Audit(body, pos)
	}
}

// newSyncHookHandler returns a SyncAlways handler whose files' Sync is
// hook's.
func newSyncHookHandler(t *testing.T, dir string, hook *faultfile.FS, sinks ...handler.Sink) *handler.Handler {
	t.Helper()
	h, err := handler.New(handler.Options{
		Dir: dir, App: slog.NewJSONHandler(io.Discard, nil), AuditOnlyToFile: true,
		Sinks:   sinks,
		Rotate:  rotate.Options{Sync: rotate.SyncAlways, OpenFile: hook.Open},
		OnError: func(error) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// receivedChains returns, per seq, the set of audit.chain values received.
func (r *receiver) receivedChains() map[int64]map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int64]map[string]bool)
	for _, rc := range r.recs {
		s, ok := attr(rc.rec.Attributes, SeqKey)
		if !ok {
			continue
		}
		c, _ := attr(rc.rec.Attributes, ChainKey)
		if out[s.GetIntValue()] == nil {
			out[s.GetIntValue()] = make(map[string]bool)
		}
		out[s.GetIntValue()][c.GetStringValue()] = true
	}
	return out
}

// checkExactlyTheFiles fails t unless the receiver got every line of the
// files with its own chain value, and no record that is not in the files.
func checkExactlyTheFiles(t *testing.T, r *receiver, dir string) {
	t.Helper()
	checkExactly(t, r, fileLines(t, dir), "the audit files")
}

// checkExactly fails t unless the receiver got every one of lines, with its
// own chain value, and nothing else; where names the lines in messages.
func checkExactly(t *testing.T, r *receiver, lines []chain.Line, where string) {
	t.Helper()
	got := r.receivedChains()
	want := map[int64]string{}
	for _, ln := range lines {
		c := hex.EncodeToString(ln.MAC[:])
		want[int64(ln.Seq)] = c
		if !got[int64(ln.Seq)][c] {
			t.Errorf("seq %d of %s (chain %.16s…) never reached the collector; it got %v", ln.Seq, where, c, got[int64(ln.Seq)])
		}
	}
	for seq, chains := range got {
		for c := range chains {
			if want[seq] != c {
				t.Errorf("the collector holds seq %d with chain %.16s…, a record that is not in %s", seq, c, where)
			}
		}
	}
}

// closeAndRestart closes h, shuts b down, and runs a second bridge on dir
// to its shutdown: a restart exports what the first missed, if it can.
func closeAndRestart(t *testing.T, h interface{ Close() error }, b *Bridge, dir, endpoint string) {
	t.Helper()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t, b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t, newTestBridge(t, dir, endpoint), 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// holdSignal returns a hold hook and a channel that receives the seqs it
// is called with (without blocking the exporter).
func holdSignal() (func(uint64), chan uint64) {
	ch := make(chan uint64, 64)
	return func(seq uint64) {
		select {
		case ch <- seq:
		default:
		}
	}, ch
}

// Finding 1. A bridge that starts (or replays from the file for any other
// reason) while a write's fsync is pending must not export that line: the
// fsync fails, the handler truncates it away and gives its seq to the next
// record. Before the fix the bridge exported the rolled-back line, moved
// its cursor past its seq and dropped the real record with that seq as
// already exported, also after a restart.
func TestRolledBackLineNotExported(t *testing.T) {
	r := newReceiver(t)
	dir := t.TempDir()
	hook := faultfile.New()
	sink := &fwdSink{}
	h := newSyncHookHandler(t, dir, hook, sink)
	l := handler.Logger(slog.New(h))
	for i := range 5 {
		l.Info("before", "i", i)
	}
	hook.Arm()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Info("phantom: this write's fsync fails, the handler rolls it back")
	}()
	<-hook.Entered // seq 7 is in the file, not committed

	hold, held := holdSignal()
	b := newTestBridge(t, dir, r.endpoint(), withHoldHook(hold))
	sink.b.Store(b)
	deadline := time.After(10 * time.Second)
wait:
	for {
		select {
		case <-held:
			break wait // it read the file and stopped where it must
		case <-deadline:
			t.Fatalf("the bridge neither held nor exported: %+v", b.Stats())
		case <-time.After(time.Millisecond):
			if b.Stats().Cursor >= 7 {
				break wait // exported the uncommitted line: fails below
			}
		}
	}
	close(hook.Release) // fsync fails: truncated, seq 7 is free again
	<-done
	l.Info("real record 7")
	l.Info("real record 8")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t, b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	b2 := newTestBridge(t, dir, r.endpoint())
	if err := shutdown(t, b2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	checkExactlyTheFiles(t, r, dir)
}

// Finding 1, with the bridge attached from the start (records up to 6
// confirmed by Audit) and a Shutdown, which reads the files to their end,
// while the write of seq 7 waits for its fsync: Shutdown stops before 7
// and says why; the next bridge exports the real 7.
func TestShutdownDuringPendingWriteStopsAtCommitted(t *testing.T) {
	r := newReceiver(t)
	dir := t.TempDir()
	hook := faultfile.New()
	hold, held := holdSignal()
	b := newTestBridge(t, dir, r.endpoint(), withHoldHook(hold))
	h := newSyncHookHandler(t, dir, hook, b)
	l := handler.Logger(slog.New(h))
	for i := range 5 {
		l.Info("before", "i", i)
	}
	eventually(t, 10*time.Second, "records 1-6 exported", func() bool { return b.Stats().Cursor >= 6 })
	hook.Arm()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Info("phantom")
	}()
	<-hook.Entered
	err := shutdown(t, b, 5*time.Second)
	if got := b.Stats().Cursor; got != 6 {
		t.Errorf("cursor %d after Shutdown, want 6 (Shutdown: %v)", got, err)
	} else if err == nil {
		t.Errorf("Shutdown returned nil, but seq 7 was left for the next start")
	}
	var heldAt []uint64
	for len(held) > 0 {
		heldAt = append(heldAt, <-held)
	}
	if !slices.Contains(heldAt, 7) {
		t.Errorf("the bridge did not hold at 7: it held at %v", heldAt)
	}
	close(hook.Release)
	<-done
	l.Info("real record 7")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := newTestBridge(t, dir, r.endpoint())
	if err := shutdown(t, b2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	checkExactlyTheFiles(t, r, dir)
}

// newGatedReceiver is a receiver whose requests first go through gate,
// which may answer them itself (returning true).
func newGatedReceiver(t *testing.T, gate func(w http.ResponseWriter, req *http.Request) bool) *receiver {
	t.Helper()
	r := &receiver{t: t, seqs: make(map[int64]int)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if gate(w, req) {
			return
		}
		r.serve(w, req)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

var _ = context.Background

// Finding 2. A member with a meaning of its own (msg, level, time,
// trace_id, span_id) that a record repeats — files written before the
// handler named such attributes "_msg" and so on — does not replace the
// record's own: the first one counts, a later one is an attribute named as
// the handler names it now. Before the fix the last one won and the
// record's own message, severity, time and trace were lost.
func TestRepeatedHeaderMemberDoesNotShadow(t *testing.T) {
	const (
		tid = "0af7651916cd43dd8448eb211c80319c"
		sid = "b7ad6b7169203331"
	)
	members := []byte(`"time":"2026-11-27T10:00:00.5Z","level":"ERROR","msg":"credential deleted by mallory",` +
		`"trace_id":"` + tid + `","span_id":"` + sid + `","event":"credential_access",` +
		`"msg":"routine health check","level":"DEBUG","time":"2001-01-01T00:00:00Z",` +
		`"trace_id":"00000000000000000000000000000001","span_id":"0000000000000001","event":"other"`)
	rec, sc, err := convert(members, chain.Position{Seq: 9, Chain: [32]byte{1}}, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Body().AsString(); got != "credential deleted by mallory" {
		t.Errorf("body %q", got)
	}
	if rec.Severity() != log.SeverityError || rec.SeverityText() != "ERROR" {
		t.Errorf("severity %v %q", rec.Severity(), rec.SeverityText())
	}
	if want := time.Date(2026, 11, 27, 10, 0, 0, 5e8, time.UTC); !rec.Timestamp().Equal(want) {
		t.Errorf("time %v, want %v", rec.Timestamp(), want)
	}
	if sc.TraceID().String() != tid || sc.SpanID().String() != sid {
		t.Errorf("trace %v span %v", sc.TraceID(), sc.SpanID())
	}
	if rec.EventName() != "audit.credential_access" {
		t.Errorf("event name %q", rec.EventName())
	}
	attrs := map[string]string{}
	rec.WalkAttributes(func(kv attribute.KeyValue) bool {
		attrs[string(kv.Key)] = kv.Value.String()
		return true
	})
	for k, v := range map[string]string{
		"_msg": "routine health check", "_level": "DEBUG", "_time": "2001-01-01T00:00:00Z",
		"_trace_id": "00000000000000000000000000000001", "_span_id": "0000000000000001",
		"event": "credential_access", "_event": "other",
	} {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q (all: %v)", k, attrs[k], v, attrs)
		}
	}
}

// Finding 2: a key made by flattening a group does not replace a
// top-level member with that key, nor the other way round: the first one
// keeps the key, the later one gets an underscore (the handler's rule).
// Before the fix the later one replaced the earlier one's value.
func TestFlattenedKeyDoesNotReplaceTopLevel(t *testing.T) {
	for _, tc := range []struct {
		members string
		want    []string
	}{
		{`"msg":"m","user.id":"alice","user":{"id":"bob","n":1}`,
			[]string{"user.id=STRING:alice", "_user.id=STRING:bob", "user.n=INT64:1"}},
		{`"msg":"m","user":{"id":"bob"},"user.id":"alice"`,
			[]string{"user.id=STRING:bob", "_user.id=STRING:alice"}},
		{`"msg":"m","a":{"b":1},"a.b":2,"_a.b":3`,
			[]string{"a.b=INT64:1", "_a.b=INT64:2", "__a.b=INT64:3"}},
	} {
		rec, _, err := convert([]byte(tc.members), chain.Position{Seq: 9, Chain: [32]byte{1}}, time.Unix(1, 0))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range renderAttrs(rec.WalkAttributes) {
			if !strings.HasPrefix(a, ChainKey+"=") {
				got = append(got, a)
			}
		}
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: want %s among %v", tc.members, w, got)
			}
		}
	}
}

// Finding 3. A compressed file that no longer decompresses to its end (bit
// rot in a .gz) is reported, the rest of it is counted as skipped, and the
// export goes on with the next file. Before the fix the bridge retried the
// same read forever: nothing after that file was exported again.
func TestCorruptGzipSkippedNotWedged(t *testing.T) {
	r := newReceiver(t)
	dir, want := damagedGzipTrail(t, func(n int) (int, int) { return n / 2, n/2 + 64 })
	firstOfSecond := want[0]
	reported := otelErrorsContaining("does not read to its end")

	b := newTestBridge(t, dir, r.endpoint())
	err := shutdown(t, b, 10*time.Second)
	if err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if miss := r.missing(want); len(miss) != 0 {
		t.Fatalf("%d of the %d records in the intact files never exported (first %d); %+v", len(miss), len(want), miss[0], b.Stats())
	}
	// Every seq of the damaged file is either exported or skipped.
	got := r.receivedChains()
	exported := uint64(0)
	for s := range firstOfSecond {
		if len(got[int64(s)]) > 0 {
			exported++
		}
	}
	st := b.Stats()
	if st.Skipped == 0 || exported+st.Skipped != firstOfSecond-1 {
		t.Errorf("from the damaged file (seqs 1-%d): %d exported, %d skipped; %+v", firstOfSecond-1, exported, st.Skipped, st)
	}
	if otelErrorsContaining("does not read to its end") == reported {
		t.Errorf("the damaged file was not reported")
	}
}

// writtenTrail returns a directory with n records written by a handler
// that is closed again.
func writtenTrail(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	h := newTestHandler(t, dir)
	writeRecords(t, h, n, "x")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// damagedGzipTrail writes a trail of at least three files, the first
// compressed, flips the bytes span(its size) gives of that .gz, and
// returns the directory and the seqs of the intact files.
func damagedGzipTrail(t *testing.T, span func(n int) (from, to int)) (string, []uint64) {
	t.Helper()
	dir := writtenTrail(t, 3000)
	files := fileListing(t, dir)
	if len(files) < 3 || !strings.HasSuffix(files[0], ".gz") {
		t.Fatalf("want >= 3 files, the first compressed: %v", files)
	}
	var want []uint64
	for _, f := range files[1:] {
		want = append(want, seqsOf(fileLinesOf(t, f))...)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	from, to := span(len(data))
	for i := from; i < to; i++ {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, want
}

// Finding 4. A receiver that refuses requests above a body limit (as the
// Collector's max_request_body_size does, with 400) still gets every
// record: batches are bounded in bytes, and a refused request is split
// until it passes; a record refused even alone is counted as rejected and
// passed over, and the cursor moves on. Before the fix the bridge resent
// the same refused batch forever. Here: 4 KB records, a 256 KiB limit,
// batches of 256 records, and one record of 300 KB that no request can
// carry.
func TestRefusedBatchSplitAndRecordRejected(t *testing.T) {
	const limit = 256 << 10
	r := newGatedReceiver(t, func(w http.ResponseWriter, req *http.Request) bool {
		if req.ContentLength > limit {
			io.Copy(io.Discard, req.Body)
			http.Error(w, "request body too large", http.StatusBadRequest)
			return true
		}
		return false
	})
	dir := t.TempDir()
	h := newTestHandler(t, dir)
	l := handler.Logger(slog.New(h))
	blob := strings.Repeat("b", 4000)
	for i := range 300 {
		if i == 150 {
			l.Info("huge", "blob", strings.Repeat("h", 300<<10))
		}
		l.Info("big", "i", i, "blob", blob)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	var huge uint64
	var want []uint64
	for _, ln := range fileLines(t, dir) {
		if strings.Contains(string(ln.Raw), `"msg":"huge"`) {
			huge = ln.Seq
			continue
		}
		want = append(want, ln.Seq)
	}
	mp := &countingMeterProvider{}
	b := newTestBridge(t, dir, r.endpoint(), WithMeterProvider(mp))
	err := shutdown(t, b, 10*time.Second)
	st := b.Stats()
	if err != nil {
		t.Errorf("Shutdown: %v; %+v", err, st)
	}
	if miss := r.missing(want); len(miss) != 0 {
		t.Fatalf("%d of %d records never delivered (%+v)", len(miss), len(want), st)
	}
	if _, ok := r.bySeq(huge); ok {
		t.Errorf("the record the receiver refuses was delivered?")
	}
	if st.Rejected != 1 || mp.get("slogaudit.otlp.rejected") != 1 || st.Cursor != want[len(want)-1] || st.Skipped != 0 {
		t.Errorf("want 1 rejected (metric %d) and the cursor at the end: %+v", mp.get("slogaudit.otlp.rejected"), st)
	}
	if seq, _, _ := readCursor(cursorPath(dir, chain.DefaultPrefix)); seq != st.Cursor {
		t.Errorf("cursor file at %d, Stats %d", seq, st.Cursor)
	}
}

// Finding 4: batches are bounded by WithBatchBytes too: with 64 KiB, no
// request carries much more than 64 KiB of records.
func TestBatchBoundedInBytes(t *testing.T) {
	var largest atomic.Int64
	r := newGatedReceiver(t, func(w http.ResponseWriter, req *http.Request) bool {
		if n := req.ContentLength; n > largest.Load() {
			largest.Store(n)
		}
		return false
	})
	dir := t.TempDir()
	h := newTestHandler(t, dir)
	l := handler.Logger(slog.New(h))
	blob := strings.Repeat("b", 4000)
	for i := range 200 {
		l.Info("big", "i", i, "blob", blob)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	b := newTestBridge(t, dir, r.endpoint(), WithBatchBytes(64<<10))
	if err := shutdown(t, b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, r, dir, time.Second)
	if n := largest.Load(); n > 64<<10+8<<10 {
		t.Errorf("a request of %d bytes", n)
	}
}

// Finding 4: only answers about the request itself split it; a receiver
// that refuses every request (auth, a wrong path) or is down is retried
// with the records kept. Of the answers that split a request, only a size
// refusal (413, otlploghttp's own limit) condemns a record sent alone by
// itself; a 400 does so only once the receiver has shown it takes other
// requests (export; TestAll400IsNotPerRecordRejection).
func TestRefusedClassifies(t *testing.T) {
	for msg, want := range map[string]refusalKind{
		"failed to send logs to http://127.0.0.1:1/v1/logs: 400 Bad Request (body: too large)": refusedBad,
		"failed to send logs to http://h/v1/logs: 400 Bad Request (body: missing tenant)":      refusedBad,
		"failed to send logs to http://h/v1/logs: 413 Request Entity Too Large (body: x)":      refusedSize,
		"request body too large: exceeded 67108864 bytes":                                      refusedSize,
		"failed to send logs to http://h/v1/logs: 401 Unauthorized (body: x)":                  notRefused,
		"failed to send logs to http://h/v1/logs: 404 Not Found (body: x)":                     notRefused,
		"failed to send logs to http://h/v1/logs: 500 Internal Server Error (body: 400)":       notRefused,
		"Post \"http://h/v1/logs\": dial tcp: connection refused":                              notRefused,
	} {
		if got := refusal(fmt.Errorf("wrapped: %w", errors.New(msg))); got != want {
			t.Errorf("refusal(%q) = %v, want %v", msg, got, want)
		}
	}
}

// Finding 5. With OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT below a record's
// attribute count, the record still arrives with its audit.seq and full
// audit.chain (they come first; the SDK keeps the first attributes), and a
// value length limit that would cut audit.chain is New's error, naming
// the variable. Before the fix both were appended last: dropped first, or
// cut to the limit.
func TestAttributeLimitsKeepSeqAndChain(t *testing.T) {
	for _, tc := range []struct {
		env, val string
		refused  bool
	}{
		{"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "8", false},
		{"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "2", false},
		{"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "1", true},
		{"OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64", false},
		{"OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "32", true},
		{"OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "0", true},
	} {
		t.Run(tc.env+"="+tc.val, func(t *testing.T) {
			t.Setenv(tc.env, tc.val)
			r := newReceiver(t)
			dir := t.TempDir()
			if tc.refused {
				_, err := New(discardExporter{}, WithDir(dir))
				if err == nil || !strings.Contains(err.Error(), tc.env) {
					t.Fatalf("New: %v; want an error naming %s", err, tc.env)
				}
				return
			}
			b := newTestBridge(t, dir, r.endpoint())
			h := newTestHandler(t, dir, b)
			l := handler.Logger(slog.New(h))
			l.Info("many attributes", "a", 1, "b", 2, "c", 3, "d", 4, "e", 5, "f", 6, "g", 7, "h", 8, "i", 9, "j", 10, "audit.seq", "mine")
			h.Close()
			if err := shutdown(t, b, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			for _, ln := range fileLines(t, dir) {
				got := r.receivedChains()[int64(ln.Seq)]
				if len(got) != 1 || !got[hex.EncodeToString(ln.MAC[:])] {
					t.Errorf("record seq %d did not arrive with audit.seq and its full audit.chain (got %v)", ln.Seq, got)
				}
			}
		})
	}
}

// Finding 5: an attribute named audit.seq in the record does not take the
// key of the bridge's own.
func TestRecordAttributeNamedAuditSeq(t *testing.T) {
	rec, _, err := convert([]byte(`"msg":"m","audit.seq":"mine","audit.chain":"x"`), chain.Position{Seq: 9, Chain: [32]byte{1}}, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	got := renderAttrs(rec.WalkAttributes)
	want := []string{"audit.seq=INT64:9", "audit.chain=STRING:01" + strings.Repeat("0", 62), "_audit.seq=STRING:mine", "_audit.chain=STRING:x"}
	if !slices.Equal(got, want) {
		t.Errorf("attributes %v, want %v", got, want)
	}
}

// Finding 6. The notes cursor holds the chain value of its note and is
// checked against the chain in the directory, as the record cursor: when a
// new chain starts in the directory (`rm dir/*` leaves the dot files),
// every checkpoint of the new chain is exported. Before the fix the old
// cursor's seq was trusted and the new chain's checkpoints up to it were
// never exported.
func TestNotesCursorOfAnotherChain(t *testing.T) {
	r := newReceiver(t)
	dir := t.TempDir()
	skey, _, err := chain.GenerateSigner("otel-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	session := func(n int) {
		b := newTestBridge(t, dir, r.endpoint())
		h, err := handler.New(handler.Options{
			Dir: dir, Key: chain.GenerateKey(), App: slog.NewJSONHandler(io.Discard, nil), AuditOnlyToFile: true,
			Sinks:       []handler.Sink{b},
			Checkpoints: chain.CheckpointOptions{Signer: signer, Every: 50},
		})
		if err != nil {
			t.Fatal(err)
		}
		writeRecords(t, h, n, "notes")
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		if err := shutdown(t, b, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	session(400)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	r.mu.Lock()
	r.recs = nil
	r.mu.Unlock()
	session(150)
	es, err := chain.ReadCheckpointsFile(filepath.Join(dir, chain.CheckpointsFileName("")))
	if err != nil || len(es) == 0 {
		t.Fatalf("%d notes in the new chain's file, %v", len(es), err)
	}
	got := r.notes()
	for _, e := range es {
		if _, ok := got[int64(e.Seq)]; !ok {
			t.Errorf("the new chain's checkpoint at seq %d was never exported", e.Seq)
		}
	}
	// A restart with the cursor of this chain exports no note again.
	r.mu.Lock()
	r.recs = nil
	r.mu.Unlock()
	b := newTestBridge(t, dir, r.endpoint())
	if err := shutdown(t, b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := r.notes(); len(got) != 0 {
		t.Errorf("notes exported again after a restart: %v", got)
	}
}

// Finding 7. A Shutdown that finds another one flushing returns by its own
// deadline. Before the fix it waited for the first one (sync.Once), with
// the collector down and no deadline on the first: for good.
func TestSecondShutdownKeepsItsDeadline(t *testing.T) {
	r := newReceiver(t)
	r.stop()
	dir := t.TempDir()
	b := newTestBridge(t, dir, r.endpoint())
	h := newTestHandler(t, dir, b)
	writeRecords(t, h, 10, "x")
	h.Close()
	first := make(chan error, 1)
	go func() { first <- b.Shutdown(context.Background()) }()
	eventually(t, 5*time.Second, "the first Shutdown has begun", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.closed
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() { second <- b.Shutdown(ctx) }()
	select {
	case err := <-second:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second Shutdown: %v, want its deadline", err)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("Shutdown with a 200 ms deadline has not returned after 3 s")
	}
	r.start() // let the first one finish
	if err := <-first; err != nil {
		t.Errorf("first Shutdown: %v", err)
	}
	if err := shutdown(t, b, time.Second); err != nil {
		t.Errorf("a later Shutdown: %v, want the first one's result", err)
	}
	waitDelivered(t, r, dir, time.Second)
}

// Finding 8. A cursor whose record retention removed (a long outage) is
// kept: only the records after it that are gone count as skipped. Before
// the fix it was taken for another chain's, and every seq before the
// oldest file counted as skipped, the acknowledged ones too.
func TestSkippedAfterRetentionCountsOnlyUnexported(t *testing.T) {
	r := newReceiver(t)
	dir := writtenTrail(t, 2500)
	files := fileListing(t, dir)
	if len(files) < 4 {
		t.Fatalf("%d files", len(files))
	}
	second := fileLinesOf(t, files[1])
	acked := second[len(second)/2] // the collector acknowledged up to here
	if err := writeCursor(cursorPath(dir, chain.DefaultPrefix), acked.Seq, acked.MAC); err != nil {
		t.Fatal(err)
	}
	os.Remove(files[0]) // retention, during the outage
	os.Remove(files[1])
	first := fileLinesOf(t, files[2])[0].Seq
	b := newTestBridge(t, dir, r.endpoint())
	if err := shutdown(t, b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if want := first - 1 - acked.Seq; b.Stats().Skipped != want {
		t.Errorf("skipped %d, want %d (seqs %d..%d; 1..%d were acknowledged)", b.Stats().Skipped, want, acked.Seq+1, first-1, acked.Seq)
	}
	waitDelivered(t, r, dir, time.Second)
}

// Finding 10. A record sent again after a restart (a process killed after
// the acknowledgement, before the cursor was written: simulated by
// removing the cursor file) is identical to the first copy, observed
// timestamp included (the record's own time). Before the fix the observed
// timestamp was the time of each conversion, contrary to the package
// documentation.
func TestDuplicatesIdentical(t *testing.T) {
	r := newReceiver(t)
	dir := writtenTrail(t, 3)
	b := newTestBridge(t, dir, r.endpoint())
	if err := shutdown(t, b, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cursorPath(dir, chain.DefaultPrefix)); err != nil {
		t.Fatal(err)
	}
	b2 := newTestBridge(t, dir, r.endpoint())
	if err := shutdown(t, b2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	bySeq := map[int64][]*logpb.LogRecord{}
	for _, rc := range r.recs {
		s, _ := attr(rc.rec.Attributes, SeqKey)
		bySeq[s.GetIntValue()] = append(bySeq[s.GetIntValue()], rc.rec)
	}
	if len(bySeq) != 5 {
		t.Fatalf("%d seqs received, want 5", len(bySeq))
	}
	for seq, copies := range bySeq {
		if len(copies) != 2 {
			t.Fatalf("seq %d received %d times; want 2", seq, len(copies))
		}
		if !proto.Equal(copies[0], copies[1]) {
			t.Errorf("seq %d: the duplicate differs:\n%s\n%s", seq, prototext.Format(copies[0]), prototext.Format(copies[1]))
		}
		if copies[0].ObservedTimeUnixNano != copies[0].TimeUnixNano {
			t.Errorf("seq %d: observed %d, time %d", seq, copies[0].ObservedTimeUnixNano, copies[0].TimeUnixNano)
		}
	}
}

// Finding 9. A receiver that sheds load with 429 and Retry-After gets no
// request before the time it asked for (the bridge waits the longer of its
// backoff and Retry-After). Before the fix the bridge retried on its own
// backoff, 10 ms doubling here: several requests within the second.
func TestRetryAfterHonoured(t *testing.T) {
	var mu sync.Mutex
	var first time.Time
	early := 0
	r := newGatedReceiver(t, func(w http.ResponseWriter, req *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if first.IsZero() {
			first = now
		} else if now.Sub(first) >= time.Second {
			return false
		} else {
			early++
		}
		io.Copy(io.Discard, req.Body)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusTooManyRequests)
		return true
	})
	dir := t.TempDir()
	b := newTestBridge(t, dir, r.endpoint())
	h := newTestHandler(t, dir, b)
	writeRecords(t, h, 10, "x")
	waitDelivered(t, r, dir, 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if early > 0 {
		t.Errorf("%d requests within the 1 s Retry-After", early)
	}
}
