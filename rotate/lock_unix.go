//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package rotate

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockSupported says whether the Writer locks the file it writes (see
// lockFile).
const lockSupported = true

// lockFile takes an exclusive flock(2) on the file at path, through its own
// descriptor, and returns that descriptor: closing it releases the lock. A
// reader's shared lock (see FileLocked) only briefly delays it. It does
// not follow a symbolic link (nor wait for a FIFO) put at path since the
// file was created.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow|oNonblock, 0)
	if err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || i == 50 {
			f.Close()
			return nil, err
		}
		time.Sleep(time.Millisecond) // a reader's shared lock, held for a moment
	}
}

// FileLocked reports whether a Writer (of this or another process) holds
// the file at path open for writing: it has not finished it yet. It tries
// a shared lock on its own descriptor, which conflicts with the Writer's
// exclusive one in the same process too, and releases it at once. ok is
// false where file locks are not supported (locked is then meaningless) or
// when the file cannot be opened.
//
// A file that is neither locked, nor compressed, nor ended by a close
// record, nor followed by a newer file was left by a Writer that crashed:
// it will not grow again. (Or by a Writer that does not lock: one of a
// version before the lock, or whose OpenFile puts files elsewhere than
// their path.) The Writer takes its lock before it writes the file's first
// byte, so a file may be unlocked for a moment while its Writer is live
// before it holds a complete line: a reader must have read a complete line
// of the file before it asks, and read the file again after the answer.
func FileLocked(path string) (locked, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return false, false
	}
	defer f.Close()
	err = flock(f, syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, true
	}
	if err != nil {
		return false, false
	}
	flock(f, syscall.LOCK_UN)
	return false, true
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
