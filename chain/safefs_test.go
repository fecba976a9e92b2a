//go:build unix

package chain

import (
	"bytes"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// The victim of a planted link: a file of the process's user outside the
// audit and key directories, ending without a newline (a torn last line,
// to the checkpoints file's trimming).
const victimData = "listen: 8080\nIMPORTANT DATA THAT MUST SURVIVE"

func victimFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(p, []byte(victimData), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func assertVictim(t *testing.T, victim string) {
	t.Helper()
	got, err := os.ReadFile(victim)
	if err != nil || string(got) != victimData {
		t.Errorf("the link's target %s was written through: it holds %q (%v)", victim, got, err)
	}
}

// A symbolic link at the checkpoints file's name is not followed: Open
// refuses it (it would have trimmed the target's "torn" last line, then
// appended notes to it), saying what it is.
func TestOpenRefusesCheckpointsSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := victimFile(t)
	link := filepath.Join(dir, CheckpointsFileName(""))
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	signer, _ := testSigner(t, "test")
	w, err := Open(Options{Key: testKey, Checkpoints: CheckpointOptions{Signer: signer},
		Rotate: rotate.Options{Dir: dir, Now: fakeClock()}})
	if err == nil {
		w.Append([]byte(`"msg":"x"`), nil)
		w.Close()
	}
	assertErrorSays(t, "Open", err, link, "symbolic link")
	assertVictim(t, victim)
}

// A link put there while the Writer runs is not followed either: the
// checkpoint fails (its notes are kept for the next try), the target is
// untouched, and once the link is gone the notes are appended and the
// trail verifies.
func TestCheckpointsSymlinkWhileRunning(t *testing.T) {
	dir := t.TempDir()
	victim := victimFile(t)
	signer, verifier := testSigner(t, "test")
	w, err := Open(Options{Key: testKey, Checkpoints: CheckpointOptions{Signer: signer, Every: -1, Interval: -1},
		Rotate: rotate.Options{Dir: dir, Now: fakeClock()}})
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, CheckpointsFileName(""))
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]byte(`"msg":"x"`), nil); err != nil {
		t.Fatal(err)
	}
	assertErrorSays(t, "Checkpoint", w.Checkpoint(), link, "symbolic link")
	assertVictim(t, victim)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint(); err != nil {
		t.Fatalf("Checkpoint without the link: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	assertVictim(t, victim)
	rep, err := Verify(dir, VerifyOptions{Key: testKey, CheckpointKey: verifier})
	if err != nil {
		t.Fatal(err)
	}
	assertIntact(t, rep)
	if fi, err := os.Lstat(link); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("checkpoints file: %v, %v", fi, err)
	}
}

// trimUnwritten (the resume's cut of a preallocated file's NUL bytes)
// does not follow a symbolic link put where the newest file was listed.
func TestTrimUnwrittenDoesNotFollowSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := victimFile(t)
	link := filepath.Join(dir, "audit-20261127T010000.000000000Z.jsonl")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	_, err := trimUnwritten(link, 3, false)
	assertErrorSays(t, "trimUnwritten", err, link, "symbolic link")
	assertVictim(t, victim)
}

// keyFixture is a key file in a directory of its own.
func keyFixture(t *testing.T) (keyFile string, k0 []byte) {
	t.Helper()
	keyFile = filepath.Join(t.TempDir(), "audit.key")
	k0 = GenerateKey()
	if err := WriteKeyFile(keyFile, k0); err != nil {
		t.Fatal(err)
	}
	return keyFile, k0
}

