package otelbridge

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
)

// receivedNotes returns the signed notes the receiver got, by checkpoint seq.
func (r *receiver) notes() map[int64]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int64]string)
	for _, rc := range r.recs {
		if rc.rec.EventName != EventCheckpoint {
			continue
		}
		if v, ok := attr(rc.rec.Attributes, CheckpointSeqKey); ok {
			out[v.GetIntValue()] = rc.rec.Body.GetStringValue()
		}
	}
	return out
}

// Signed checkpoints reach the collector, also those made while it was down
// and by a process that stopped before exporting them: each one arrives,
// verifies with the signer's key and matches the checkpoints file.
func TestCheckpointNotesExported(t *testing.T) {
	r := newReceiver(t)
	r.stop()
	dir := t.TempDir()
	skey, vkey, _ := chain.GenerateSigner("otel-test")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	key := chain.GenerateKey()
	session := func(n int) {
		b := newTestBridge(t, dir, r.endpoint())
		h, err := handler.New(handler.Options{
			Dir: dir, Key: key, App: slog.NewJSONHandler(io.Discard, nil), AuditOnlyToFile: true,
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
		shutdown(t, b, 200*time.Millisecond) // the receiver is down: unexported notes stay in the file
	}
	session(300) // collector down
	session(120) // restart, still down
	r.start()
	b := newTestBridge(t, dir, r.endpoint()) // a third start exports the rest
	_ = b
	es, err := chain.ReadCheckpointsFile(filepath.Join(dir, chain.CheckpointsFileName("")))
	if err != nil || len(es) < 8 {
		t.Fatalf("%d notes in the file, %v", len(es), err)
	}
	eventually(t, 20*time.Second, "every note exported", func() bool { return len(r.notes()) == len(es) })
	got := r.notes()
	for _, e := range es {
		body := got[int64(e.Seq)]
		c, err := chain.OpenCheckpoint([]byte(body), verifier)
		if err != nil || c.Seq != e.Seq {
			t.Errorf("note for seq %d: %v (%q)", e.Seq, err, body)
		}
	}
}
