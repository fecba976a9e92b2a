//go:build unix

package rotate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

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

// A closed file replaced, before it is compressed, by something that is
// not a regular file is left alone, and the error says what it is.
func TestGzipNotRegular(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		plant func(path string) error
	}{
		{"a directory", func(path string) error { return os.Mkdir(path, 0o700) }},
		{"a named pipe (FIFO)", func(path string) error { return syscall.Mkfifo(path, 0o600) }},
	} {
		dir := filepath.Join(t.TempDir(), "audit")
		var errs collected[error]
		replace := func(path string) {
			if err := os.Remove(path); err != nil {
				t.Error(err)
			}
			if err := tc.plant(path); err != nil {
				t.Error(err)
			}
		}
		w := open(t, Options{Dir: dir, Compress: true, Now: newClock(t0).Now, OnError: errs.add, OnRotate: replace})
		write(t, w, "x\n")
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		closeW(t, w)
		if errs := errs.get(); len(errs) != 1 || !strings.HasSuffix(errs[0].Error(), "not a regular file: "+tc.kind) {
			t.Errorf("OnError heard %v, want one error ending in %q", errs, "not a regular file: "+tc.kind)
		}
	}
}

// A symbolic link planted at <file>.gz.tmp, where the Writer compresses a
// closed file, is not followed: the Writer removes the link (which leaves
// its target alone) and creates its temporary file afresh with O_EXCL, so
// the file is compressed as usual and the target is untouched.
func TestGzipTmpSymlinkNotFollowed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	victim := victimFile(t)
	var errs collected[error]
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

// New refuses a directory that others may write (also sticky, like /tmp),
// with an error that says what to do, and changes nothing in it; one that
// a group may only read (0750, as deployment tools make them) is fine.
func TestNewChecksDirMode(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		who  string // "" = accepted
	}{
		{0o700, ""},
		{0o750, ""},
		{0o755, ""},
		{0o711, ""},
		{0o770, "group"},
		{0o730, "group"},
		{0o702, "others"},
		{0o777, "group and others"},
		{0o777 | os.ModeSticky, "group and others"},
		{0o703 | os.ModeSticky, "others"},
	} {
		dir := filepath.Join(t.TempDir(), "audit")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, tc.mode); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tc.who, "group") && !sharedGroup(t, dir) {
			continue
		}
		err := newOrRefused(t, tc.mode.String(), dir, tc.who != "")
		if err == nil {
			continue
		}
		if tc.mode&os.ModeSticky != 0 {
			// Shared by design, as /tmp is: a subdirectory, not a chmod.
			errorSays(t, tc.mode.String(), err, dir, "writable by "+tc.who, "use a subdirectory", "mkdir -m 0700 "+filepath.Join(dir, "audit"), "AllowSharedDir")
			if strings.Contains(err.Error(), "chmod") {
				t.Errorf("%v: error %q advises a chmod of a sticky directory", tc.mode, err)
			}
		} else {
			errorSays(t, tc.mode.String(), err, dir, "writable by "+tc.who, "chmod go-w "+dir, "AllowSharedDir")
		}
		if got := names(t, dir); len(got) != 0 {
			t.Errorf("%v: New refused the directory but created %q in it", tc.mode, got)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode()&(os.ModePerm|os.ModeSticky) != tc.mode {
			t.Errorf("%v: the directory's mode changed: %v, %v", tc.mode, fi.Mode(), err)
		}
	}
}

// For a system directory such as /tmp, /var/tmp or /dev/shm (sticky and
// writable by all, owned by root), the error advises a subdirectory of it,
// never a chmod or chown of it; so it does for any system directory.
func TestNewAdvisesSubdirectoryOfSystemDir(t *testing.T) {
	for _, dir := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm()&0o002 == 0 {
			continue // not here, or not shared as usual
		}
		err = newOrRefused(t, dir, dir, true)
		if err == nil {
			continue
		}
		errorSays(t, dir, err, "unsafe directory "+dir, "use a subdirectory", "mkdir -m 0700 "+filepath.Join(dir, "audit"), "AllowSharedDir")
		if strings.Contains(err.Error(), "chmod") || strings.Contains(err.Error(), "chown") {
			t.Errorf("%s: error %q advises changing a system directory", dir, err)
		}
		if !errors.Is(err, ErrUnsafeDir) || errors.Is(err, ErrUnsafeParent) {
			t.Errorf("%s: error %q wraps ErrUnsafeDir %v, ErrUnsafeParent %v; want only the first", dir, err, errors.Is(err, ErrUnsafeDir), errors.Is(err, ErrUnsafeParent))
		}
	}
	for dir, want := range map[string]bool{"/var/log": true, "/var/log/": true, "/tmp": true, "/var/log/audit": false, "/tmp/audit": false} {
		if got := systemDir(dir); got != want {
			t.Errorf("systemDir(%q) = %v, want %v", dir, got, want)
		}
	}
}

