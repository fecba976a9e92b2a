//go:build unix

package rotate

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// errLog collects what OnError hears.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) add(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errLog) get() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

const victimData = "IMPORTANT DATA THAT MUST SURVIVE"

// victimFile creates a file outside the audit directory that a planted
// link points to.
func victimFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "database.db")
	if err := os.WriteFile(p, []byte(victimData), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func assertVictim(t *testing.T, victim string) {
	t.Helper()
	if got := readFile(t, victim); got != victimData {
		t.Errorf("the link's target %s was written through: it holds %q", victim, got[:min(len(got), 40)])
	}
}

// A symbolic link planted at <file>.gz.tmp, where the Writer compresses a
// closed file, is not followed: the Writer removes the link (which leaves
// its target alone) and creates its temporary file afresh with O_EXCL, so
// the file is compressed as usual and the target is untouched.
func TestGzipTmpSymlinkNotFollowed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	victim := victimFile(t)
	var errs errLog
	w := open(t, Options{Dir: dir, Compress: true, Now: newClock(t0).Now, OnError: errs.add})
	write(t, w, "x\n")
	live := w.Path()
	if err := os.Symlink(victim, live+".gz.tmp"); err != nil {
		t.Fatal(err)
	}
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	closeW(t, w)
	assertVictim(t, victim)
	if errs := errs.get(); len(errs) > 0 {
		t.Errorf("OnError heard %v", errs)
	}
	if got := names(t, dir); len(got) != 1 || got[0] != filepath.Base(live)+".gz" {
		t.Errorf("files %q, want only %s.gz", got, filepath.Base(live))
	}
	if got := readFile(t, live+".gz"); got != "x\n" {
		t.Errorf("compressed file reads %q", got)
	}
}
