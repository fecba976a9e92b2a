// Package faultfile makes a writer's fsync fail on demand, for tests of
// what readers see when a write is rolled back: rotate.Options.OpenFile =
// fs.Open gives files whose next Sync, once armed, fails with EIO, so that
// under rotate.SyncAlways the writer truncates the batch away and gives
// its seqs to the next records — or, with Abandon, fails to truncate and
// gives the file up (FORMAT.md §5).
package faultfile

import (
	"os"
	"sync/atomic"
	"syscall"

	"github.com/slogaudit/slogaudit/rotate"
)

// FS opens the files. The zero value fails at once; New's FS first closes
// Entered (the batch is in the file, not committed) and waits for Release.
type FS struct {
	// Abandon makes the truncation after the failed Sync fail too.
	Abandon atomic.Bool
	// Entered and Release, if not nil: see New.
	Entered, Release chan struct{}

	armed     atomic.Bool
	failTrunc atomic.Bool
}

// New returns an FS whose failing Sync closes Entered and waits for
// Release before it fails.
func New() *FS {
	return &FS{Entered: make(chan struct{}), Release: make(chan struct{})}
}

// Arm makes the next Sync of any of fs's files fail.
func (fs *FS) Arm() { fs.armed.Store(true) }

// Open is rotate.Options.OpenFile.
func (fs *FS) Open(name string, flag int, perm os.FileMode) (rotate.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return file{f, fs}, nil
}

type file struct {
	*os.File
	fs *FS
}

func (f file) Sync() error {
	if !f.fs.armed.CompareAndSwap(true, false) {
		return f.File.Sync()
	}
	if f.fs.Entered != nil {
		close(f.fs.Entered)
		<-f.fs.Release
	}
	f.fs.failTrunc.Store(f.fs.Abandon.Load())
	return syscall.EIO
}

func (f file) Truncate(size int64) error {
	if f.fs.failTrunc.CompareAndSwap(true, false) {
		return syscall.EIO
	}
	return f.File.Truncate(size)
}
