package chain

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/rotate"
)

// closeReason returns the reason of the close record that ends the file at
// path, or "" when it does not end with one.
func closeReason(t *testing.T, path string) string {
	t.Helper()
	ls := readLines(t, path)
	l, err := ParseLine([]byte(strings.TrimSuffix(ls[len(ls)-2], "\n"))) // ls ends with ""
	if err != nil || l.Kind != RecClose {
		return ""
	}
	var ci CloseInfo
	if err := l.Decode(&ci); err != nil {
		t.Fatal(err)
	}
	return ci.Reason
}

// lastSeqOf returns the seq of the last complete line of the file at path.
func lastSeqOf(t *testing.T, path string) uint64 {
	t.Helper()
	ls := readLines(t, path)
	l, err := ParseLine([]byte(strings.TrimSuffix(ls[len(ls)-2], "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return l.Seq
}

// cutNotes removes the notes beyond seq from the checkpoints file.
func cutNotes(t *testing.T, dir string, seq uint64) {
	t.Helper()
	path := filepath.Join(dir, CheckpointsFileName(""))
	var keep []string
	for _, l := range readLines(t, path) {
		var e struct{ Seq uint64 }
		if l == "" {
			continue
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Seq <= seq {
			keep = append(keep, l)
		}
	}
	writeLines(t, path, keep)
}

// successorFinding returns the TRUNCATED finding of a newest file closed
// for rotation, if rep has one.
func successorFinding(rep *Report) *Problem {
	for i, p := range rep.Chain {
		if p.Class == Truncated && strings.Contains(p.Detail, "closed for rotation") {
			return &rep.Chain[i]
		}
	}
	return nil
}

const openNewestText = "INFO newest file %s is open (no close record): the writer is running, or stopped without Close\n"

// The end of a trail: a newest file closed for rotation (reason size, time
// or rotate) says that its writer started a newer file. Removing that file,
// with or without the notes that name its lines, is TRUNCATED; a trail
// that ends with a clean Close, or whose newest file is still open (the
// writer runs, or crashed), is not.
func TestNewestFileClosedForRotation(t *testing.T) {
	type setup struct {
		f  *signed
		fs []string // the files, oldest first
	}
	tests := []struct {
		name string
		// do changes the trail; it returns a trusted checkpoint, if any.
		do func(t *testing.T, s setup) []byte
		// successor: the TRUNCATED finding for the newest file left
		// closed for rotation, fs[len(fs)+successor] (named in it, or
		// naming it if an empty file follows it); 0: none.
		successor int
		intact    bool
		open      bool // the newest file has no close record: the INFO line
	}{
		{"honest trail ending with Close", func(*testing.T, setup) []byte { return nil }, 0, true, false},
		{"newest file deleted after a rotation", func(t *testing.T, s setup) []byte {
			os.Remove(s.fs[len(s.fs)-1])
			return nil
		}, -2, false, false},
		{"newest file and its notes deleted after a rotation", func(t *testing.T, s setup) []byte {
			os.Remove(s.fs[len(s.fs)-1])
			cutNotes(t, s.f.dir, lastSeqOf(t, s.fs[len(s.fs)-2]))
			return nil
		}, -2, false, false},
		{"two newest files and their notes deleted", func(t *testing.T, s setup) []byte {
			os.Remove(s.fs[len(s.fs)-1])
			os.Remove(s.fs[len(s.fs)-2])
			cutNotes(t, s.f.dir, lastSeqOf(t, s.fs[len(s.fs)-3]))
			return nil
		}, -3, false, false},
		{"newest file open (a crash): its close record and notes gone", func(t *testing.T, s setup) []byte {
			p := s.fs[len(s.fs)-1]
			ls := readLines(t, p)
			writeLines(t, p, ls[:len(ls)-2])
			cutNotes(t, s.f.dir, lastSeqOf(t, p))
			return nil
		}, 0, true, true},
		// An empty newest file is what a crash between creating a file and
		// writing its open record leaves, and what removing the newest
		// files and putting an empty one in their place leaves: the trail
		// ends at a close record for rotation either way.
		{"newest file empty (a crash before its open record, or put there)", func(t *testing.T, s setup) []byte {
			writeLines(t, s.fs[len(s.fs)-1], nil)
			cutNotes(t, s.f.dir, lastSeqOf(t, s.fs[len(s.fs)-2]))
			return nil
		}, -2, false, true},
		// The limit (FORMAT.md §8): a trail cut where a writer closed it
		// with Close, notes and all, ends as an honest trail ends; only a
		// trusted checkpoint kept off the host shows the cut.
		{"last session and its notes deleted", func(t *testing.T, s setup) []byte {
			cutLastSession(t, s.f.dir, s.fs)
			return nil
		}, 0, true, false},
		{"last session and its notes deleted, a trusted checkpoint kept", func(t *testing.T, s setup) []byte {
			trusted := lastNote(t, s.f.dir)
			cutLastSession(t, s.f.dir, s.fs)
			return trusted
		}, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newSigned(t)
			ro := rotate.Options{MaxBytes: 3000}
			f.session(t, 30, ro, 6)
			f.session(t, 30, ro, 6)
			s := setup{f, files(t, f.dir)}
			if n := len(s.fs); n < 4 || closeReason(t, s.fs[n-1]) != "close" || closeReason(t, s.fs[n-2]) != "size" || closeReason(t, s.fs[n-3]) != "size" {
				t.Fatalf("fixture: want the two files before the newest rotated by size, the newest closed: %v", s.fs)
			}
			trusted := tc.do(t, s)
			rep := f.verify(t, trusted)
			text := reportText(rep)
			if trusted != nil && !hasClass(rep, Rollback) {
				t.Errorf("want ROLLBACK against the trusted checkpoint:\n%s", text)
			}
			got := successorFinding(rep)
			switch {
			case tc.successor == 0 && got != nil:
				t.Errorf("unexpected finding %+v:\n%s", *got, text)
			case tc.successor < 0:
				name := BaseName(s.fs[len(s.fs)+tc.successor])
				// The finding names that file, or the empty file after it.
				emptyAfter := got != nil && got.File == BaseName(s.fs[len(s.fs)-1]) && strings.Contains(got.Detail, name)
				if got == nil || got.File != name && !emptyAfter || got.Seq != lastSeqOf(t, s.fs[len(s.fs)+tc.successor]) || !strings.Contains(got.Detail, `reason "size"`) {
					t.Errorf("want TRUNCATED for %s closed for rotation, got:\n%s", name, text)
				}
			}
			if rep.Intact != tc.intact {
				t.Errorf("intact %v, want %v:\n%s", rep.Intact, tc.intact, text)
			}
			newest := rep.Files[len(rep.Files)-1].Name
			info := fmt.Sprintf(openNewestText, newest)
			if strings.Contains(text, info) != tc.open || strings.Contains(text, "INFO") != tc.open {
				t.Errorf("the INFO line for an open newest file: want %v:\n%s", tc.open, text)
			}
			if tc.open {
				// After the per-file lines, before the chain's findings.
				i := strings.Index(text, info)
				if !strings.HasSuffix(text[:i], "\n") || strings.Contains(text[:i], "UNANCHORED") {
					t.Errorf("INFO line out of place:\n%s", text)
				}
			}
		})
	}
}

// lastCleanClose returns the index of the newest file, before the newest,
// that a writer ended with Close.
func lastCleanClose(t *testing.T, fs []string) int {
	t.Helper()
	for i := len(fs) - 2; i >= 0; i-- {
		if closeReason(t, fs[i]) == "close" {
			return i
		}
	}
	t.Fatal("no file ended with Close before the newest")
	return -1
}

// A writer stops between a rotation's close record and the next file: rotate
// writes the close record, closes the file, and only then creates the next
// one. Here creating it fails (a crash in that moment leaves the same
// files). The trail then ends with a file closed for rotation: TRUNCATED for
// any verifier but the writer itself (VerifyOptions.Writing), until the
// writer's next start continues the chain with a file that names it.
func TestRotationWithoutSuccessorThenRestart(t *testing.T) {
	f := newSigned(t)
	var failCreate atomic.Bool
	ro := rotate.Options{
		Dir: f.dir, Now: f.clock,
		OpenFile: func(name string, flag int, perm os.FileMode) (rotate.File, error) {
			if failCreate.Load() {
				return nil, errors.New("injected: cannot create the next file")
			}
			return os.OpenFile(name, flag, perm)
		},
	}
	w, err := Open(Options{KeyFile: f.keyFile, Rotate: ro, Checkpoints: CheckpointOptions{Signer: f.signer, Every: 6, Origin: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := w.Append(fmt.Appendf(nil, `"msg":"record %d"`, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	failCreate.Store(true)
	if err := w.Rotate(); err == nil {
		t.Fatal("Rotate: want the injected error")
	}
	fs := files(t, f.dir)
	rotated := fs[len(fs)-1]
	if closeReason(t, rotated) != "rotate" || w.Path() != rotated {
		t.Fatalf("want the newest file %s closed for rotation and the writer's newest, got %q, Path %s", rotated, closeReason(t, rotated), w.Path())
	}

	// The writer itself, still running: its own newest file has no
	// successor yet, which is no truncation.
	self, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: f.verifier, Writing: w.Path})
	if err != nil {
		t.Fatal(err)
	}
	if p := successorFinding(self); p != nil || !self.Intact {
		t.Errorf("self-verification (Writing %s) reports the writer's own file:\n%s", filepath.Base(w.Path()), reportText(self))
	}
	// Another verifier cannot tell this from a removed newest file.
	other := f.verify(t, nil)
	if p := successorFinding(other); p == nil || other.Intact || p.File != BaseName(rotated) || !strings.Contains(p.Detail, `reason "rotate"`) {
		t.Errorf("want TRUNCATED for %s:\n%s", BaseName(rotated), reportText(other))
	}
	// An empty newer file put there while the verification waits for one
	// (or left there) does not stand for the writer's next file.
	next := filepath.Join(f.dir, "audit-29991231T000000.000000000Z.jsonl")
	created := make(chan error, 1)
	go func() {
		time.Sleep(rotationSettle / 5)
		created <- os.WriteFile(next, nil, 0o600)
	}()
	racing := f.verify(t, nil)
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if p := successorFinding(racing); p == nil || racing.Intact {
		t.Errorf("an empty file after the rotated one, want TRUNCATED:\n%s", reportText(racing))
	}
	if err := os.Remove(next); err != nil {
		t.Fatal(err)
	}
	// Writing names a file the writer created that is gone: still cut.
	gone, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: f.verifier, Writing: func() string { return filepath.Join(f.dir, "audit-29991231T000000.000000000Z.jsonl") }})
	if err != nil {
		t.Fatal(err)
	}
	if successorFinding(gone) == nil {
		t.Errorf("Writing names a newer file that is not there, want TRUNCATED:\n%s", reportText(gone))
	}

	if err := w.Close(); err != nil { // no file is open: nothing more is written
		t.Fatal(err)
	}
	if after := f.verify(t, nil); successorFinding(after) == nil {
		t.Errorf("after Close, want TRUNCATED:\n%s", reportText(after))
	}

	// The next start continues the chain from the close record.
	ro.OpenFile = nil
	f.session(t, 5, ro, 6)
	rep := f.verify(t, nil)
	assertIntact(t, rep)
	if len(rep.Problems()) != 0 {
		t.Errorf("want no finding:\n%s", reportText(rep))
	}
	fs = files(t, f.dir)
	var oi OpenInfo
	if err := openLine(t, fs[len(fs)-1]).Decode(&oi); err != nil || oi.PrevFile != BaseName(rotated) {
		t.Errorf("the restarted writer's file names %q (%v), want %s", oi.PrevFile, err, BaseName(rotated))
	}
}

// A rotation while a verification runs: the files were listed before the
// writer closed the newest one and read after. The next file is there by
// the end, so the trail is not cut.
func TestRotationDuringVerify(t *testing.T) {
	f := newSigned(t)
	w := writeRotated(t, f, 10)
	defer w.Close()
	before := files(t, f.dir)
	rotated := false
	rep, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: f.verifier, Progress: func(done, total int64) {
		if !rotated { // after the first file, before the newest is read
			rotated = true
			if err := w.Rotate(); err != nil {
				t.Error(err)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 || len(rep.Files) != 3 || !rep.Files[1].Closed || rep.Files[2].Lines == 0 {
		t.Fatalf("want the 2 files listed before the rotation walked, the second read closed, and the file the writer created meanwhile followed: %d listed, %d walked:\n%s", len(before), len(rep.Files), reportText(rep))
	}
	if p := successorFinding(rep); p != nil || !rep.Intact {
		t.Errorf("a rotation during Verify reported as a cut:\n%s", reportText(rep))
	}
}

// A verifier that reads a close record for rotation just before the writer
// creates the next file, or just before it writes that file's open record,
// waits for both and verifies on into the file.
func TestVerifyWaitsForTheNextFile(t *testing.T) {
	f := newSigned(t)
	fs, newest, content := rotatedOnceNewest(t, f)
	if err := os.Remove(newest); err != nil {
		t.Fatal(err)
	}
	// The writer, slowed down: the file appears empty, its lines later.
	written := make(chan error, 1)
	go func() {
		time.Sleep(rotationSettle / 10)
		if err := os.WriteFile(newest, nil, 0o600); err != nil {
			written <- err
			return
		}
		time.Sleep(rotationSettle / 5)
		written <- os.WriteFile(newest, content, 0o600)
	}()
	rep := f.verify(t, nil)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != len(fs) || !rep.Intact || successorFinding(rep) != nil {
		t.Errorf("want the %d files walked, the last one once its lines were there, and INTACT:\n%s", len(fs), reportText(rep))
	}
}

// cutLastSession removes the files of dir (fs, in chain order) after the
// last one a writer ended with Close, and the notes past its last seq.
func cutLastSession(t *testing.T, dir string, fs []string) {
	t.Helper()
	i := lastCleanClose(t, fs)
	for _, p := range fs[i+1:] {
		os.Remove(p)
	}
	cutNotes(t, dir, lastSeqOf(t, fs[i]))
}

// A newest file listed before its open record is written (the writer
// created it as the verification listed the directory) is waited for, not
// called a cut.
func TestVerifyWaitsForListedEmptyFile(t *testing.T) {
	f := newSigned(t)
	fs, newest, content := rotatedOnceNewest(t, f)
	ckpt := filepath.Join(f.dir, CheckpointsFileName(""))
	notes, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	cutNotes(t, f.dir, lastSeqOf(t, fs[len(fs)-2])) // the notes as they were then
	writeLines(t, newest, nil)                      // created, open record not written yet
	written := make(chan error, 1)
	go func() {
		time.Sleep(rotationSettle / 5)
		if err := os.WriteFile(newest, content, 0o600); err != nil {
			written <- err
			return
		}
		written <- os.WriteFile(ckpt, notes, 0o600)
	}()
	rep := f.verify(t, nil)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if !rep.Intact {
		t.Errorf("a writer in the middle of a rotation, want INTACT:\n%s", reportText(rep))
	}
}

// Self-verification that read the writer's newest file before its open
// record was written, when the writer has gone on to a newer file by the
// time Writing is asked: nothing was removed. (Writing naming a file that
// is not there is a cut: TestRotationWithoutSuccessorThenRestart.)
func TestSelfVerifyWriterMovedOn(t *testing.T) {
	f := newSigned(t)
	fs := rotatedOnce(t, f)
	cutNotes(t, f.dir, lastSeqOf(t, fs[len(fs)-2]))
	writeLines(t, fs[len(fs)-1], nil) // as read: created, not yet written
	next := filepath.Join(f.dir, "audit-29991231T000000.000000000Z.jsonl")
	if err := os.WriteFile(next, nil, 0o600); err != nil { // the writer went on
		t.Fatal(err)
	}
	rep, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: f.verifier, Writing: func() string { return next }})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Intact {
		t.Errorf("self-verification racing a rotation, want INTACT:\n%s", reportText(rep))
	}
}

// A writer that rotates continuously (four goroutines appending, 20 kB
// files, a new one every few dozen milliseconds) while verifications of its newest files run in a loop, from
// outside and as its own self-verification: no failing finding, ever.
func TestVerifyWhileRotating(t *testing.T) {
	for _, self := range []bool{false, true} {
		t.Run(fmt.Sprint("self=", self), func(t *testing.T) {
			f := newSigned(t)
			w, err := Open(Options{KeyFile: f.keyFile, Rotate: rotate.Options{Dir: f.dir, MaxBytes: 20000}, Checkpoints: CheckpointOptions{Signer: f.signer, Every: 50, Origin: "test"}})
			if err != nil {
				t.Fatal(err)
			}
			var stop atomic.Bool
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := 0; !stop.Load(); i++ {
						if err := w.Append(fmt.Appendf(nil, `"msg":"g%d r%d padding padding padding padding padding"`, g, i), nil); err != nil {
							t.Error(err)
							return
						}
						// Thousands of records a second, a new file
						// every few dozen milliseconds: rotating far
						// faster than any real trail, and not faster
						// than a verifier reads (for that, see
						// followCap).
						time.Sleep(time.Millisecond)
					}
				})
			}
			runs := 0
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); runs++ {
				o := VerifyOptions{Key: f.k0, CheckpointKey: f.verifier, Last: 3}
				if self {
					o.Writing = w.Path
				}
				rep, err := Verify(f.dir, o)
				if err != nil {
					t.Errorf("run %d: %v", runs, err)
					continue
				}
				for _, p := range rep.Problems() {
					if !p.Class.Warning() {
						t.Errorf("run %d: %s %s seq %d: %s", runs, p.Class, p.File, p.Seq, p.Detail)
					}
				}
			}
			stop.Store(true)
			wg.Wait()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d verifications, %d files", runs, len(files(t, f.dir)))
		})
	}
}

// A cut trail (the newest files and their notes removed) whose last files
// left are hidden when the verifier lists them and put back one by one
// while it follows, as a rotating writer would create them: each is
// authentic and ends closed for rotation, yet the end is still judged and
// is a cut. (Following waits for new files only for maxFollow; after that
// only files already there are taken.)
func TestVerifyFilesPutBackOneByOne(t *testing.T) {
	f := newSigned(t)
	f.session(t, 400, rotate.Options{MaxBytes: 3000}, 6)
	fs := files(t, f.dir)
	if len(fs) < 14 {
		t.Fatalf("fixture: want many files, got %d", len(fs))
	}
	keep := len(fs) - 2
	for _, p := range fs[keep:] {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	cutNotes(t, f.dir, lastSeqOf(t, fs[keep-1]))
	if r := closeReason(t, fs[keep-1]); r != "size" {
		t.Fatalf("fixture: the newest file left is closed by %q, want size", r)
	}
	hide := fs[keep-7 : keep]
	stash := t.TempDir()
	for _, p := range hide {
		if err := os.Rename(p, filepath.Join(stash, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	back := make(chan error, 1)
	go func() {
		time.Sleep(rotationSettle / 4)
		for _, p := range hide {
			if err := os.Rename(filepath.Join(stash, filepath.Base(p)), p); err != nil {
				back <- err
				return
			}
			time.Sleep(maxFollow / 5)
		}
		back <- nil
	}()
	rep := f.verify(t, nil)
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	if p := successorFinding(rep); p == nil || rep.Intact {
		t.Errorf("a cut trail whose files came back one by one, want TRUNCATED:\n%s", reportText(rep))
	}
}

// A writer that rotates faster than a verification reads, for longer than
// followCap: the verification stops following it and says that it did
// not judge the end (a failing finding, never a silent INTACT).
func TestVerifyFollowCap(t *testing.T) {
	defer func(c time.Duration) { followCap = c }(followCap)
	followCap = 0 // every round past it: the first rotated end is not followed
	f := newSigned(t)
	f.session(t, 60, rotate.Options{MaxBytes: 3000}, 6)
	fs := files(t, f.dir)
	// Leave the trail ending closed for rotation, with a newer file there
	// that the verification lists only after it has read the others.
	last := fs[len(fs)-1]
	stash := filepath.Join(t.TempDir(), filepath.Base(last))
	if err := os.Rename(last, stash); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: f.verifier, Progress: func(done, total int64) {
		os.Rename(stash, last) // back once reading began: a newer file
	}})
	if err != nil {
		t.Fatal(err)
	}
	judged := true
	for _, p := range rep.Chain {
		judged = judged && !(p.Class == Truncated && strings.Contains(p.Detail, "the end of the trail was not judged"))
	}
	if rep.Intact || judged {
		t.Errorf("following stopped at followCap, want the end reported as not judged:\n%s", reportText(rep))
	}
}

// writeRotated opens a writer on f's directory and appends n records to
// it, with a rotation after the fifth; the writer stays open.
func writeRotated(t *testing.T, f *signed, n int) *Writer {
	t.Helper()
	w, err := Open(Options{KeyFile: f.keyFile, Rotate: rotate.Options{Dir: f.dir, Now: f.clock}, Checkpoints: CheckpointOptions{Signer: f.signer, Every: 6, Origin: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.Append(fmt.Appendf(nil, `"msg":"record %d"`, i), nil); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return w
}

// rotatedOnceNewest is rotatedOnce, with the newest file and what it holds.
func rotatedOnceNewest(t *testing.T, f *signed) (fs []string, newest string, content []byte) {
	t.Helper()
	fs = rotatedOnce(t, f)
	newest = fs[len(fs)-1]
	content, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	return fs, newest, content
}

// rotatedOnce writes eight records into f's directory with a rotation
// after the fifth and a Close, and returns the two files, oldest first.
func rotatedOnce(t *testing.T, f *signed) []string {
	t.Helper()
	if err := writeRotated(t, f, 8).Close(); err != nil {
		t.Fatal(err)
	}
	return files(t, f.dir)
}