// New refuses a directory owned by another user (its owner could plant
// links in it), or below a directory of another user (who could put
// another directory in its place). Root's directories are trusted.
func TestNewRefusesDirOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give the directory away")
	}
	for _, tc := range []struct {
		giveAway string // "audit" or its parent, "other"
		wants    []string
	}{
		{"audit", []string{"owned by uid 65534", "uid 0", "chown 0 "}},
		{"other", []string{"other on its path", "owned by uid 65534, neither root nor this process's user"}},
	} {
		dir := filepath.Join(t.TempDir(), "other", "audit")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		given := dir
		if tc.giveAway == "other" {
			given = filepath.Dir(dir)
		}
		if err := os.Chown(given, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := newOrRefused(t, "uid 65534 owns "+tc.giveAway, dir, true); err != nil {
			errorSays(t, tc.giveAway, err, tc.wants...)
		}
	}
}

// Options.AllowSharedDir accepts such a directory, as is; CheckDir still
// reports it, with ErrUnsafeDir.
func TestAllowSharedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir); !errors.Is(err, ErrUnsafeDir) {
		t.Errorf("CheckDir = %v, want ErrUnsafeDir", err)
	}
	w := open(t, Options{Dir: dir, AllowSharedDir: true})
	write(t, w, "x\n")
	closeW(t, w)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("mode %v, %v: want it left alone", fi.Mode(), err)
	}
	if err := CheckDir(t.TempDir()); err != nil {
		t.Errorf("CheckDir(t.TempDir()) = %v", err)
	}
	if err := CheckDir(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CheckDir(missing) = %v, want ErrNotExist", err)
	}
}

// sharedGroup gives dir a group other than the user's private group (as
// root: nogroup) and reports whether it has one: group write then lets
// others in. Without root, dir keeps the user's group, shared or not.
func sharedGroup(t *testing.T, dir string) bool {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, -1, 65534); err != nil {
			t.Fatal(err)
		}
		return true
	}
	return !privateGroup(uint32(os.Getegid()))
}

// A directory writable by the user's private group (umask 002 on most Linux
// distributions: the group is named as the user and has no one else) is
// the user's alone: accepted. The same mode with another group is not.
func TestNewAcceptsPrivateGroupWrite(t *testing.T) {
	if !privateGroup(uint32(os.Getegid())) {
		t.Skipf("the effective group %d is not named as the user: no private group here", os.Getegid())
	}
	dir := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Dir: dir, Framer: &logFramer{t: t}})
	if err != nil {
		t.Fatalf("New refused a directory writable only by the private group: %v", err)
	}
	closeW(t, w)
	if os.Geteuid() != 0 {
		return
	}
	if err := os.Chown(dir, -1, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Dir: dir, Framer: &logFramer{t: t}}); !errors.Is(err, ErrUnsafeDir) {
		t.Errorf("a 0775 directory of group 65534: New: %v, want ErrUnsafeDir", err)
	}
}

