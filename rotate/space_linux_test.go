package rotate

import (
	"os"
	"path/filepath"
	"strconv"
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
