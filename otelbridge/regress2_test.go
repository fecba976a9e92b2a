package otelbridge

// Regression tests of the second review of the OTLP leg (review-bridge2).

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/internal/testfs"
)

// copyDir copies the regular files of src into a new temporary directory:
// the state a crash of the process that writes src leaves (no close
// record in the newest file, no successor).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	testfs.CopyFiles(t, src, dst, nil)
	return dst
}

// crashedDir returns a directory holding what a handler that wrote n
// records and then crashed (no Close) leaves.
func crashedDir(t *testing.T, n int) string {
	t.Helper()
	live := t.TempDir()
	h := newTestHandler(t, live)
	writeRecords(t, h, n, "before-crash")
	dir := copyDir(t, live) // the handler is still open: a crash image
	h.Close()
	return dir
}

// Review 2, finding 4. As TestCorruptGzipSkippedNotWedged, but the damage is at the start
// of the compressed file (its first deflate block), where firstSeq reads:
// locate's error is not an unreadableError, so build retried it for ever
// and nothing after the damaged file was exported. Now locate and firstSeq
// return an unreadableError, which build passes over (reported, skipped).
func TestGzipDamagedAtStartNotWedged(t *testing.T) {
	for _, dmg := range []struct {
		name     string
		from, to int
	}{
		{"first block", 12, 76}, // firstSeq's read fails
		{"header", 0, 4},        // gzip.NewReader fails
	} {
		t.Run(dmg.name, func(t *testing.T) {
			r := newReceiver(t)
			dir, want := damagedGzipTrail(t, func(int) (int, int) { return dmg.from, dmg.to })
			b := newTestBridge(t, dir, r.endpoint())
			err := shutdown(t, b, 5*time.Second)
			st := b.Stats()
			if miss := r.missing(want); len(miss) != 0 {
				t.Errorf("%d of the %d records in the intact files never exported (Shutdown: %v; %+v)", len(miss), len(want), err, st)
			}
			if st.Skipped == 0 {
				t.Errorf("the damaged file's records are not counted as skipped: %+v", st)
			}
		})
	}
}

// Review 2, finding 1. A receiver that answers 400 to every request (a
// misconfiguration: a collector whose pipeline fails permanently, a
// gateway wanting a tenant header, a JSON-only endpoint...) must not make
// every record "rejected" and move the cursor past it: once the receiver
// is fixed, every record must arrive. Before the fix each batch was split
// down to single records, each was rejected, and the cursor passed all of
// them.
func TestAll400IsNotPerRecordRejection(t *testing.T) {
	var bad atomic.Bool
	bad.Store(true)
	r := newGatedReceiver(t, func(w http.ResponseWriter, req *http.Request) bool {
		if bad.Load() {
			io.Copy(io.Discard, req.Body)
			http.Error(w, "Permanent error: missing tenant header", http.StatusBadRequest)
			return true
		}
		return false
	})
	dir := t.TempDir()
	b := newTestBridge(t, dir, r.endpoint())
	h := newTestHandler(t, dir, b)
	writeRecords(t, h, 40, "x")
	// The misconfiguration lasts while the batch is split to its first
	// record and retried a few times.
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().ExportFailures < 30 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := b.Stats(); st.Rejected != 0 || st.Cursor != 0 {
		t.Errorf("while every request is refused: %+v", st)
	}
	bad.Store(false) // fixed
	writeRecords(t, h, 4, "after")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	err := shutdown(t, b, 10*time.Second)
	st := b.Stats()
	lines := fileLines(t, dir)
	if miss := r.missing(seqsOf(lines)); len(miss) != 0 {
		t.Errorf("%d of %d records never delivered after the receiver was fixed (Shutdown: %v; %+v)", len(miss), len(lines), err, st)
	}
	if st.Rejected != 0 {
		t.Errorf("%d records counted rejected for a receiver that refused every request", st.Rejected)
	}
}

