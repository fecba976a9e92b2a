package bench

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// What the machine charges for handing bytes to the page cache, the floor
// under every write-through file contender (see PROFILE.md, "The floor"):
//
//	DiagPageFirstStore  the first store to each page of a fresh shared
//	                    mapping of a preallocated file, per 4 KiB page:
//	                    what rotate's mapped appends pay once per page
//	DiagPageAgainStore  a store to a page of that mapping already written
//	DiagWrite4K         one write(2) of 4 KiB at the end of a file: what a
//	                    write per record pays per record
//
// The mapping is remapped (timer stopped) every pageRegion bytes.
const pageRegion = 64 << 20

func mappedRegion(b *testing.B) (f *os.File, m []byte) {
	b.Helper()
	f, err := os.Create(filepath.Join(b.TempDir(), "pages"))
	if err != nil {
		b.Fatal(err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, pageRegion); err != nil {
		b.Fatal(err)
	}
	m, err = syscall.Mmap(int(f.Fd()), 0, pageRegion, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	return f, m
}

func BenchmarkDiagPageFirstStore(b *testing.B) {
	f, m := mappedRegion(b)
	off := 0
	defer reportCPU(b)()
	for b.Loop() {
		if off == len(m) {
			b.StopTimer()
			syscall.Munmap(m)
			f.Close()
			f, m = mappedRegion(b)
			off = 0
			b.StartTimer()
		}
		m[off] = 1
		off += 4096
	}
	syscall.Munmap(m)
	f.Close()
}

func BenchmarkDiagPageAgainStore(b *testing.B) {
	f, m := mappedRegion(b)
	defer f.Close()
	defer syscall.Munmap(m)
	for off := 0; off < len(m); off += 4096 {
		m[off] = 1
	}
	off := 0
	defer reportCPU(b)()
	for b.Loop() {
		if off == len(m) {
			off = 0
		}
		m[off+1] = 2
		off += 4096
	}
}

func BenchmarkDiagWrite4K(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "writes"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	written := 0
	defer reportCPU(b)()
	for b.Loop() {
		if written == pageRegion {
			b.StopTimer()
			f.Truncate(0)
			f.Seek(0, 0)
			written = 0
			b.StartTimer()
		}
		if _, err := f.Write(page); err != nil {
			b.Fatal(err)
		}
		written += len(page)
	}
}
