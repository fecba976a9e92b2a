package rotate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// fiemapExtent and fiemap mirror struct fiemap_extent and struct fiemap
// (linux/fiemap.h), with room for 32 extents.
type fiemapExtent struct {
	logical, physical, length uint64
	_                         [2]uint64
	flags                     uint32
	_                         [3]uint32
}

type fiemap struct {
	start, length                   uint64
	flags, mapped, count, _reserved uint32
	extents                         [32]fiemapExtent
}

const (
	fsIocFiemap         = 0xC020660B // _IOWR('f', 11, struct fiemap)
	fiemapFlagSync      = 0x1
	fiemapExtentDelloc  = 0x4
	fiemapExtentUnwrite = 0x800
)

// extents returns the extents of path's first n bytes, or skips the test
// where FIEMAP is not supported.
func extents(t *testing.T, path string, n int64) []fiemapExtent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fm := fiemap{length: uint64(n), flags: fiemapFlagSync, count: 32}
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&fm))); errno != 0 {
		if errors.Is(errno, syscall.EOPNOTSUPP) || errors.Is(errno, syscall.ENOTTY) {
			t.Skipf("FIEMAP: %v", errno)
		}
		t.Fatalf("FIEMAP: %v", errno)
	}
	return fm.extents[:fm.mapped]
}

// Under SyncAlways a preallocated chunk is zeroed and synced before
// records are written into it: its blocks are allocated and written (no
// unwritten or delayed-allocation extent), so that a record's fdatasync
// has only data to flush.
func TestPreallocatedAlwaysZeroed(t *testing.T) {
	const chunk = 1 << 16
	w := open(t, Options{Dir: t.TempDir(), Sync: SyncAlways, Preallocate: chunk})
	write(t, w, "one\n")
	exts := extents(t, w.Path(), chunk)
	if len(exts) == 0 {
		t.Fatal("no extents in the preallocated chunk")
	}
	var covered uint64
	for _, e := range exts {
		if e.flags&(fiemapExtentUnwrite|fiemapExtentDelloc) != 0 {
			t.Errorf("extent at %d (%d bytes) has flags %#x: unwritten or not allocated", e.logical, e.length, e.flags)
		}
		covered += e.length
	}
	if covered < chunk {
		t.Errorf("extents cover %d bytes of the %d-byte chunk", covered, chunk)
	}
	closeW(t, w)
}

// Under SyncAlways a preallocated file is written with pwrite(2), not
// mapped: while it is open its preallocated rest reads as NUL bytes after
// the synced records, and Close cuts it.
func TestPreallocatedAlwaysTail(t *testing.T) {
	dir := t.TempDir()
	w := open(t, Options{Dir: dir, Sync: SyncAlways, Preallocate: 1 << 16})
	if _, ok := w.f.(*preallocFile); ok {
		t.Fatal("file created before the first record")
	}
	write(t, w, "one\n", "two\n")
	if _, ok := w.f.(*preallocFile); !ok {
		t.Fatalf("file is a %T, want *preallocFile", w.f)
	}
	path := w.Path()
	data, _ := os.ReadFile(path)
	if len(data) != 1<<16 || !bytes.HasPrefix(data, []byte("one\ntwo\n")) || len(bytes.Trim(data[8:], "\x00")) != 0 {
		t.Fatalf("open preallocated file: %d bytes, prefix %q", len(data), data[:min(len(data), 16)])
	}
	// A record larger than the chunk grows the file by as much as it needs.
	big := string(bytes.Repeat([]byte("b"), 1<<17)) + "\n"
	write(t, w, big, "three\n")
	closeW(t, w)
	data, _ = os.ReadFile(path)
	if string(data) != "one\ntwo\n"+big+"three\n" {
		t.Errorf("closed file: %d bytes, want %d without NUL bytes", len(data), 8+len(big)+6)
	}
}

