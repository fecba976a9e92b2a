package query_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
)

// A service with a forward-secure key holds only the current epoch's key;
// the events of earlier epochs are verified by the digests their signed
// checkpoints carry, and an edit there is still found.
func TestVerifiedByCheckpointDigest(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "audit.key")
	if err := chain.WriteKeyFile(keyFile, chain.GenerateKey()); err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := chain.GenerateSigner("q")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	h, err := handler.New(handler.Options{Dir: dir, KeyFile: keyFile, App: slog.DiscardHandler,
		Checkpoints: chain.CheckpointOptions{Signer: signer, Every: 3, Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for i := range 10 {
		if err := handler.Log(context.Background(), slog.New(h), handler.Event{Type: "test", Action: "write",
			Resource: fmt.Sprint("r", i), Status: handler.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Checkpoint(); err != nil { // settles the notes
		t.Fatal(err)
	}
	handler.Log(context.Background(), slog.New(h), handler.Event{Type: "test", Action: "write", Resource: "r10", Status: handler.StatusSuccess})

	withDigests, err := query.NewReader(dir, query.Options{EpochKey: h.EpochKey, CheckpointKey: verifier})
	if err != nil {
		t.Fatal(err)
	}
	wantVerified(t, verdicts(t, withDigests), 11)
	withoutDigests, _ := query.NewReader(dir, query.Options{EpochKey: h.EpochKey})
	v := verdicts(t, withoutDigests)
	if !v["r10"] || v["r0"] {
		t.Errorf("current key only: %v", v)
	}

	editLines(t, h.Path(), func(ls []string) []string {
		for i, l := range ls {
			if strings.Contains(l, `"resource":"r1"`) {
				ls[i] = strings.Replace(l, `"status":"success"`, `"status":"failure"`, 1)
			}
		}
		return ls
	})
	fresh, _ := query.NewReader(dir, query.Options{EpochKey: h.EpochKey, CheckpointKey: verifier})
	v = verdicts(t, fresh)
	if v["r1"] || v["r0"] || !v["r10"] || !v["r9"] { // r0 shares r1's epoch
		t.Errorf("after an edit in an earlier epoch: %v", v)
	}

	// A forged line after an epoch's end, linked to it, followed by a copy
	// of that end so the next epoch still hashes to its note: the forged
	// line's seq is in that epoch, its position is not.
	editLines(t, h.Path(), func(ls []string) []string {
		for i, l := range ls {
			if i > 6 && strings.Contains(l, `"rec":"checkpoint"`) {
				end, _ := chain.ParseLine([]byte(l))
				forged := fmt.Sprintf(`{"seq":%d,"prev":"%x","event":"test","action":"write","resource":"forged","status":"success","mac":"%s"}`, end.Seq+1, end.MAC, strings.Repeat("ab", 32))
				return append(ls[:i+1:i+1], append([]string{forged, l}, ls[i+1:]...)...)
			}
		}
		t.Fatal("no checkpoint line")
		return ls
	})
	fresh, _ = query.NewReader(dir, query.Options{EpochKey: h.EpochKey, CheckpointKey: verifier})
	if v = verdicts(t, fresh); v["forged"] {
		t.Errorf("a forged line passed as verified: %v", v)
	}
}
