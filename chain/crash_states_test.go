package chain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
	// The writer appends a note before its key file moves past the epoch:
	// a crash while appending leaves the key file at that epoch.
	var lastNote checkpointEntry
	if err := json.Unmarshal(body[start:], &lastNote); err != nil {
		t.Fatal(err)
	}
	back, err := NewKeyState(k0).At(lastNote.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyState(p.key, back); err != nil {
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

// A crash can tear only the line being written, and a writer never writes
// to a file after its close record: bytes after a close record cannot be a
// torn tail. The open record of the next file seals the torn length
// (prev_torn), so a torn tail that it does not account for was added later.
// Verify must not pass such a file as a mere TORN_TAIL warning: otherwise
// anyone can append unauthenticated bytes (say, half a fake record) to any
// closed file.
func TestVerifyTornTailAfterCloseFails(t *testing.T) {
	for _, file := range []int{0, 1, 2} { // oldest, middle, newest: all closed
		t.Run(fmt.Sprint(file), func(t *testing.T) {
			dir, fs := tamperLog(t, testKey)
			f, err := os.OpenFile(fs[file], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(`{"seq":99,"prev":"00","msg":"wire 1000000 to acct 42"`); err != nil {
				t.Fatal(err)
			}
			f.Close()
			rep := verify(t, dir, testKey)
			if rep.Intact {
				var text bytes.Buffer
				rep.WriteText(&text)
				t.Errorf("bytes appended after the close record of file %d pass as a torn tail:\n%s", file, text.String())
			}
		})
	}
}

// forgeOpenEpoch rewrites the epoch member of the open record of path
// (without resealing it: its MAC no longer matches).
func forgeOpenEpoch(t *testing.T, path string, epoch uint64) {
	t.Helper()
	lines := readLines(t, path)
	i := strings.Index(lines[0], `"epoch":`)
	j := i + len(`"epoch":`)
	k := j + strings.IndexByte(lines[0][j:], ',')
	lines[0] = lines[0][:j] + strconv.FormatUint(epoch, 10) + lines[0][k:]
	writeLines(t, path, lines)
}

// within runs f and fails the test if it does not return within d (the
// goroutine is left to finish on its own).
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
	t.Logf("%s took %v", what, time.Since(start).Round(time.Millisecond))
}

// forgedEpoch costs ~2 s of key evolution here (~1 µs per epoch); the attack
// writes 18446744073709551615.
const forgedEpoch = 1 << 21

// The epoch of an open record is read before its MAC is checked, and the
// verifier derives that epoch's key by evolving the key once per epoch: a
// one-line edit (no key needed) makes Verify run for ~2^64 HMACs. An
// unauthenticated epoch must not drive the key derivation (or must be
// bounded, e.g. by the epoch the chain is in plus one).
func TestVerifyForgedOpenEpochIsCheap(t *testing.T) {
	dir, fs := tamperLog(t, testKey)
	forgeOpenEpoch(t, fs[1], forgedEpoch)
	var rep *Report
	within(t, 500*time.Millisecond, "Verify with a forged open-record epoch", func() {
		rep, _ = Verify(dir, VerifyOptions{Key: testKey})
	})
	if rep == nil || rep.Intact {
		t.Errorf("forged epoch: report %+v", rep)
	}
}

// The same for Open: resume reads the epoch of the newest file's open
// record without checking its MAC and derives that epoch's key from the
// key file, to check the last line's MAC: Open hangs instead of refusing.
func TestOpenForgedOpenEpochIsCheap(t *testing.T) {
	dir, fs := tamperLog(t, testKey)
	// The newest file holds only its open record, whose epoch is forged.
	newest := fs[len(fs)-1]
	lines := readLines(t, newest)
	writeLines(t, newest, lines[:1])
	forgeOpenEpoch(t, newest, forgedEpoch)
	var err error
	within(t, 500*time.Millisecond, "Open over a forged open-record epoch", func() {
		var w *Writer
		w, err = Open(Options{Key: testKey, Rotate: rotate.Options{Dir: dir}})
		if err == nil {
			w.Close()
		}
	})
	if err == nil {
		t.Error("Open resumed a chain whose last line fails its MAC")
	}
}

// crashPaths are the files of a crash test's root directory.
type crashPaths struct{ root, dir, key, signer string }

func newCrashPaths(root string) crashPaths {
	return crashPaths{
		root:   root,
		dir:    filepath.Join(root, "audit"),
		key:    filepath.Join(root, "key"),
		signer: filepath.Join(root, "signer"),
	}
}
