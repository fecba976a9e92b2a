package chain

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/rotate"
)

// signedLog writes n records with a key file and signed checkpoints every
// `every` lines into a new directory and closes the writer. It returns the
// paths, K(0), the signer and the checkpoint verifier.
func signedLog(t *testing.T, n, every int, ro rotate.Options) (crashPaths, []byte, note.Signer, note.Verifier) {
	t.Helper()
	p := newCrashPaths(t.TempDir())
	k0 := GenerateKey()
	if err := WriteKeyFile(p.key, k0); err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := GenerateSigner("crash-states")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if ro.Now == nil {
		ro.Now = fakeClock()
	}
	appendSigned(t, p, signer, every, n, ro)
	return p, k0, signer, verifier
}

// appendSigned opens the chain in p with the key file, appends n records
// and closes it.
func appendSigned(t *testing.T, p crashPaths, signer note.Signer, every, n int, ro rotate.Options) {
	t.Helper()
	ro.Dir = p.dir
	w, err := Open(Options{KeyFile: p.key, Rotate: ro, Checkpoints: CheckpointOptions{Signer: signer, Every: every}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.Append(fmt.Appendf(nil, `"msg":"r","i":%d`, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// A crash (power loss, or a kill during a write spanning pages) while the
// writer appends a note leaves an incomplete last line in the checkpoints
// file. The writer itself treats that as a crash state: the next Open trims
// it (trimTornNote) and signs the checkpoint again. Verify, in the window
// before that restart, must treat it the same way as a torn tail of an
// audit file: a warning, not a failing BAD_CHECKPOINT.
func TestVerifyTornCheckpointsLineIsAWarning(t *testing.T) {
	clock := fakeClock()
	p, k0, signer, verifier := signedLog(t, 20, 5, rotate.Options{Now: clock})
	path := filepath.Join(p.dir, CheckpointsFileName(""))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Keep all complete lines but the last, and the first half of the last.
	body := data[:len(data)-1]
	start := bytes.LastIndexByte(body, '\n') + 1
	torn := data[:start+(len(data)-start)/2]
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(p.dir, VerifyOptions{Key: k0, CheckpointKey: verifier})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !rep.Intact {
		t.Errorf("a torn last line in the checkpoints file (a crash while appending a note) fails verification; want a warning:\n%s", text.String())
	}

	// The writer agrees it is a crash state: it resumes, and afterwards
	// the chain verifies with every checkpoint signed.
	appendSigned(t, p, signer, 5, 3, rotate.Options{Now: clock})
	rep, err = Verify(p.dir, VerifyOptions{Key: k0, CheckpointKey: verifier})
	if err != nil {
		t.Fatal(err)
	}
	text.Reset()
	rep.WriteText(&text)
	if !rep.Intact || rep.AnchoredSeq != rep.LastSeq {
		t.Errorf("after the restart:\n%s", text.String())
	}
}
