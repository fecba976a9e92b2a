package chain

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// Each open record names the last note synced to the checkpoints file
// (last_note), so deleting the checkpoints file, alone or with the newest
// files, is BAD_CHECKPOINT, with or without the checkpoint key. Before,
// both passed as INTACT (UNANCHORED only), while deleting one note failed.
func TestDeletedCheckpointsFileFails(t *testing.T) {
	for _, drop := range []int{0, 2} {
		f := newSigned(t)
		for range 4 {
			f.session(t, 20, rotate.Options{}, 5)
		}
		fs := files(t, f.dir)
		before := f.verify(t, nil)
		if !before.Intact || before.Notes == 0 {
			t.Fatalf("before:\n%s", reportText(before))
		}
		if err := os.Remove(filepath.Join(f.dir, CheckpointsFileName(""))); err != nil {
			t.Fatal(err)
		}
		for _, p := range fs[len(fs)-drop:] {
			os.Remove(p)
		}
		for _, withKey := range []bool{true, false} {
			opts := VerifyOptions{Key: f.k0}
			if withKey {
				opts.CheckpointKey = f.verifier
			}
			rep, err := Verify(f.dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Intact || !hasClass(rep, BadCheckpoint) {
				t.Errorf("checkpoints file and the %d newest files deleted (checkpoint key %v): %v\n%s", drop, withKey, classes(rep), reportText(rep))
			}
		}
	}
}

// The open record names the last note on disk when the file was opened: a
// session's first file the last note of the sessions before, a file opened
// by rotation the notes its own session synced meanwhile. A chain without
// a signer names none (its files are as before).
func TestOpenRecordNamesLastNote(t *testing.T) {
	f := newSigned(t)
	f.session(t, 20, rotate.Options{}, 5)
	f.session(t, 30, rotate.Options{MaxBytes: 1500}, 5)
	rep := f.verify(t, nil)
	assertIntact(t, rep)
	var named int
	for i, p := range files(t, f.dir) {
		l := openLine(t, p)
		var oi OpenInfo
		if err := l.Decode(&oi); err != nil {
			t.Fatal(err)
		}
		if i == 0 && oi.LastNote != 0 {
			t.Errorf("first file names note %d", oi.LastNote)
		}
		if i > 0 && (oi.LastNote == 0 || oi.LastNote >= l.Seq) {
			t.Errorf("%s (seq %d) names note %d", filepath.Base(p), l.Seq, oi.LastNote)
		}
		if oi.LastNote != 0 {
			named++
		}
	}
	if named < 2 {
		t.Errorf("%d files name a note", named)
	}
	dir := t.TempDir()
	writeLog(t, dir, testKey, 5, rotate.Options{Now: fakeClock()})
	writeLog(t, dir, testKey, 5, rotate.Options{Now: fakeClock()})
	for _, p := range files(t, dir) {
		if strings.Contains(readLines(t, p)[0], "last_note") {
			t.Errorf("unsigned chain: %s names a note", filepath.Base(p))
		}
	}
}

// openLine returns the first line (the open record) of path.
func openLine(t *testing.T, path string) Line {
	t.Helper()
	l, err := ParseLine([]byte(strings.TrimSuffix(readLines(t, path)[0], "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return l
}
