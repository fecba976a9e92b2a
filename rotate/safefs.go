package rotate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrUnsafeDir is wrapped by the error CheckDir returns for a directory
// that users other than the process's may change.
var ErrUnsafeDir = errors.New("unsafe directory")

// ErrUnsafeParent is wrapped, with ErrUnsafeDir, by the error CheckDir
// returns when a directory above dir (or one that a symbolic link on the
// way to it is in) lets users other than the process's change it.
var ErrUnsafeParent = errors.New("unsafe parent directory")

// CheckDir returns an error wrapping ErrUnsafeDir unless dir is a directory
// that only the process's (effective) user may change: owned by that user
// and writable neither by its group nor by others, sticky (as /tmp) or
// not. A group may read it (mode 0750), and the user's private group (the
// effective group, named as the user: the Linux convention under which a
// umask of 002 makes directories 0775) may write it. The error says what to
// do: chmod or chown a directory of the user's; but for one shared by
// design (sticky and writable by others or a group, as /tmp, /var/tmp and
// /dev/shm are, or a system directory such as /var/log) use a subdirectory
// of it, created 0700 (by root, owned by the user, for a system
// directory the user cannot write), and leave it as it is. Errors of os.Stat, such as
// one wrapping fs.ErrNotExist, are returned as they are. A symbolic link
// to a directory is followed: the directory is checked, not the link.
//
// Whoever may create entries in a directory can put a symbolic link, or a
// FIFO, at a name where a writer is about to create or append to a file,
// and remove or replace the files it wrote. A Writer never follows a
// symbolic link in its directory; New refuses an unsafe one unless
// Options.AllowSharedDir is set.
//
// Whoever may rename entries in a directory above dir can put another
// directory in dir's place. So CheckDir also checks every directory that
// a path lookup of dir reads a name in, from the root (or the working
// directory) down and through each symbolic link on the way: each must be
// owned by root or the process's user, and one that others (not only its
// group) may write must be sticky, as /tmp is: in a sticky directory only
// an entry's owner may rename or remove it. Group write is the owner's
// choice of whom to trust, and common (root:syslog 0775 /var/log, the
// fsGroup of a Kubernetes volume). Such an error also wraps
// ErrUnsafeParent.
//
// Where files have no Unix owner and mode bits (Windows, Plan 9, wasm),
// CheckDir only checks that dir is a directory.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := checkDirOwner(dir, fi); err != nil {
		return err
	}
	return checkParents(dir)
}

// UnsafeDirError returns err, an error of CheckDir for the directory
// files are to be written in (Options.Dir), with pkg's prefix and what else
// the caller can do; chain says it as rotate does.
func UnsafeDirError(pkg string, err error) error {
	var shared *sharedDirError
	switch {
	case errors.As(err, &shared) && shared.sticky:
		return fmt.Errorf("%s: %w, or just name it as the directory: one that does not exist yet is created 0700; rotate.Options.AllowSharedDir accepts %s as it is", pkg, err, shared.dir)
	case errors.As(err, &shared):
		return fmt.Errorf("%s: %w; rotate.Options.AllowSharedDir accepts %s as it is", pkg, err, shared.dir)
	case errors.Is(err, ErrUnsafeParent):
		return fmt.Errorf("%s: %w; rotate.Options.AllowSharedDir accepts it as it is", pkg, err)
	case errors.Is(err, ErrUnsafeDir):
		return fmt.Errorf("%s: %w; or name a directory that does not exist yet (it is created 0700); rotate.Options.AllowSharedDir accepts it as it is", pkg, err)
	}
	return fmt.Errorf("%s: %w", pkg, err)
}

// IsSharedDir reports whether err is CheckDir's error for a directory that
// others use as it is (/tmp, or another sticky or system directory), whose
// fix is a subdirectory, not a chmod or chown.
func IsSharedDir(err error) bool {
	var shared *sharedDirError
	return errors.As(err, &shared)
}

// sharedDirError is CheckDir's error for a directory that others use as it
// is (/tmp, or another sticky or system directory): the fix is a
// subdirectory, not a chmod or chown.
type sharedDirError struct {
	dir    string
	sticky bool // others may create entries: the user can make the subdirectory itself
	err    error
}

func (e *sharedDirError) Error() string { return e.err.Error() }
func (e *sharedDirError) Unwrap() error { return e.err }

// FileKind names the type of a file of mode m for a message: "a
// directory", "a symbolic link", and so on (fs.FileMode's String shows a
// directory as "d---------" once its permission bits are masked off).
func FileKind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

// modeOctal returns m's permission, sticky, setgid and setuid bits as
// chmod(1) takes them.
func modeOctal(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		o |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		o |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		o |= 0o4000
	}
	return o
}
