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

// CheckDir returns an error wrapping ErrUnsafeDir unless dir is a directory
// that only the process's (effective) user may change: owned by that user
// and writable neither by its group nor by others, sticky (as /tmp) or
// not. A group may read it (mode 0750), and the user's private group (the
// effective group, named as the user: the Linux convention under which a
// umask of 002 makes directories 0775) may write it. The error says what to do. Errors
// of os.Stat, such as one wrapping fs.ErrNotExist, are returned as they
// are. A symbolic link to a directory is followed: the directory is
// checked, not the link (nor the directories above it).
//
// Whoever may create entries in a directory can put a symbolic link, or a
// FIFO, at a name where a writer is about to create or append to a file,
// and remove or replace the files it wrote. A Writer never follows a
// symbolic link in its directory; New refuses an unsafe one unless
// Options.AllowSharedDir is set.
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
	return checkDirOwner(dir, fi)
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
