package rotate

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// TestTouchLeavesContent: faulting pages in ahead with touch changes no
// byte of the file, even where the writer is storing at the same moment
// (a touch that falls behind the writer).
func TestTouchLeavesContent(t *testing.T) {
	const size = 1 << 20
	f, err := os.Create(filepath.Join(t.TempDir(), "touched"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := fallocate(f, 0, size); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)

	want := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(rng.Uint32()) | 1 // no NUL: a lost store would show
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !touch(m) {
				t.Error("touch faulted")
				return
			}
		}
	})
	// Records of uneven sizes, each stored in ascending order across the
	// words the touches add zero to.
	for off := 0; off < size; {
		n := min(1+rng.IntN(700), size-off)
		forwardCopy(m[off:], want[off:off+n])
		off += n
	}
	close(stop)
	wg.Wait()
	if !touch(m) {
		t.Fatal("touch faulted")
	}
	if i := firstDiff(m, want); i >= 0 {
		t.Fatalf("byte %d is %#x after the touches, written %#x", i, m[i], want[i])
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Fatalf("the file differs from what was written at byte %d", firstDiff(data, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestTouchFault: a store ahead into a page the file no longer backs
// faults; touch reports it instead of crashing the process.
func TestTouchFault(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "cut"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := fallocate(f, 0, 1<<16); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, 1<<16, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	if err := f.Truncate(4096); err != nil {
		t.Fatal(err)
	}
	if touch(m) {
		t.Fatal("touch past the end of the file reported no fault")
	}
}
