package chain

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/internal/testfs"
	"github.com/slogaudit/slogaudit/rotate"
)

// signed is a chain written with a forward-secure key file and a signer.
type signed struct {
	dir, keyFile string
	k0           []byte // the initial key, kept "offline"
	signer       note.Signer
	verifier     note.Verifier
	clock        func() time.Time
}

func newSigned(t *testing.T) *signed {
	t.Helper()
	f := &signed{dir: filepath.Join(t.TempDir(), "audit"), keyFile: filepath.Join(t.TempDir(), "audit.key"), k0: GenerateKey(), clock: fakeClock()}
	if err := WriteKeyFile(f.keyFile, f.k0); err != nil {
		t.Fatal(err)
	}
	f.signer, f.verifier = testSigner(t, "test-signer")
	return f
}

func testSigner(t *testing.T, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := GenerateSigner(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// session opens the chain (a process start), appends n records and closes.
func (f *signed) session(t *testing.T, n int, ro rotate.Options, every int) {
	t.Helper()
	ro.Dir, ro.Now = f.dir, f.clock
	ro.OnError = func(err error) { t.Errorf("rotate: %v", err) }
	w, err := Open(Options{KeyFile: f.keyFile, Rotate: ro, Checkpoints: CheckpointOptions{Signer: f.signer, Every: every, Origin: "test", OnError: func(err error) { t.Errorf("checkpoint: %v", err) }}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.Append(fmt.Appendf(nil, `"msg":"record %d","i":%d`, i, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func (f *signed) verify(t *testing.T, trusted []byte) *Report {
	t.Helper()
	rep, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: f.verifier, Trusted: trusted})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func reportText(rep *Report) string {
	var buf bytes.Buffer
	rep.WriteText(&buf)
	return buf.String()
}

func classes(rep *Report) []Class {
	var cs []Class
	for _, p := range rep.Problems() {
		if !slices.Contains(cs, p.Class) {
			cs = append(cs, p.Class)
		}
	}
	return cs
}

// assertClass checks that rep fails and reports class c.
func assertClass(t *testing.T, rep *Report, c Class) {
	t.Helper()
	if rep.Intact || !slices.Contains(classes(rep), c) {
		t.Fatalf("want %s (not intact), got intact=%v:\n%s", c, rep.Intact, reportText(rep))
	}
}

func lastNote(t *testing.T, dir string) []byte {
	t.Helper()
	es, err := ReadCheckpointsFile(filepath.Join(dir, CheckpointsFileName("")))
	if err != nil || len(es) == 0 {
		t.Fatalf("no checkpoints: %v", err)
	}
	return es[len(es)-1].Note
}

// Golden: three sessions (two restarts), several rotations by size, retention
// pruning, epochs by count: verify passes with the initial key, the
// checkpoints all match, and only GAP (pruned) is reported.
func TestGoldenSignedChain(t *testing.T) {
	f := newSigned(t)
	ro := rotate.Options{MaxBytes: 2500, MaxBackups: 3}
	for range 3 {
		f.session(t, 40, ro, 7)
	}
	fs := files(t, f.dir)
	rep := f.verify(t, nil)
	assertIntact(t, rep)
	if got := classes(rep); len(got) != 1 || got[0] != Gap {
		t.Errorf("want only GAP (pruned), got:\n%s", reportText(rep))
	}
	if len(fs) > 5 || rep.FirstSeq == 1 {
		t.Errorf("retention: %d files, first seq %d", len(fs), rep.FirstSeq)
	}
	if rep.Epochs < 5 || rep.Notes != int(rep.Epochs) || rep.AnchoredSeq != rep.LastSeq || !rep.NotesSigned {
		t.Errorf("epochs %d, notes %d, anchored %d of %d:\n%s", rep.Epochs, rep.Notes, rep.AnchoredSeq, rep.LastSeq, reportText(rep))
	}
	// The key file moved on and no longer holds K(0).
	ks, err := ReadKeyState(f.keyFile)
	if err != nil || ks.Epoch == 0 || bytes.Equal(ks.Key, f.k0) || ks.ID != KeyID(f.k0) {
		t.Errorf("key file: epoch %d, err %v", ks.Epoch, err)
	}
	if _, err := ReadKeyFile(f.keyFile); err == nil {
		t.Error("ReadKeyFile accepted an evolved key as K(0)")
	}
	// Verifying with the evolved key fails: it cannot recreate earlier epochs.
	if rep, err := Verify(f.dir, VerifyOptions{Key: ks.Key}); err == nil && rep.Intact {
		t.Error("the current epoch's key verified earlier epochs")
	}
}

// A file that retention removed without a pruned record is MISSING.
func TestPrunedRecordRequiredForGap(t *testing.T) {
	f := newSigned(t)
	ro := rotate.Options{MaxBytes: 2500}
	f.session(t, 60, ro, 7)
	fs := files(t, f.dir)
	os.Remove(fs[0])
	assertClass(t, f.verify(t, nil), Missing)
}

func TestArchiveHookKeepsFileOnError(t *testing.T) {
	f := newSigned(t)
	var mu sync.Mutex
	var archived []string
	fail := true
	ro := rotate.Options{Dir: f.dir, Now: f.clock, MaxBytes: 2000, MaxBackups: 1}
	w, err := Open(Options{Key: f.k0, Rotate: ro, Archive: func(path string) error {
		mu.Lock()
		defer mu.Unlock()
		archived = append(archived, filepath.Base(path))
		if fail {
			return fmt.Errorf("archive unavailable")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		w.Append(fmt.Appendf(nil, `"i":%d`, i), nil)
	}
	w.Sync()
	kept := len(files(t, f.dir))
	mu.Lock()
	fail = false
	mu.Unlock()
	for i := range 40 {
		w.Append(fmt.Appendf(nil, `"i":%d`, i), nil)
	}
	w.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(archived) == 0 || kept < 3 {
		t.Fatalf("archived %v, files kept while archiving failed: %d", archived, kept)
	}
	rep, err := Verify(f.dir, VerifyOptions{Key: f.k0})
	if err != nil {
		t.Fatal(err)
	}
	assertIntact(t, rep)
}

// Each attack of issue 6's list, on a signed chain of two sessions.
func TestTamperMatrix(t *testing.T) {
	type setup struct {
		f  *signed
		fs []string
	}
	mk := func(t *testing.T) setup {
		f := newSigned(t)
		f.session(t, 30, rotate.Options{MaxBytes: 3000}, 6)
		f.session(t, 30, rotate.Options{MaxBytes: 3000}, 6)
		return setup{f, files(t, f.dir)}
	}
	edit := func(path string, fn func([]string) []string) {
		data, _ := os.ReadFile(path)
		ls := strings.SplitAfter(string(data), "\n")
		os.WriteFile(path, []byte(strings.Join(fn(ls), "")), 0o600)
	}
	notesPath := func(s setup) string { return filepath.Join(s.f.dir, CheckpointsFileName("")) }
	mid := func(ls []string) int { return len(ls) / 2 }
	lastLine := func(ls []string) int { return len(ls) - 2 } // ls ends with ""

	tests := []struct {
		name string
		do   func(t *testing.T, s setup) []byte // returns a trusted note, if any
		want []Class                            // any of these, and not intact
	}{
		{"delete first line", func(t *testing.T, s setup) []byte {
			edit(s.fs[1], func(ls []string) []string { return ls[1:] })
			return nil
		}, []Class{Modified, Deleted, Missing}},
		{"delete middle line", func(t *testing.T, s setup) []byte {
			edit(s.fs[1], func(ls []string) []string { i := mid(ls); return append(ls[:i:i], ls[i+1:]...) })
			return nil
		}, []Class{Deleted, BadCheckpoint}},
		{"delete last line", func(t *testing.T, s setup) []byte {
			edit(s.fs[len(s.fs)-1], func(ls []string) []string { i := lastLine(ls); return append(ls[:i:i], ls[i+1:]...) })
			return nil
		}, []Class{Truncated}},
		{"insert line first", func(t *testing.T, s setup) []byte {
			edit(s.fs[1], func(ls []string) []string { return append([]string{ls[2]}, ls...) })
			return nil
		}, []Class{Modified, Inserted, Reordered}},
		{"insert forged line in the middle", func(t *testing.T, s setup) []byte {
			edit(s.fs[1], func(ls []string) []string {
				i := mid(ls)
				l, _ := ParseLine([]byte(strings.TrimSuffix(ls[i-1], "\n")))
				forged := fmt.Sprintf(`{"seq":%d,"prev":"%x","msg":"forged","mac":"%s"}`+"\n", l.Seq+1, l.MAC, strings.Repeat("ab", 32))
				return append(ls[:i:i], append([]string{forged}, ls[i:]...)...)
			})
			return nil
		}, []Class{Inserted}},
		{"insert line last", func(t *testing.T, s setup) []byte {
			edit(s.fs[len(s.fs)-1], func(ls []string) []string { return append(ls[:len(ls)-1:len(ls)-1], ls[3], "") })
			return nil
		}, []Class{Inserted}},
		{"duplicate first line", func(t *testing.T, s setup) []byte {
			edit(s.fs[1], func(ls []string) []string { return append([]string{ls[0]}, ls...) })
			return nil
		}, []Class{Inserted}},
		{"duplicate middle line", func(t *testing.T, s setup) []byte {
			edit(s.fs[1], func(ls []string) []string { i := mid(ls); return append(ls[:i+1:i+1], ls[i:]...) })
			return nil
		}, []Class{Inserted}},
		{"duplicate last line", func(t *testing.T, s setup) []byte {
			edit(s.fs[len(s.fs)-1], func(ls []string) []string { i := lastLine(ls); return append(ls[:i+1:i+1], ls[i:]...) })
			return nil
		}, []Class{Inserted}},
		{"swap first lines", func(t *testing.T, s setup) []byte {
			edit(s.fs[1], func(ls []string) []string { ls[0], ls[1] = ls[1], ls[0]; return ls })
			return nil
		}, []Class{Reordered, Modified}},
		{"swap middle lines", func(t *testing.T, s setup) []byte {
			edit(s.fs[1], func(ls []string) []string { i := mid(ls); ls[i], ls[i+1] = ls[i+1], ls[i]; return ls })
			return nil
		}, []Class{Reordered}},
		{"swap last lines", func(t *testing.T, s setup) []byte {
			edit(s.fs[len(s.fs)-1], func(ls []string) []string { i := lastLine(ls); ls[i], ls[i-1] = ls[i-1], ls[i]; return ls })
			return nil
		}, []Class{Reordered, Modified}},
		{"truncate tail by whole lines", func(t *testing.T, s setup) []byte {
			edit(s.fs[len(s.fs)-1], func(ls []string) []string { return append(ls[:len(ls)-5:len(ls)-5], "") })
			return nil
		}, []Class{Truncated}},
		{"truncate tail by bytes", func(t *testing.T, s setup) []byte {
			p := s.fs[len(s.fs)-1]
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()-700)
			return nil
		}, []Class{Truncated}},
		{"delete oldest file", func(t *testing.T, s setup) []byte {
			os.Remove(s.fs[0])
			return nil
		}, []Class{Missing}},
		{"delete middle file", func(t *testing.T, s setup) []byte {
			os.Remove(s.fs[len(s.fs)/2])
			return nil
		}, []Class{Missing}},
		{"delete newest file", func(t *testing.T, s setup) []byte {
			os.Remove(s.fs[len(s.fs)-1])
			return nil
		}, []Class{Truncated}},
		{"rename file", func(t *testing.T, s setup) []byte {
			os.Rename(s.fs[1], strings.Replace(s.fs[1], "000Z.jsonl", "001Z.jsonl", 1))
			return nil
		}, []Class{Renamed}},
		{"edit checkpoint note", func(t *testing.T, s setup) []byte {
			edit(notesPath(s), func(ls []string) []string {
				ls[2] = strings.Replace(ls[2], `\nepoch 2\n`, `\nepoch 3\n`, 1)
				return ls
			})
			return nil
		}, []Class{BadCheckpoint}},
		{"edit checkpoint line", func(t *testing.T, s setup) []byte {
			edit(s.fs[0], func(ls []string) []string {
				for i, l := range ls {
					if strings.Contains(l, `"rec":"checkpoint"`) {
						ls[i] = strings.Replace(l, `"epoch":`, `"epoch":1`, 1)
						break
					}
				}
				return ls
			})
			return nil
		}, []Class{Modified}},
		{"drop checkpoint note", func(t *testing.T, s setup) []byte {
			edit(notesPath(s), func(ls []string) []string { return append(ls[:2:2], ls[3:]...) })
			return nil
		}, []Class{BadCheckpoint}},
		{"drop checkpoint line", func(t *testing.T, s setup) []byte {
			edit(s.fs[0], func(ls []string) []string {
				for i, l := range ls {
					if strings.Contains(l, `"rec":"checkpoint"`) {
						return append(ls[:i:i], ls[i+1:]...)
					}
				}
				return ls
			})
			return nil
		}, []Class{Deleted, BadCheckpoint}},
		{"re-sign notes with a wrong key", func(t *testing.T, s setup) []byte {
			other, _ := testSigner(t, "test-signer")
			es, _ := ReadCheckpointsFile(notesPath(s))
			os.Remove(notesPath(s))
			var prev [32]byte
			for _, e := range es {
				c, err := OpenCheckpoint(e.Note, s.f.verifier)
				if err != nil {
					t.Fatal(err)
				}
				c.Prev = prev
				c.Sign(other)
				prev = c.NoteHash()
				appendCheckpoints(notesPath(s), []Checkpoint{c})
			}
			return nil
			// No note verifies and they name another signer: from the
			// files alone a key mix-up (WRONG_KEY), which names both keys
			// and never passes as intact.
		}, []Class{WrongKey}},
		{"rewrite everything without the key", func(t *testing.T, s setup) []byte {
			forger := GenerateKey()
			prev := strings.Repeat("0", 64)
			for _, p := range s.fs {
				edit(p, func(ls []string) []string {
					for i, l := range ls {
						if l == "" {
							continue
						}
						pl, _ := ParseLine([]byte(strings.TrimSuffix(l, "\n")))
						body := string(pl.Sealed[strings.Index(string(pl.Sealed), `","`)+2:])
						s := fmt.Sprintf(`{"seq":%d,"prev":"%s",%s`, pl.Seq, prev, body)
						mac := macOf(forger, []byte(s))
						prev = fmt.Sprintf("%x", mac)
						ls[i] = s + `,"mac":"` + prev + "\"}\n"
					}
					return ls
				})
			}
			return nil
		}, []Class{Modified}},
		{"rewrite an earlier epoch with the stolen current key", func(t *testing.T, s setup) []byte {
			stolen, err := ReadKeyState(s.f.keyFile)
			if err != nil {
				t.Fatal(err)
			}
			edit(s.fs[0], func(ls []string) []string {
				pl, _ := ParseLine([]byte(strings.TrimSuffix(ls[2], "\n")))
				sealed := strings.Replace(string(pl.Sealed), `"i":1`, `"i":9`, 1)
				mac := macOf(stolen.Key, []byte(sealed))
				ls[2] = fmt.Sprintf("%s,\"mac\":\"%x\"}\n", sealed, mac)
				ls[3] = strings.Replace(ls[3], fmt.Sprintf("%x", pl.MAC), fmt.Sprintf("%x", mac), 1)
				return ls
			})
			return nil
		}, []Class{Modified}},
		{"roll back to an older copy", func(t *testing.T, s setup) []byte {
			// Written before the test's edit: an older copy of the directory
			// is restored after a third session the auditor has seen.
			old := t.TempDir()
			copyDir(t, s.f.dir, old)
			s.f.session(t, 20, rotate.Options{MaxBytes: 3000}, 6)
			trusted := lastNote(t, s.f.dir)
			os.RemoveAll(s.f.dir)
			copyDir(t, old, s.f.dir)
			return trusted
		}, []Class{Rollback}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mk(t)
			if rep := s.f.verify(t, nil); !rep.Intact || len(rep.Problems()) != 0 {
				t.Fatalf("before the attack:\n%s", reportText(rep))
			}
			trusted := tt.do(t, s)
			rep := s.f.verify(t, trusted)
			if rep.Intact {
				t.Fatalf("attack not detected:\n%s", reportText(rep))
			}
			for _, c := range tt.want {
				if slices.Contains(classes(rep), c) {
					return
				}
			}
			t.Fatalf("want one of %v, got:\n%s", tt.want, reportText(rep))
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	testfs.CopyFiles(t, from, to, nil)
}

// Without the trusted checkpoint, truncating the chain together with its
// notes is indistinguishable from an older state; with it, it is ROLLBACK.
func TestTrustedCheckpointNeedsKey(t *testing.T) {
	f := newSigned(t)
	f.session(t, 10, rotate.Options{}, 4)
	if _, err := Verify(f.dir, VerifyOptions{Key: f.k0, Trusted: lastNote(t, f.dir)}); err == nil {
		t.Error("a trusted checkpoint was accepted without a checkpoint key")
	}
	other, otherV := testSigner(t, "other")
	c, _ := OpenCheckpoint(lastNote(t, f.dir), f.verifier)
	c.Sign(other)
	if _, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: f.verifier, Trusted: c.Note}); err == nil {
		t.Error("a trusted checkpoint signed by another key was accepted")
	}
	_ = otherV
}

// Records written after the last checkpoint are reported, with their count.
func TestUnanchoredRecords(t *testing.T) {
	f := newSigned(t)
	w, err := Open(Options{KeyFile: f.keyFile, Rotate: rotate.Options{Dir: f.dir, Now: f.clock}, Checkpoints: CheckpointOptions{Signer: f.signer, Every: 5, Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		w.Append(fmt.Appendf(nil, `"i":%d`, i), nil)
	}
	if err := w.Checkpoint(); err != nil { // settles the pending ones
		t.Fatal(err)
	}
	for i := range 3 {
		w.Append(fmt.Appendf(nil, `"i":%d`, i), nil)
	}
	w.Sync()
	rep := f.verify(t, nil)
	assertIntact(t, rep)
	var un *Problem
	for _, p := range rep.Chain {
		if p.Class == Unanchored {
			un = &p
		}
	}
	if un == nil || rep.LastSeq-rep.AnchoredSeq != 3 || !strings.Contains(un.Detail, "3 records") {
		t.Errorf("want 3 unanchored records:\n%s", reportText(rep))
	}
	w.Close()
	rep = f.verify(t, nil)
	if slices.Contains(classes(rep), Unanchored) {
		t.Errorf("after Close:\n%s", reportText(rep))
	}
}

// Every epoch ends exactly once, by a line sealed with its own key, and
// the next epoch's first line uses the next key.
func TestEpochKeysEvolve(t *testing.T) {
	f := newSigned(t)
	var got []Checkpoint
	w, err := Open(Options{KeyFile: f.keyFile, Rotate: rotate.Options{Dir: f.dir, Now: f.clock}, Checkpoints: CheckpointOptions{Signer: f.signer, Every: 3, Interval: -1, OnCheckpoint: func(c Checkpoint) { got = append(got, c) }}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		w.Append(fmt.Appendf(nil, `"i":%d`, i), nil)
	}
	w.Close()
	// open + 9 records + 3 checkpoints + close = 14 lines; epochs end at
	// lines 3 (open, r0, r1 → checkpoint at 4? no: every 3 lines).
	lines := readLines(t, files(t, f.dir)[0])
	key := f.k0
	epoch := uint64(0)
	for i, l := range lines[:len(lines)-1] {
		pl, err := ParseLine([]byte(strings.TrimSuffix(l, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		if macOf(key, pl.Sealed) != pl.MAC {
			t.Fatalf("line %d is not sealed with K(%d)", i+1, epoch)
		}
		if pl.Kind == RecCheckpoint || pl.Kind == RecClose {
			epoch++
			key = EvolveKey(key, epoch)
		}
	}
	if len(got) != int(epoch) || got[len(got)-1].Epoch != epoch-1 {
		t.Errorf("OnCheckpoint got %d checkpoints for %d epochs", len(got), epoch)
	}
	for i, c := range got {
		if c.Epoch != uint64(i) || c.Note == nil {
			t.Errorf("checkpoint %d: %+v", i, c)
		}
		if _, err := OpenCheckpoint(c.Note, f.verifier); err != nil {
			t.Error(err)
		}
	}
	ks, _ := ReadKeyState(f.keyFile)
	if ks.Epoch != epoch || !bytes.Equal(ks.Key, key) {
		t.Errorf("key file at epoch %d, want %d", ks.Epoch, epoch)
	}
}

// A writer that holds only its current key can still check the links of
// earlier epochs, and the MACs of the current one (self-verification).
func TestVerifyWithCurrentKey(t *testing.T) {
	f := newSigned(t)
	w, err := Open(Options{KeyFile: f.keyFile, Rotate: rotate.Options{Dir: f.dir, Now: f.clock}, Checkpoints: CheckpointOptions{Signer: f.signer, Every: 5, Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 23 {
		w.Append(fmt.Appendf(nil, `"i":%d`, i), nil)
	}
	w.Sync()
	// The epochs ended so far are signed in the background; wait for it,
	// as their signed digests are what is checked below.
	if err := w.settle(); err != nil {
		t.Fatal(err)
	}
	cur, ok := w.CurrentKey()
	if !ok || cur.Epoch == 0 {
		t.Fatalf("current key: %+v %v", cur, ok)
	}
	self := func() *Report {
		rep, err := Verify(f.dir, VerifyOptions{KeyAt: cur, CheckpointKey: f.verifier, Last: 1})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := self()
	assertIntact(t, rep)
	// The lines of earlier epochs are checked by their signed digests.
	if rep.Unchecked != 0 || rep.DigestChecked == 0 || rep.DigestChecked >= rep.Lines {
		t.Errorf("unchecked %d, digest-checked %d of %d lines", rep.Unchecked, rep.DigestChecked, rep.Lines)
	}
	path := files(t, f.dir)[0]
	lines := readLines(t, path)
	// An edit in an earlier epoch, whose key the writer no longer has:
	// its signed digest no longer matches.
	old := slices.Clone(lines)
	old[2] = strings.Replace(old[2], `"i":1`, `"i":7`, 1)
	writeLines(t, path, old)
	assertClass(t, self(), Modified)
	// An edit in the current epoch fails its MAC.
	edited := slices.Clone(lines)
	edited[len(edited)-2] = strings.Replace(edited[len(edited)-2], `"i":22`, `"i":99`, 1)
	writeLines(t, path, edited)
	assertClass(t, self(), Modified)
	// A line deleted in an earlier epoch breaks the links.
	writeLines(t, path, append(slices.Clone(lines[:3]), lines[4:]...))
	assertClass(t, self(), Deleted)
	writeLines(t, path, lines)
}

// crashPreallocated writes five records into a preallocated file and
// returns its directory, closed, and a copy taken before Close: the
// directory as a crash would leave it, with the NUL tail.
func crashPreallocated(t *testing.T) (dir, crashed string) {
	t.Helper()
	return crashPreallocatedWith(t, rotate.SyncNone)
}

// crashPreallocatedWith is crashPreallocated with the durability policy p.
func crashPreallocatedWith(t *testing.T, p rotate.Policy) (dir, crashed string) {
	t.Helper()
	dir, crashed = t.TempDir(), t.TempDir()
	w, err := Open(Options{Key: testKey, Rotate: rotate.Options{Dir: dir, Preallocate: 1 << 16, Sync: p}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 5 {
		w.Append(fmt.Appendf(nil, `"i":%d`, i), nil)
	}
	if fi, _ := os.Stat(w.Path()); fi.Size() != 1<<16 {
		t.Skipf("file not preallocated (%d bytes): no mapped files here", fi.Size())
	}
	copyDir(t, dir, crashed)
	return dir, crashed
}

// Preallocated files: the unwritten rest reads as NUL bytes. It is not
// content: a crash leaves it, verify passes, and the next Open cuts it. NUL
// bytes with content after them are an edit.
func TestPreallocatedTail(t *testing.T) {
	dir, crashed := crashPreallocated(t)
	rep := verify(t, crashed, testKey)
	assertIntact(t, rep)
	if rep.Lines != 6 {
		t.Errorf("%d lines:\n%s", rep.Lines, reportText(rep))
	}
	w2, err := Open(Options{Key: testKey, Rotate: rotate.Options{Dir: crashed}})
	if err != nil {
		t.Fatal(err)
	}
	w2.Close()
	first := files(t, crashed)[0]
	data, _ := os.ReadFile(first)
	if bytes.IndexByte(data, 0) >= 0 {
		t.Errorf("Open left the NUL tail of the crashed file")
	}
	assertIntact(t, verify(t, crashed, testKey))

	// Zeros over the middle of a closed file, content after them.
	data, _ = os.ReadFile(files(t, dir)[0])
	lines := strings.SplitAfter(string(data), "\n")
	zeroed := strings.Repeat("\x00", len(lines[2])) // a whole line
	writeLines(t, files(t, dir)[0], append(append(lines[:2:2], zeroed), lines[3:]...))
	assertClass(t, verify(t, dir, testKey), Modified)
}

// A power loss can keep a later page of an unacknowledged batch and lose
// the one before it: NUL bytes, then a fragment of lines. Verify, before
// any writer resumes, reports it as an edit (FORMAT.md §5); the writer that
// resumes cuts the file at the first NUL byte, fragments included, and
// what is left verifies.
func TestPowerLossFragments(t *testing.T) {
	// Under always: nothing after the NUL bytes was acknowledged (under
	// none it may have been: TestResumeKeepsRecordsAfterAHole).
	_, crashed := crashPreallocatedWith(t, rotate.SyncAlways)
	cpath := files(t, crashed)[0]
	data, _ := os.ReadFile(cpath)
	content := bytes.IndexByte(data, 0)
	// The next page holds the tail of a line and a whole one, as if two
	// more records had been written across the page boundary.
	page := (content/4096 + 1) * 4096
	fragment := []byte(`9a","mac":"00"}` + "\n" + `{"seq":8,"prev":"00","i":7,"mac":"00"}` + "\n")
	copy(data[page:], fragment)
	if err := os.WriteFile(cpath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	assertClass(t, verify(t, crashed, testKey), Modified)
	w2, err := Open(Options{Key: testKey, Rotate: rotate.Options{Dir: crashed}})
	if err != nil {
		t.Fatal(err)
	}
	w2.Close()
	data, _ = os.ReadFile(cpath)
	if bytes.IndexByte(data, 0) >= 0 || bytes.Contains(data, []byte(`"i":7`)) {
		t.Fatalf("the resumed writer left the NUL bytes or the fragment (%d bytes, content %d)", len(data), content)
	}
	assertIntact(t, verify(t, crashed, testKey))
}

// Cutting the checkpoints file and editing an epoch whose key is gone must
// not get the edit signed when the writer restarts: it cannot check those
// lines, so it does not vouch for them, and verification says so.
func TestResumeDoesNotSignWhatItCannotCheck(t *testing.T) {
	f := newSigned(t)
	f.session(t, 30, rotate.Options{}, 4)
	path := filepath.Join(f.dir, CheckpointsFileName(""))
	notes := readLines(t, path)
	writeLines(t, path, notes[:1])
	edit := func(path string, from, to string) {
		data, _ := os.ReadFile(path)
		os.WriteFile(path, bytes.Replace(data, []byte(from), []byte(to), 1), 0o600)
	}
	edit(files(t, f.dir)[0], `"msg":"record 20"`, `"msg":"record 99"`)
	var mu sync.Mutex
	var bgErrs []error
	w, err := Open(Options{KeyFile: f.keyFile, Rotate: rotate.Options{Dir: f.dir, Now: f.clock},
		Checkpoints: CheckpointOptions{Signer: f.signer, Every: 4, OnError: func(err error) { mu.Lock(); bgErrs = append(bgErrs, err); mu.Unlock() }}})
	if err == nil {
		w.Close() // a restart: it must at least refuse to sign
		mu.Lock()
		if len(bgErrs) != 1 || !strings.Contains(bgErrs[0].Error(), "were not signed") {
			t.Errorf("OnError got %v", bgErrs)
		}
		mu.Unlock()
	} else if !strings.Contains(err.Error(), "signed checkpoint") {
		t.Errorf("Open refused with %v", err)
	}

	cur, err := ReadKeyState(f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []VerifyOptions{
		{Key: f.k0, CheckpointKey: f.verifier},
		{KeyAt: cur, CheckpointKey: f.verifier},
	} {
		rep, err := Verify(f.dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		// With only a later key and the notes cut, the edited epoch can be
		// checked neither by MAC nor by digest: it must say so.
		if rep.Intact && (opts.KeyAt.Key == nil || rep.Unchecked == 0) {
			t.Errorf("key at epoch %d: the edit passed:\n%s", opts.KeyAt.Epoch, reportText(rep))
		}
	}
	for _, e := range mustNotes(t, path) {
		c, err := OpenCheckpoint(e.Note, f.verifier)
		if err == nil && c.Seq > 5 && c.Seq < 30 {
			t.Errorf("the restart signed seq %d, an epoch whose key it no longer had", c.Seq)
		}
	}
}

func mustNotes(t *testing.T, path string) []NoteEntry {
	t.Helper()
	es, err := ReadCheckpointsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// With a later epoch's key, the epoch numbers in the files must not decide
// which MACs are checked: hiding the last epoch end does not make the
// current epoch's lines unchecked.
func TestKeyAtIgnoresForgedEpochNumbering(t *testing.T) {
	f := newSigned(t)
	w, err := Open(Options{KeyFile: f.keyFile, Rotate: rotate.Options{Dir: f.dir, Now: f.clock}, Checkpoints: CheckpointOptions{Every: 4, Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 10 {
		w.Append(fmt.Appendf(nil, `"msg":"r%d"`, i), nil)
	}
	w.Sync()
	cur, _ := w.CurrentKey()
	if cur.From == 0 {
		t.Fatal("CurrentKey without From")
	}
	path := files(t, f.dir)[0]
	lines := readLines(t, path)
	last := -1
	for i, l := range lines {
		if strings.Contains(l, `"rec":"checkpoint"`) {
			last = i
		}
	}
	lines[last] = strings.Replace(lines[last], `"rec":"checkpoint"`, `"rec":"checkpoinX"`, 1)
	n := len(lines) - 2
	lines[n] = strings.Replace(lines[n], `"msg":"r9"`, `"msg":"r0"`, 1)
	writeLines(t, path, lines)
	rep, err := Verify(f.dir, VerifyOptions{KeyAt: cur})
	if err != nil {
		t.Fatal(err)
	}
	assertClass(t, rep, Modified)
}

// Replacing the key file erases the old key's bytes (seen through a hard
// link to the old file) and any temporary file a crash left.
func TestWriteKeyStateErasesOldKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.key")
	k0 := GenerateKey()
	if err := WriteKeyFile(path, k0); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, path+".link"); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	os.WriteFile(path+".tmp", []byte("stale key bytes"), 0o600)
	next, _ := NewKeyState(k0).At(1)
	if err := WriteKeyState(path, next); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".link")
	if len(bytes.Trim(old, "\x00")) != 0 {
		t.Errorf("the old key file still holds %q", old)
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		t.Error("the stale temporary file is still there")
	}
	ks, err := ReadKeyState(path)
	if err != nil || ks.Epoch != 1 || !bytes.Equal(ks.Key, next.Key) {
		t.Errorf("read back %+v, %v", ks, err)
	}
}

// tlog's TestTree style over a whole signed directory: every bit flip (of
// three per byte) in any file — chain files and checkpoints file — fails
// verification.
func TestVerifyEveryFlippedByteSigned(t *testing.T) {
	f := newSigned(t)
	f.session(t, 4, rotate.Options{MaxBytes: 1500}, 2)
	paths := append(files(t, f.dir), filepath.Join(f.dir, CheckpointsFileName("")))
	if len(paths) < 3 {
		t.Fatalf("want two chain files and the checkpoints file, got %v", paths)
	}
	if rep := f.verify(t, nil); !rep.Intact || len(rep.Problems()) != 0 {
		t.Fatalf("before:\n%s", reportText(rep))
	}
	flips := 0
	bits := []byte{0x01, 0x20, 0x80}
	if raceEnabled || testing.Short() {
		bits = bits[1:2] // the same bytes, a third of the time
	}
	for _, path := range paths {
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range orig {
			for _, bit := range bits {
				data := bytes.Clone(orig)
				data[i] ^= bit
				os.WriteFile(path, data, 0o600)
				rep, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: f.verifier})
				if err == nil && rep.Intact {
					t.Fatalf("%s: flipping bit %#x of byte %d (%q) went unnoticed:\n%s", filepath.Base(path), bit, i, orig[i], reportText(rep))
				}
				flips++
			}
		}
		os.WriteFile(path, orig, 0o600)
	}
	t.Logf("%d flips, none unnoticed", flips)
}

// EpochKey gives, with the current epoch's key, the first seq it sealed, so
// that a reader does not take it for lines before (re-sealed by someone
// holding the key, claiming its epoch).
func TestEpochKeyFrom(t *testing.T) {
	f := newSigned(t)
	w, err := Open(Options{KeyFile: f.keyFile, Rotate: rotate.Options{Dir: f.dir, Now: f.clock}, Checkpoints: CheckpointOptions{Signer: f.signer, Every: 4, Interval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var pos Position
	for i := range 6 {
		if err := w.Append(fmt.Appendf(nil, `"i":%d`, i), &pos); err != nil {
			t.Fatal(err)
		}
	}
	// open (1), r0..r2 (2-4), checkpoint (5): epoch 1 from seq 6.
	ks, ok := w.CurrentKey()
	if !ok || ks.Epoch != 1 {
		t.Fatalf("current key %+v, %v", ks, ok)
	}
	key, from, ok := w.EpochKey(1)
	if !ok || !bytes.Equal(key, ks.Key) || from != 6 {
		t.Errorf("EpochKey(1) = %v, from %d; want the current key from seq 6", ok, from)
	}
	if key, from, ok := w.EpochKey(0); ok && (from != 1 || !bytes.Equal(key, f.k0)) {
		t.Errorf("EpochKey(0) held: from %d", from)
	}
	if _, _, ok := w.EpochKey(2); ok {
		t.Error("EpochKey(2): a key of an epoch not begun")
	}
}

// A note's signature has one spelling: base64 whose last digit differs
// only in bits the decoder drops decodes to the same signature, and must
// not open (the every-flipped-byte test hit it now and then).
func TestCheckpointSignatureCanonical(t *testing.T) {
	f := newSigned(t)
	f.session(t, 3, rotate.Options{}, 2)
	entries, err := ReadCheckpointsFile(filepath.Join(f.dir, CheckpointsFileName("")))
	if err != nil || len(entries) == 0 {
		t.Fatalf("%d notes, %v", len(entries), err)
	}
	msg := entries[0].Note
	if _, err := OpenCheckpoint(msg, f.verifier); err != nil {
		t.Fatal(err)
	}
	// The signature (4-byte key hash + 64-byte Ed25519 signature) is 68
	// bytes: its base64 ends in a digit with two unused bits, then '='.
	i := bytes.LastIndex(msg, []byte("=\n")) - 1
	if i < 0 {
		t.Fatalf("no padded signature in %q", msg)
	}
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	d := strings.IndexByte(digits, msg[i])
	alt := bytes.Clone(msg)
	alt[i] = digits[d^1]
	if _, err := OpenCheckpoint(alt, f.verifier); !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("a signature spelt differently opened: %v", err)
	}
}

// A file that cannot be read, from its gzip header on or part way, is a
// MODIFIED finding of that file, and the other files are still checked.
func TestVerifyUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(Options{Key: testKey, Rotate: rotate.Options{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := w.Append(fmt.Appendf(nil, `"i":%d`, i), nil); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	paths := files(t, dir)
	if len(paths) < 3 {
		t.Fatalf("%d files", len(paths))
	}
	for _, tc := range []struct {
		name    string
		corrupt func([]byte) []byte
	}{
		{"header", func(gz []byte) []byte { gz[0] ^= 0xff; return gz }},
		{"trailer", func(gz []byte) []byte { gz[len(gz)-6] ^= 1; return gz }},
		{"truncated", func(gz []byte) []byte { return gz[:len(gz)/2] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig, err := os.ReadFile(paths[1])
			if err != nil {
				t.Fatal(err)
			}
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(orig)
			zw.Close()
			if err := os.WriteFile(paths[1]+".gz", tc.corrupt(z.Bytes()), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove(paths[1])
			defer func() { os.Remove(paths[1] + ".gz"); os.WriteFile(paths[1], orig, 0o600) }()
			rep, err := Verify(dir, VerifyOptions{Key: testKey})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Intact || len(rep.Files) != len(paths) {
				t.Fatalf("intact %v, %d file reports of %d", rep.Intact, len(rep.Files), len(paths))
			}
			fr := rep.Files[1]
			if len(fr.Problems) == 0 || fr.Problems[0].Class != Modified || !strings.Contains(fr.Problems[0].Detail, "cannot be read") {
				t.Errorf("%s: %+v", fr.Name, fr.Problems)
			}
			if !rep.Files[0].OK() {
				t.Errorf("the file before was not checked as intact: %+v", rep.Files[0].Problems)
			}
		})
	}
}

// Given a checkpoint key, only signed checkpoints anchor: with the notes
// gone, the epoch ends in the chain (which a holder of the current key can
// write) do not, and every line is reported UNANCHORED.
func TestUnsignedEpochEndsDoNotAnchor(t *testing.T) {
	f := newSigned(t)
	f.session(t, 6, rotate.Options{}, 2)
	if err := os.Remove(filepath.Join(f.dir, CheckpointsFileName(""))); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: f.verifier})
	if err != nil {
		t.Fatal(err)
	}
	if rep.AnchoredSeq != 0 || !slices.ContainsFunc(rep.Problems(), func(p Problem) bool { return p.Class == Unanchored }) {
		t.Errorf("anchored through %d; problems %v", rep.AnchoredSeq, rep.Problems())
	}
	// Without a checkpoint key the ended epochs are anchored by their
	// keys being gone.
	rep, err = Verify(f.dir, VerifyOptions{Key: f.k0})
	if err != nil {
		t.Fatal(err)
	}
	if rep.AnchoredSeq == 0 {
		t.Errorf("without a checkpoint key: anchored through %d", rep.AnchoredSeq)
	}
}
