package rotate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

const mmapSupported = true

// mappedFile appends by copying into a shared memory mapping of space
// preallocated with fallocate(2): the bytes land in the page cache, where
// write(2) would put them, without a system call per write. The file is
// grown a chunk at a time; its logical size is what was written, and Close
// truncates it to that. A crash leaves the preallocated rest as NUL bytes,
// which readers and the next Writer treat as unwritten (see FORMAT.md).
type mappedFile struct {
	f      *os.File
	chunk  int64
	short  func() // called when a chunk did not fit and less was preallocated (see preallocate); may be nil
	size   int64  // logical size: bytes written
	alloc  int64  // bytes preallocated
	win    []byte // the mapping of [winOff, winOff+len(win))
	winOff int64

	// Pages are faulted in ahead of the writes, by a goroutine: a first
	// write to a page costs a page fault (and the file system's
	// page_mkwrite), several microseconds here, which would otherwise fall
	// on every tenth record or so.
	faulted    int64 // pages up to here are faulted in, or being faulted in
	faulting   sync.WaitGroup
	noPopulate atomic.Bool // MADV_POPULATE_WRITE is not supported
	noFault    atomic.Bool // a store ahead faulted: stop faulting ahead
}

// faultAhead is how far ahead of the writes pages are faulted in.
const faultAhead = 256 << 10

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): fault pages in
// writable, as a write would, without writing.
const madvPopulateWrite = 23

func newMappedFile(f *os.File, chunk int64, short func()) File {
	return &mappedFile{f: f, chunk: chunk, short: short}
}

var pageSize = int64(os.Getpagesize())

// Write copies p to the end of the file.
func (m *mappedFile) Write(p []byte) (n int, err error) {
	end := m.size + int64(len(p))
	if m.win == nil || end > m.winOff+int64(len(m.win)) {
		if err := m.remap(end); err != nil {
			return 0, err
		}
	}
	// A fault on the mapping (the file was truncated under it, or a disk
	// error) must become an error, not kill the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("write to mapped file: %v", r)
		}
	}()
	forwardCopy(m.win[m.size-m.winOff:], p)
	m.size = end
	if !m.noFault.Load() && m.size+faultAhead/2 > m.faulted {
		m.faultIn()
	}
	return len(p), nil
}

// faultIn starts faulting in the next pages of the window after the
// previous round is done.
func (m *mappedFile) faultIn() {
	m.faulting.Wait()
	from := max(m.faulted, (m.size+pageSize-1)/pageSize*pageSize)
	to := min(from+faultAhead, m.winOff+int64(len(m.win)))
	if to <= from {
		return
	}
	m.faulted = to
	region := m.win[from-m.winOff : to-m.winOff]
	m.faulting.Go(func() {
		if !m.noPopulate.Load() {
			_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(unsafe.Pointer(&region[0])), uintptr(len(region)), madvPopulateWrite)
			if errno == syscall.EINVAL {
				m.noPopulate.Store(true)
			}
		}
		if !touch(region) {
			m.noFault.Store(true)
		}
	})
}

// touch stores into each page of region from this thread, and reports
// whether no store faulted. Under shadow paging (this project's 2-vCPU
// guest is one) a process's first user-space store to a page costs several
// microseconds even after MADV_POPULATE_WRITE, and ~30 ns for any of its
// threads once one thread has made it: made here, it is off the writer's
// path. (bench: DiagPageFirstStore.) The store is an atomic add of zero,
// which changes nothing: the page holds NUL bytes the writer has not reached
// yet, or bytes it wrote, which a locked read-modify-write of zero leaves as
// they are even if the writer stores to them at the same moment.
func touch(region []byte) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	for i := 0; i < len(region); i += int(pageSize) {
		atomic.AddUint32((*uint32)(unsafe.Pointer(&region[i])), 0)
	}
	return true
}

