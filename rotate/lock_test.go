package rotate

import (
	"os"
	"path/filepath"
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