// Review 2, finding 1, the other side: a record the receiver refuses with
// 400 whatever else is in the request is still passed over when it is the
// first of its split (nothing else passed yet): the record after it, sent
// alone, shows that the receiver takes other requests.
func TestPoisonFirstRecordRejectedAfterProbe(t *testing.T) {
	const marker = "poison-4f2a"
	r := newGatedReceiver(t, func(w http.ResponseWriter, req *http.Request) bool {
		body, err := io.ReadAll(req.Body)
		if err == nil && bytes.Contains(body, []byte(marker)) {
			http.Error(w, "Permanent error: bad record", http.StatusBadRequest)
			return true
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		return false
	})
	dir := t.TempDir()
	b := newTestBridge(t, dir, r.endpoint())
	h := newTestHandler(t, dir, b)
	l := handler.Logger(slog.New(h))
	l.Info("fine")
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Cursor < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c := b.Stats().Cursor; c != 2 {
		t.Fatalf("cursor %d, want 2", c)
	}
	l.Info(marker) // seq 3, the first record of the next batch
	for i := range 20 {
		l.Info("fine", "i", i)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t, b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Rejected != 1 {
		t.Fatalf("want 1 rejected: %+v", st)
	}
	var want []uint64
	for _, ln := range fileLines(t, dir) {
		if ln.Seq != 3 {
			want = append(want, ln.Seq)
		}
	}
	if miss := r.missing(want); len(miss) != 0 {
		t.Errorf("records %v never delivered", miss)
	}
}

// Review 2, finding 5. After a record is rejected, the rest of its batch
// is not sent one record per request: export's split left part at 1 ("as
// large as the last one that passed") until the batch was done. Here the
// oversized record is the second of a 256-record batch of small records: 8
// halvings and 1 rejection are expected, then a few requests for the other
// 255; before the fix it made 255 more.
func TestRejectedRecordDoesNotSerializeRestOfBatch(t *testing.T) {
	const limit = 64 << 10
	var requests atomic.Int64
	r := newGatedReceiver(t, func(w http.ResponseWriter, req *http.Request) bool {
		requests.Add(1)
		if req.ContentLength > limit {
			io.Copy(io.Discard, req.Body)
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return true
		}
		return false
	})
	dir := t.TempDir()
	h := newTestHandler(t, dir)
	l := handler.Logger(slog.New(h))
	l.Info("huge", "blob", strings.Repeat("h", 100<<10)) // seq 2, the batch's second record
	for i := range 300 {
		l.Info("small", "i", i)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	b := newTestBridge(t, dir, r.endpoint())
	if err := shutdown(t, b, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Rejected != 1 {
		t.Fatalf("want 1 rejected: %+v", st)
	}
	if n := requests.Load(); n > 40 {
		t.Errorf("%d requests for 303 records with one rejected (one request per record after the rejection)", n)
	}
	var want []uint64
	for _, ln := range fileLines(t, dir) {
		if ln.Seq != 2 {
			want = append(want, ln.Seq)
		}
	}
	if miss := r.missing(want); len(miss) != 0 {
		t.Errorf("records %v never delivered", miss)
	}
}

// Review 2, finding 2. A bridge on a directory whose writer crashed
// (replay-only use, e.g. an exporter run over the directory after the
// crash, no handler attached): the newest file has no close record and no
// newer file, but no writer holds its lock, so every complete line is
// committed as far as anyone will ever know, and it must be exported.
// Before the fix the bridge held at the first line (hi is 0) for ever;
// Shutdown gave up with "Shutdown before the handler's Close?" and nothing
// was exported. While a writer holds the file's lock (as a live handler in
// another process does), it still holds, and Shutdown says why.
func TestReplayOnlyAfterCrash(t *testing.T) {
	dir := crashedDir(t, 30)
	files := fileListing(t, dir)
	release := lockLikeWriter(t, files[len(files)-1]) // the writer is alive
	lines := fileLines(t, dir)
	want := seqsOf(lines)
	r := newReceiver(t)
	hold, held := holdSignal()
	b := newTestBridge(t, dir, r.endpoint(), withHoldHook(hold))
	select {
	case seq := <-held:
		if seq != 1 {
			t.Errorf("held at %d, want 1", seq)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the bridge did not hold at a live writer's file")
	}
	if n := len(r.missing(want)); n != len(want) {
		t.Fatalf("%d lines of a live writer's file exported", len(want)-n)
	}
	release() // the writer crashes
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(r.missing(want)) != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if miss := r.missing(want); len(miss) != 0 {
		t.Errorf("%d of %d lines of the crashed writer never exported (%+v)", len(miss), len(lines), b.Stats())
	}
	if err := shutdown(t, b, 5*time.Second); err != nil {
		t.Error(err)
	}

	// Shutdown while the writer is alive: the error names the record and
	// why it waited, without assuming a handler in this process.
	dir = crashedDir(t, 5)
	files = fileListing(t, dir)
	lockLikeWriter(t, files[len(files)-1])
	b = newTestBridge(t, dir, newReceiver(t).endpoint())
	err := shutdown(t, b, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "record 1 in "+files[len(files)-1]) || !strings.Contains(err.Error(), "a writer") {
		t.Errorf("Shutdown: %v", err)
	}
}

// Review 2, finding 3. The documented use after a crash: Setup, then
// handler.New on the same directory (it resumes the chain in a new file:
// the crashed file is now finished), and the service does not log for a
// while. The records the crashed process wrote must be exported now, not
// only at the next audit record or at Shutdown (a crash loop, or a SIGKILL
// before a graceful Shutdown, never exported them). The bridge holds at
// the crashed file before the handler opens (here a lock stands for a
// writer not known to be gone, so that only the new file finishes it);
// before the fix it looked again only when Audit raised hi.
func TestCrashedFileExportedAfterRestartWithoutNewRecords(t *testing.T) {
	dir := crashedDir(t, 30)
	files := fileListing(t, dir)
	lockLikeWriter(t, files[len(files)-1])
	want := seqsOf(fileLines(t, dir))
	r := newReceiver(t)
	hold, held := holdSignal()
	b := newTestBridge(t, dir, r.endpoint(), withHoldHook(hold))
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the bridge did not hold before the handler opened")
	}
	h := newTestHandler(t, dir, b) // resumes: open record in a new file
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(r.missing(want)) != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if miss := r.missing(want); len(miss) != 0 {
		t.Errorf("5 s after the restart, %d of %d records of the crashed process are not exported (%+v)", len(miss), len(want), b.Stats())
	}
	h.Close()
	_ = shutdown(t, b, 5*time.Second)
}

// Review 2, finding 1: a receiver fixed between refusing a record sent
// alone and accepting the probe (the record after it) does not make that
// record rejected: it is asked about once more. Here 22 lines are one
// batch; the receiver refuses the first 6 requests (22, 11, 6, 3, 2 and 1
// records), then takes everything.
func TestReceiverFixedDuringProbe(t *testing.T) {
	var requests atomic.Int64
	r := newGatedReceiver(t, func(w http.ResponseWriter, req *http.Request) bool {
		if requests.Add(1) <= 6 {
			io.Copy(io.Discard, req.Body)
			http.Error(w, "Permanent error: pipeline failed", http.StatusBadRequest)
			return true
		}
		return false
	})
	dir := writtenTrail(t, 20)
	lines := fileLines(t, dir)
	if len(lines) != 22 {
		t.Fatalf("%d lines, want 22", len(lines))
	}
	b := newTestBridge(t, dir, r.endpoint())
	if err := shutdown(t, b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Rejected != 0 {
		t.Errorf("rejected a record the receiver refused only while it was broken: %+v", st)
	}
	if miss := r.missing(seqsOf(lines)); len(miss) != 0 {
		t.Errorf("records %v never delivered", miss)
	}
}