// New refuses a directory on a path that someone else may change: a
// directory above it, or above a symbolic link on the way, that others may
// write without the sticky bit or that another user owns could get
// another directory put in the audit directory's place.
func TestNewChecksParents(t *testing.T) {
	base := t.TempDir()
	mkdir := func(name string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(base, name)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := func(target, name string) string {
		t.Helper()
		p := filepath.Join(base, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	shared := mkdir("shared", 0o777)
	sharedGroup(t, mkdir("group", 0o775)) // as /var/log is root:syslog 0775
	mkdir("sticky", 0o777|os.ModeSticky)
	mkdir("safe", 0o755)
	mkdir("safe2/audit", 0o700)
	mkdir("shared/audit", 0o700)
	mkdir("sticky/audit", 0o700)
	link(filepath.Join(base, "safe2"), "shared/to-safe2")
	link(filepath.Join(base, "shared", "audit"), "safe/abs-to-shared")
	link("../shared/audit", "safe/rel-to-shared")
	link("../safe2/audit", "safe/rel-to-safe2")
	link("loop-b", "safe/loop-a")
	link("loop-a", "safe/loop-b")

	for _, tc := range []struct {
		dir    string
		unsafe string // the directory the error names; "" = accepted
	}{
		{"sticky/audit", ""},
		{"group/audit", ""},
		{"sticky/new", ""},
		{"safe/rel-to-safe2", ""},
		{"safe/rel-to-safe2/new", ""},
		{"shared/audit", shared},
		{"shared/new/deeper", shared}, // refused before anything is created
		{"shared/to-safe2/audit", shared},
		{"safe/abs-to-shared", shared},
		{"safe/rel-to-shared", shared},
	} {
		dir := filepath.Join(base, tc.dir)
		_, statErr := os.Stat(dir)
		err := newOrRefused(t, tc.dir, dir, tc.unsafe != "")
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrUnsafeParent) || !errors.Is(err, ErrUnsafeDir) {
			t.Errorf("%s: New: %v, want ErrUnsafeParent and ErrUnsafeDir", tc.dir, err)
		}
		errorSays(t, tc.dir, err, dir, tc.unsafe+" on its path", "without the sticky bit (mode 0777)", "chmod +t "+tc.unsafe, "AllowSharedDir")
		if strings.Contains(err.Error(), "does not exist yet") {
			t.Errorf("%s: error %q suggests a new directory, which would be as unsafe", tc.dir, err)
		}
		if _, err := os.Stat(dir); errors.Is(statErr, os.ErrNotExist) && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: New refused it but created it (%v)", tc.dir, err)
		}
		if err := CheckDir(dir); statErr == nil && !errors.Is(err, ErrUnsafeParent) {
			t.Errorf("%s: CheckDir = %v, want ErrUnsafeParent", tc.dir, err)
		}
	}

	if _, err := New(Options{Dir: filepath.Join(base, "safe/loop-a/audit")}); err == nil || !strings.Contains(err.Error(), "symbolic links") {
		t.Errorf("a path through a loop of links: New: %v", err)
	}

	// A relative directory is looked up from the working directory, whose
	// own path counts.
	t.Chdir(shared)
	if _, err := New(Options{Dir: "audit"}); !errors.Is(err, ErrUnsafeParent) {
		t.Errorf("relative, working directory writable by others: New: %v, want ErrUnsafeParent", err)
	}
	w := open(t, Options{Dir: "audit", AllowSharedDir: true})
	closeW(t, w)
	t.Chdir(filepath.Join(base, "sticky"))
	w = open(t, Options{Dir: "audit", Framer: &logFramer{t: t}})
	closeW(t, w)
}

// newOrRefused opens a Writer on dir and returns New's error, having
// reported (as name) an error when refuse is false and an acceptance when it
// is true; a Writer it opened writes a line and is closed.
func newOrRefused(t *testing.T, name, dir string, refuse bool) error {
	t.Helper()
	w, err := New(Options{Dir: dir, Framer: &logFramer{t: t}})
	switch {
	case err != nil && !refuse:
		t.Errorf("%s: New: %v", name, err)
		return nil
	case err == nil && refuse:
		w.Close()
		t.Errorf("%s: New accepted %s", name, dir)
	case err == nil:
		write(t, w, "x\n")
		closeW(t, w)
	}
	return err
}

// errorSays reports (as name) each of wants that err's text does not hold.
func errorSays(t *testing.T, name string, err error, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not say %q", name, err, want)
		}
	}
}

// A working directory reached through a link in a directory others may
// write: the path checked is the real one, which ".." climbs (Getwd may
// answer $PWD, link and all).
func TestNewChecksRealWorkingDirectory(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "safe", "inner", "deep")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "safe", "inner"), filepath.Join(shared, "lnk")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join(shared, "lnk", "deep"))
	t.Setenv("PWD", filepath.Join(shared, "lnk", "deep"))
	w, err := New(Options{Dir: "../audit", Framer: &logFramer{t: t}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	closeW(t, w)
	if _, err := os.Stat(filepath.Join(base, "safe", "inner", "audit")); err != nil {
		t.Errorf("not created where .. leads: %v", err)
	}
}