// preallocFile.Truncate zeroes what it undoes, also across chunks, and the
// next write lands at the new logical end.
func TestPreallocTruncate(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "f"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := newPreallocFile(f, 4096, 0, nil)
	head := bytes.Repeat([]byte("h"), 5000)
	if _, err := p.Write(head); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(bytes.Repeat([]byte("x"), 3*4096)); err != nil {
		t.Fatal(err)
	}
	if err := p.Truncate(100); err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(f.Name())
	if len(data) < 5000+3*4096 || !bytes.Equal(data[:100], head[:100]) || len(bytes.Trim(data[100:], "\x00")) != 0 {
		t.Fatalf("after Truncate(100): %d bytes, not the head followed by NUL bytes", len(data))
	}
	if err := p.Truncate(200); err == nil {
		t.Error("Truncate beyond the written size succeeded")
	}
	if _, err := p.Write([]byte("next\n")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(f.Name())
	if string(data) != string(head[:100])+"next\n" {
		t.Errorf("file holds %q", data)
	}
}

// Under SyncAlways a file rotated by size is zeroed no further than
// MaxBytes (rounded up to a page), however large Preallocate is.
func TestPreallocatedAlwaysMaxBytes(t *testing.T) {
	const maxBytes = 10000
	w := open(t, Options{Dir: t.TempDir(), Sync: SyncAlways, Preallocate: 1 << 20, MaxBytes: maxBytes})
	write(t, w, "one\n")
	fi, err := os.Stat(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	if want := (maxBytes + pageSize - 1) / pageSize * pageSize; fi.Size() != want {
		t.Errorf("open file holds %d bytes, want MaxBytes rounded up to a page, %d", fi.Size(), want)
	}
	closeW(t, w)
}

// When the file system refuses a whole chunk (ENOSPC, or EDQUOT for a
// quota), a preallocated file, mapped or not, allocates only what the
// write needs, page-rounded, and says so; when it refuses that too, the
// write fails with an error that wraps the file system's and writes
// nothing.
func TestPreallocateShort(t *testing.T) {
	const chunk = 1 << 16
	for _, tt := range []struct {
		name string
		new  func(*os.File, func()) File
	}{
		{"mapped", func(f *os.File, short func()) File { return newMappedFile(f, chunk, short) }},
		{"prealloc", func(f *os.File, short func()) File { return newPreallocFile(f, chunk, 0, short) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var room int64 = 3 * pageSize // what the "file system" has left
			var asked []int64
			old := fallocateSys
			fallocateSys = func(fd int, mode uint32, off, n int64) error {
				asked = append(asked, n)
				if n > room {
					return syscall.EDQUOT
				}
				room -= n
				return old(fd, mode, off, n)
			}
			t.Cleanup(func() { fallocateSys = old })
			f, err := os.OpenFile(filepath.Join(t.TempDir(), "f"), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			shorts := 0
			p := tt.new(f, func() { shorts++ })
			head := bytes.Repeat([]byte("h"), int(pageSize)+100)
			if _, err := p.Write(head); err != nil {
				t.Fatalf("write of %d bytes with %d free: %v", len(head), 3*pageSize, err)
			}
			if want := []int64{chunk, 2 * pageSize}; !slices.Equal(asked, want) || shorts != 1 {
				t.Fatalf("fallocate asked for %v, short called %d times; want %v and once", asked, shorts, want)
			}
			if _, err := p.Write(bytes.Repeat([]byte("x"), int(pageSize))); err != nil {
				t.Fatalf("write into the last free page: %v", err)
			}
			n, err := p.Write(bytes.Repeat([]byte("y"), int(pageSize)))
			if n != 0 || !errors.Is(err, syscall.EDQUOT) {
				t.Fatalf("write with no room left: %d, %v; want 0 and an error wrapping EDQUOT", n, err)
			}
			// What Writer.fail does after a failed write: nothing to undo.
			if err := p.Truncate(int64(len(head)) + pageSize); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(f.Name())
			if want := string(head) + strings.Repeat("x", int(pageSize)); string(data) != want {
				t.Errorf("file holds %d bytes, want %d: the two writes that fit", len(data), len(want))
			}
		})
	}
}
