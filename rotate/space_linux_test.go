package rotate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of size bytes (mode 0700) on a new directory
// and returns it. It needs root (CAP_SYS_ADMIN): without it the test is
// skipped, except under CI=true, where the tests run as root and a skip
// would hide a broken test.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0700,size="+strconv.FormatInt(size, 10)); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v (under CI=true the tests run as root)", err)
		}
		t.Skipf("mount tmpfs: %v (needs root)", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill creates a file of n bytes at path, with fallocate(2): quick, and
// counted as used like written data.
func fill(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
		t.Fatal(err)
	}
}

// On a real small file system (a 64 MiB tmpfs), with statfs(2) itself:
// filling it below the threshold fires once, further checks while low do
// not, and freeing the space and filling it again fires again. The
// Writer's own preallocated chunks count like any other file.
func TestLowSpaceTmpfs(t *testing.T) {
	if !spaceSupported {
		t.Skip("no free-space checks on this platform")
	}
	const size = 64 << 20
	mnt := mountTmpfs(t, size)
	var calls atomic.Int64
	fs := &fakeSpace{} // only to count, for checkNow
	useSpace(t, func(dir string) (uint64, uint64, error) {
		calls.Add(1)
		fs.calls.Add(1)
		return diskSpace(dir)
	}, 0)
	var got collected[Space]
	w := open(t, Options{Dir: filepath.Join(mnt, "audit"), LowSpace: 16 << 20, OnLowSpace: got.add,
		Framer: &logFramer{}, Preallocate: 1 << 20})
	waitFor(t, "the first check", func() bool { return calls.Load() > 0 })
	write(t, w, "one\n", "two\n")
	if c := got.get(); len(c) != 0 {
		t.Fatalf("fired on an empty 64 MiB file system: %+v", c)
	}

	filler := filepath.Join(mnt, "filler")
	fill(t, filler, 52<<20) // 12 MiB or less left
	checkNow(t, w, fs)
	c := got.get()
	if len(c) != 1 || c[0].Free >= 16<<20 || c[0].Total != size || c[0].Threshold != 16<<20 {
		t.Fatalf("OnLowSpace calls = %+v, want one with less than 16 MiB of %d free", c, size)
	}
	checkNow(t, w, fs)
	write(t, w, "three\n")
	checkNow(t, w, fs)
	if c := got.get(); len(c) != 1 {
		t.Fatalf("fired again while low: %+v", c)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	checkNow(t, w, fs)
	fill(t, filler, 56<<20)
	checkNow(t, w, fs)
	if c := got.get(); len(c) != 2 || c[1].Free >= c[0].Free {
		t.Fatalf("OnLowSpace calls = %+v, want a second one with less free space", c)
	}
	closeW(t, w)
}

// On a small file system with less free space than a preallocated chunk
// (a 6 MiB tmpfs with 2 MiB free, Preallocate 4 MiB), a Writer still
// writes the records that fit: a chunk that does not fit is preallocated a
// page at a time instead. Once not even that fits, the write fails with an
// error that wraps ENOSPC and leaves nothing partial; the free-space check
// has warned by then (the threshold is 1.5 MiB here); and once space is
// freed the Writer writes on. Rotation by size and Close's cut hold.
func TestPreallocateSmallTmpfs(t *testing.T) {
	for _, tt := range []struct {
		policy   Policy
		maxBytes int64
	}{
		{SyncNone, 0},           // mappedFile
		{SyncAlways, 0},         // preallocFile
		{SyncNone, 256 << 10},   // rotating by size
		{SyncAlways, 256 << 10}, // rotating by size
	} {
		t.Run(fmt.Sprintf("%v/max=%d", tt.policy, tt.maxBytes), func(t *testing.T) {
			const size = 6 << 20
			mnt := mountTmpfs(t, size)
			filler := filepath.Join(mnt, "filler")
			fill(t, filler, 4<<20)
			useSpace(t, diskSpace, 0)
			var low collected[Space]
			dir := filepath.Join(mnt, "audit")
			w := open(t, Options{Dir: dir, Sync: tt.policy, MaxBytes: tt.maxBytes, Preallocate: 4 << 20, OnLowSpace: low.add})

			rec := strings.Repeat("x", 1023) + "\n"
			var n int
			var err error
			for ; n < 4<<10; n++ {
				if err = w.WriteRecord([]byte(rec), nil); err != nil {
					break
				}
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("after %d records: %v, want an error wrapping ENOSPC", n, err)
			}
			if n < 1<<10 {
				t.Fatalf("only %d records of 1 KiB fit in 2 MiB", n)
			}
			waitFor(t, "OnLowSpace", func() bool { return len(low.get()) > 0 })
			if s := low.get()[0]; s.Threshold != DefaultLowSpace(size) || s.Free >= s.Threshold {
				t.Errorf("OnLowSpace(%+v), want free below the default threshold %d", s, DefaultLowSpace(size))
			}

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			write(t, w, "after\n")
			closeW(t, w)
			var all strings.Builder
			for _, name := range ls(t, dir) {
				data, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if tt.maxBytes > 0 && int64(len(data)) > tt.maxBytes {
					t.Errorf("%s holds %d bytes, more than MaxBytes", name, len(data))
				}
				all.Write(data)
			}
			if want := strings.Repeat(rec, n) + "after\n"; all.String() != want {
				t.Errorf("files hold %d bytes (%d NUL), want %d records and \"after\" (%d bytes)",
					all.Len(), strings.Count(all.String(), "\x00"), n, len(want))
			}
		})
	}
}