// forwardCopy copies src to dst with stores in ascending address order, so
// that a process killed in the middle leaves a prefix of src in the file
// and NUL bytes after it, never a hole: the built-in copy stores a
// misaligned head or tail after the body for some sizes. (Stores retire in
// program order; what survives a kill is what executed before it.)
func forwardCopy(dst, src []byte) {
	dst = dst[:len(src)]
	i := 0
	for ; i+8 <= len(src); i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(src[i:]))
	}
	for ; i < len(src); i++ {
		dst[i] = src[i]
	}
}

// remap makes the window cover [size, end), preallocating as needed.
func (m *mappedFile) remap(end int64) error {
	if need := end - m.alloc; need > 0 {
		grow, err := preallocate(m.f, m.alloc, m.chunk, need, m.short)
		if err != nil {
			return err
		}
		m.alloc += grow
	}
	if err := m.unmap(); err != nil {
		return err
	}
	off := m.size / pageSize * pageSize
	length := m.alloc - off
	win, err := syscall.Mmap(int(m.f.Fd()), off, int(length), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	m.win, m.winOff = win, off
	m.faulted = max(m.faulted, off)
	return nil
}

// preallocate allocates space at off for a write that needs need more
// bytes: a chunk, or need rounded up to a page if that is more. When the
// file system has no room for the chunk (ENOSPC, or EDQUOT: the user's
// quota), it allocates only need, page-rounded, and calls short if not nil:
// a nearly full disk still takes the records that fit, rather than failing
// every write while megabytes remain free. Only if that fails too does the
// write fail, with an error that wraps the file system's. It returns the
// bytes allocated.
func preallocate(f *os.File, off, chunk, need int64, short func()) (int64, error) {
	need = (need + pageSize - 1) / pageSize * pageSize
	grow := max(chunk, need)
	err := fallocate(f, off, grow)
	if err != nil && grow > need && (errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		if short != nil {
			short()
		}
		grow = need
		err = fallocate(f, off, grow)
	}
	if err != nil {
		return 0, err
	}
	return grow, nil
}

// fallocateSys is fallocate(2); a variable for the tests.
var fallocateSys = syscall.Fallocate

func fallocate(f *os.File, off, n int64) error {
	for {
		err := fallocateSys(int(f.Fd()), 0, off, n)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("fallocate %d bytes: %w", n, err)
		}
		return nil
	}
}

func (m *mappedFile) unmap() error {
	m.faulting.Wait()
	if m.win == nil {
		return nil
	}
	err := syscall.Munmap(m.win)
	m.win = nil
	return err
}

// Sync flushes the written bytes (and a grown size) to stable storage.
// fdatasync suffices: the mapped pages are the file's page cache, and the
// size changes only when a chunk is preallocated.
func (m *mappedFile) Sync() error {
	for {
		err := syscall.Fdatasync(int(m.f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// Truncate undoes writes after size, by zeroing them: the space stays
// preallocated and mapped.
func (m *mappedFile) Truncate(size int64) (err error) {
	if size > m.size {
		return errors.New("truncate beyond the written size")
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("zero mapped file: %v", r)
		}
	}()
	if size < m.winOff {
		// Before the window: rare (a failed batch larger than a chunk).
		if _, err := m.f.WriteAt(make([]byte, m.winOff-size), size); err != nil {
			return err
		}
		clear(m.win[:m.size-m.winOff])
		m.size = size
		return m.unmap() // the next Write maps a window that covers size
	} else {
		clear(m.win[size-m.winOff : m.size-m.winOff])
	}
	m.size = size
	return nil
}

// Close unmaps the file, cuts the unwritten preallocated rest and closes it.
func (m *mappedFile) Close() error {
	err := m.unmap()
	// Only ever cut: a file cut shorter under the mapping stays so.
	if fi, serr := m.f.Stat(); serr != nil || fi.Size() > m.size {
		if terr := m.f.Truncate(m.size); err == nil {
			err = terr
		}
	}
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}
