package rotate

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The Writer holds a lock on the file it writes for as long as it writes
// it, also with an OpenFile hook whose files have no descriptor: readers
// tell a live file from one a crashed Writer left by it (FileLocked).
func TestFileLockedWhileWritten(t *testing.T) {
	if !lockSupported {
		if _, ok := FileLocked(os.Args[0]); ok {
			t.Fatal("FileLocked says ok where locks are not supported")
		}
		t.Skip("no file locks on this platform")
	}
	for _, hook := range []bool{false, true} {
		dir := t.TempDir()
		opts := Options{Dir: dir, Framer: &logFramer{}}
		if hook {
			opts.OpenFile = (&faultFS{}).OpenFile
		}
		w := open(t, opts)
		write(t, w, "a", "b")
		first := w.Path()
		if locked, ok := FileLocked(first); !locked || !ok {
			t.Fatalf("hook %v: the file being written: FileLocked = %v, %v", hook, locked, ok)
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		if locked, ok := FileLocked(first); locked || !ok {
			t.Fatalf("hook %v: a rotated file: FileLocked = %v, %v", hook, locked, ok)
		}
		second := w.Path()
		if locked, _ := FileLocked(second); !locked {
			t.Fatalf("hook %v: the new file is not locked", hook)
		}
		closeW(t, w)
		if locked, ok := FileLocked(second); locked || !ok {
			t.Fatalf("hook %v: after Close: FileLocked = %v, %v", hook, locked, ok)
		}
	}
	if _, ok := FileLocked(filepath.Join(t.TempDir(), "missing")); ok {
		t.Fatal("FileLocked of a missing file says ok")
	}
}

// abandonFirstFile has a Writer abandon its first file: a write fails and
// the truncate back fails too. It returns the Writer and that file.
func abandonFirstFile(t *testing.T) (*Writer, string) {
	t.Helper()
	dir := t.TempDir()
	fs := &faultFS{}
	w := open(t, Options{Dir: dir, Framer: &logFramer{t: t}, OpenFile: fs.OpenFile, Now: newClock(t0).Now})
	f1 := filepath.Join(dir, fileName(t0))
	write(t, w, "a")
	fs.failWrite(0, 3, syscall.ENOSPC)
	fs.truncErr = syscall.EIO
	if err := w.WriteRecord([]byte("b"), nil); err == nil {
		t.Fatal("WriteRecord succeeded")
	}
	return w, f1
}

// A file abandoned because it could not be truncated keeps its lock until
// the next file exists: without a close record, only the newer file tells
// readers that its tail is not part of the chain.
func TestAbandonedFileLockedUntilNextFile(t *testing.T) {
	if !lockSupported {
		t.Skip("no file locks on this platform")
	}
	w, f1 := abandonFirstFile(t)
	if locked, _ := FileLocked(f1); !locked {
		t.Fatal("the abandoned file was unlocked before a newer file exists")
	}
	write(t, w, "c") // creates the next file
	if locked, _ := FileLocked(f1); locked {
		t.Error("the abandoned file is still locked once the next file exists")
	}
	f2 := w.Path()
	if locked, _ := FileLocked(f2); !locked {
		t.Error("the next file is not locked")
	}
	closeW(t, w)
	if locked, _ := FileLocked(f2); locked {
		t.Error("locked after Close")
	}
}

// Close releases an abandoned file's lock when no newer file was created.
func TestAbandonedFileUnlockedByClose(t *testing.T) {
	if !lockSupported {
		t.Skip("no file locks on this platform")
	}
	w, f1 := abandonFirstFile(t)
	closeW(t, w)
	if locked, _ := FileLocked(f1); locked {
		t.Error("locked after Close")
	}
}