// A symbolic link at <key file>.tmp is neither erased through (the stale
// temporary key file a crash may leave is zeroed before it is removed) nor
// written through: the Writer removes the link and creates the file with
// O_EXCL, and the key moves on as usual.
func TestKeyTmpSymlinkNotFollowed(t *testing.T) {
	keyFile, k0 := keyFixture(t)
	victim := victimFile(t)
	if err := os.Symlink(victim, keyFile+".tmp"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var errs []error
	w, err := Open(Options{KeyFile: keyFile, Checkpoints: CheckpointOptions{OnError: func(e error) { errs = append(errs, e) }},
		Rotate: rotate.Options{Dir: dir, Now: fakeClock()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]byte(`"msg":"x"`), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil { // ends the epoch: the key moves on
		t.Fatal(err)
	}
	assertVictim(t, victim)
	if len(errs) > 0 {
		t.Errorf("OnError heard %v", errs)
	}
	ks, err := ReadKeyState(keyFile)
	if err != nil || ks.Epoch == 0 || ks.ID != KeyID(k0) {
		t.Errorf("key file after Close: %+v, %v; want a later epoch", ks, err)
	}
	if _, err := os.Lstat(keyFile + ".tmp"); err == nil {
		t.Errorf("%s.tmp is still there", keyFile)
	}
	assertIntact(t, verify(t, dir, k0))
}

// WriteKeyState replaces a key file that has become a symbolic link since
// the Writer started (someone swapped it) by a regular file, and erases
// nothing through the link.
func TestWriteKeyStateDoesNotEraseThroughSymlink(t *testing.T) {
	victim := victimFile(t)
	path := filepath.Join(t.TempDir(), "audit.key")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	next, _ := NewKeyState(GenerateKey()).At(1)
	if err := WriteKeyState(path, next); err != nil {
		t.Fatal(err)
	}
	assertVictim(t, victim)
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("key file: %v, %v; want a regular file", fi, err)
	}
	if ks, err := ReadKeyState(path); err != nil || !bytes.Equal(ks.Key, next.Key) {
		t.Errorf("read back %+v, %v", ks, err)
	}
}

// WriteKeyState erases only files of the process's user: not a stale
// temporary file, nor an old key file, that another user owns (a hard
// link to someone's file, say).
func TestWriteKeyStateErasesOnlyOwnFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give files away")
	}
	for _, name := range []string{"audit.key.tmp", "audit.key"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "audit.key")
		if err := WriteKeyFile(path, GenerateKey()); err != nil {
			t.Fatal(err)
		}
		victim := victimFile(t)
		if err := os.Chown(victim, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, name))
		if err := os.Link(victim, filepath.Join(dir, name)); err != nil {
			t.Skipf("no hard links here: %v", err)
		}
		next, _ := NewKeyState(GenerateKey()).At(1)
		if err := WriteKeyState(path, next); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(victim); string(got) != victimData {
			t.Errorf("%s: the file of uid 65534 was erased: %q", name, got)
		}
	}
}

