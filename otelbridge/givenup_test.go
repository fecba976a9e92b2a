package otelbridge

import (
	"context"
	"github.com/slogaudit/slogaudit/internal/faultfile"
	"log/slog"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/rotate"
)

// trailLines returns the lines of the chain as the trail holds them: each
// file's lines up to the seq before the next file's open record, whose
// prev must be the chain value of the line before it (the newer file
// continues the chain from there). A given-up file's lines from that seq
// on were never acknowledged and are not part of the trail. It also
// returns how many lines were left out so.
func trailLines(t *testing.T, dir string) (trail []chain.Line, givenUp int) {
	t.Helper()
	files, err := rotate.List(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var perFile [][]chain.Line
	for _, p := range files {
		perFile = append(perFile, fileLinesOf(t, p))
	}
	for i, ls := range perFile {
		for _, l := range ls {
			if i+1 < len(perFile) && len(perFile[i+1]) > 0 {
				open := perFile[i+1][0]
				if l.Seq >= open.Seq {
					givenUp++
					continue
				}
				if l.Seq == open.Seq-1 && l.MAC != open.Prev {
					t.Fatalf("%s: the open record at %d does not continue from line %d of %s", files[i+1], open.Seq, l.Seq, files[i])
				}
			}
			trail = append(trail, l)
		}
	}
	return trail, givenUp
}

// A file the writer gave up (its fsync failed, then the truncation back)
// holds lines that were never committed, with seqs the newer file commits
// again (its open record and the records after it). A bridge that replays
// the older file sequentially, once Audit has seen those seqs from the
// newer file, must not export the given-up lines: they are not in the
// trail, and exporting one moves the cursor past its seq so that the real
// record with that seq (here the newer file's open record, which never
// comes through Audit) is never exported, not even by a restarted bridge.
// Every seq of the trail must reach the collector with its own chain value,
// and nothing else.
func TestGivenUpTailNotExported(t *testing.T) {
	r := newReceiver(t)
	r.stop() // an outage: everything is replayed from the files
	dir := t.TempDir()
	fs := &faultfile.FS{}
	fs.Abandon.Store(true)
	sink := &fwdSink{}
	h, err := handler.New(handler.Options{Dir: dir, App: slog.DiscardHandler, AuditOnlyToFile: true, Sinks: []handler.Sink{sink},
		OnError: func(error) {}, Rotate: rotate.Options{Sync: rotate.SyncAlways, OpenFile: fs.Open}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	l := handler.Logger(slog.New(h))
	for i := range 4 {
		l.Info("before", "i", i) // seqs 2..5, written before the bridge: read from the file
	}

	// Attached now, it reads from seq 1 and holds at the open record (Audit
	// has seen nothing, the writer holds the file) until Audit raises hi.
	// A batch delay longer than the test keeps it from looking again
	// before then, so that it reads the given-up line with hi past it.
	hold, held := holdSignal()
	b := newTestBridge(t, dir, r.endpoint(), WithBatch(256, time.Hour), withHoldHook(hold))
	sink.b.Store(b)
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatalf("the bridge did not hold at the open record: %+v", b.Stats())
	}

	fs.Arm()
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "phantom: fsync and truncation fail", 0)
	rec.AddAttrs(handler.Audit)
	if err := h.Handle(context.Background(), rec); err == nil {
		t.Fatal("the phantom's write did not fail")
	}
	l.Info("real record after the given-up file")
	l.Info("real record 2")
	if files, _ := rotate.List(dir, "", ""); len(files) != 2 {
		t.Fatalf("files %v: the writer did not give the first up", files)
	}
	r.start() // the outage ends
	closeAndRestart(t, h, b, dir, r.endpoint())

	trail, givenUp := trailLines(t, dir)
	if givenUp == 0 {
		t.Fatal("the given-up file holds no line past the newer file's first seq")
	}
	checkExactly(t, r, trail, "the trail (given-up lines excluded)")
}