// Open refuses an audit directory that others may write before it
// changes anything there (resume trims a torn checkpoints line).
func TestOpenRefusesSharedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, CheckpointsFileName(""))
	const torn = `{"seq":1,"epoch":0,"note":"torn`
	if err := os.WriteFile(ckpt, []byte(torn), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	group := groupAnd(t, dir)
	w, err := Open(Options{Key: testKey, Rotate: rotate.Options{Dir: dir, Now: fakeClock()}})
	if err == nil {
		w.Close()
	}
	assertErrorSays(t, "Open", err, dir, "writable by "+group+"others", "chmod go-w "+dir, "AllowSharedDir")
	if got, _ := os.ReadFile(ckpt); string(got) != torn {
		t.Errorf("Open refused the directory but changed the checkpoints file to %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("Open refused the directory but left %d entries in it", len(ents))
	}
	// Accepted as it is with rotate.Options.AllowSharedDir.
	w, err = Open(Options{Key: testKey, Rotate: rotate.Options{Dir: dir, Now: fakeClock(), AllowSharedDir: true}})
	if err != nil {
		t.Fatalf("AllowSharedDir: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("mode %v, %v: want it left alone", fi.Mode(), err)
	}
}

// Open refuses a key file directory that others may write (they could
// swap the key file, or the next one, for a link), and a key file that is
// a symbolic link; a directory a group may read (0750) is fine.
func TestOpenChecksKeyFile(t *testing.T) {
	dir := t.TempDir() // of the chain whose key is keyFile
	open := func(keyFile string) error {
		w, err := Open(Options{KeyFile: keyFile, Rotate: rotate.Options{Dir: dir, Now: fakeClock()}})
		if err == nil {
			err = w.Close()
		}
		return err
	}

	keyFile, _ := keyFixture(t)
	keyDir := filepath.Dir(keyFile)
	if err := os.Chmod(keyDir, 0o777); err != nil {
		t.Fatal(err)
	}
	group := groupAnd(t, keyDir)
	shared := group != ""
	assertErrorSays(t, "0777 key directory", open(keyFile), keyDir, "writable by "+group+"others", "chmod go-w "+keyDir, "AllowSharedKeyDir")
	w, err := Open(Options{KeyFile: keyFile, AllowSharedKeyDir: true, Rotate: rotate.Options{Dir: dir, Now: fakeClock()}})
	if err != nil {
		t.Fatalf("0777 key directory with AllowSharedKeyDir: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyDir, 0o770); err != nil {
		t.Fatal(err)
	}
	if shared {
		assertErrorSays(t, "0770 key directory", open(keyFile), "writable by group")
	} else if err := open(keyFile); err != nil {
		t.Errorf("0770 key directory of the user's private group: %v", err)
	}
	if err := os.Chmod(keyDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := open(keyFile); err != nil {
		t.Errorf("0750 key directory: %v", err)
	}

	real, _ := keyFixture(t)
	link := filepath.Join(t.TempDir(), "audit.key")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	assertErrorSays(t, "symbolic link", open(link), link, "symbolic link", real)
}

// Open refuses a key file or key directory of another user.
func TestOpenRefusesKeyFileOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give files away")
	}
	open := func(keyFile string) error {
		w, err := Open(Options{KeyFile: keyFile, Rotate: rotate.Options{Dir: t.TempDir(), Now: fakeClock()}})
		if err == nil {
			err = w.Close()
		}
		return err
	}
	keyFile, _ := keyFixture(t)
	if err := os.Chown(keyFile, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	assertErrorSays(t, "key file of uid 65534", open(keyFile), keyFile, "owned by uid 65534", "chown 0 "+keyFile)
	keyFile, _ = keyFixture(t)
	if err := os.Chown(filepath.Dir(keyFile), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	assertErrorSays(t, "key directory of uid 65534", open(keyFile), "owned by uid 65534", "chown 0 "+filepath.Dir(keyFile))
}

// groupAnd gives dir a group shared with others when it can (as root:
// nogroup) and returns "group and " if group write then lets others in, ""
// if dir keeps the user's private group (named as the user: rotate.CheckDir
// does not count its write bit).
func groupAnd(t *testing.T, dir string) string {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, -1, 65534); err != nil {
			t.Fatal(err)
		}
		return "group and "
	}
	u, err1 := user.Current()
	g, err2 := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err1 == nil && err2 == nil && g.Name == u.Username {
		return ""
	}
	return "group and "
}

// An audit directory shared by design (sticky, writable by others, as
// /tmp is) gets rotate's advice, a subdirectory made 0700, once: naming a
// directory that does not exist yet is that advice, said as such, not a
// second remedy after it. A key file that is a directory is named as one.
func TestOpenSharedDirAdviceReadsOnce(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Options{Key: testKey, Rotate: rotate.Options{Dir: shared, Now: fakeClock()}})
	sub := filepath.Join(shared, "audit")
	assertErrorSays(t, "sticky audit directory", err, "shared by design", "(mkdir -m 0700 "+sub+"), or just name it as the directory: one that does not exist yet is created 0700",
		"AllowSharedDir accepts "+shared+" as it is")
	if err != nil && (strings.Contains(err.Error(), "); or name a directory") || strings.Count(err.Error(), "0700") != 2) {
		t.Errorf("the advice reads twice: %v", err)
	}

	keyDir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyDir, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{KeyFile: filepath.Join(keyDir, "audit.key"), Rotate: rotate.Options{Dir: t.TempDir(), Now: fakeClock()}})
	assertErrorSays(t, "sticky key directory", err, "(mkdir -m 0700 "+filepath.Join(keyDir, "audit")+"), and keep the key file there", "AllowSharedKeyDir accepts "+keyDir+" as it is")
	if err != nil && strings.Contains(err.Error(), "; or keep the key file") {
		t.Errorf("the advice reads twice: %v", err)
	}

	asDir := t.TempDir()
	_, err = Open(Options{KeyFile: asDir, Rotate: rotate.Options{Dir: t.TempDir(), Now: fakeClock()}})
	assertErrorSays(t, "key file that is a directory", err, asDir+" is not a regular file: it is a directory")
	if err != nil && strings.Contains(err.Error(), "d---------") {
		t.Errorf("the directory's mode is shown as %q: %v", "d---------", err)
	}
}
