package rotate

import (
	"errors"
	"os"
	"syscall"
)

// preallocFile is what Preallocate gives under SyncAlways, where a
// mappedFile would take a page fault per batch (every fsync write-protects
// the mapped pages again). It grows the file a chunk at a time by writing
// zeros and fdatasyncing them, and appends with pwrite(2) over those zeros,
// syncing with fdatasync(2).
//
// An append is then an overwrite of blocks that are allocated, written and
// within the file's size: fdatasync has no size, allocation or unwritten
// extent to journal, only the data to write. For a batch of about 30
// records (14 KiB) that measured 0.64-0.72× the fsync after write(2) on
// ext4 here, and a fallocate(2)d chunk (unwritten extents, which each
// batch converts) in between. Zeroing costs a write of the chunk and one
// fdatasync per chunk, 5-27 ms per 4 MiB here, once per ~9,000 records.
// It is done by the leader, in line: zeroing ahead in the background would
// not take it off the writers' path, because fdatasync flushes the whole
// file, so the next batch's sync would wait for the zeros instead.
//
// As with mappedFile, the logical size is what was written, Close
// truncates the file to it, and a crash leaves the rest as NUL bytes,
// which readers treat as unwritten (see FORMAT.md).
type preallocFile struct {
	f     *os.File
	chunk int64
	short func() // see mappedFile.short
	size  int64  // logical size: bytes written
	alloc int64  // bytes zeroed and synced
}

// newPreallocFile returns f as a preallocFile growing by chunk bytes at a
// time, or by maxBytes (rounded up to a page) if positive and smaller:
// zeroing costs a write of the chunk, and a file rotated by size needs no
// more (the record or Close frame that takes it past maxBytes grows it
// again). short is called when a chunk does not fit (see preallocate).
func newPreallocFile(f *os.File, chunk, maxBytes int64, short func()) File {
	if maxBytes > 0 {
		chunk = min(chunk, (maxBytes+pageSize-1)/pageSize*pageSize)
	}
	return &preallocFile{f: f, chunk: chunk, short: short}
}

// zeros is the source of every zeroing write; never written to.
var zeros [64 << 10]byte

// writeZeros writes n zero bytes at off.
func writeZeros(f *os.File, off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}

// Write writes b at the logical end of the file, zeroing a new chunk first
// as needed. On a short write the bytes that were written count (Truncate
// undoes them).
func (p *preallocFile) Write(b []byte) (int, error) {
	end := p.size + int64(len(b))
	if need := end - p.alloc; need > 0 {
		// Reserve the space first, so that a full disk fails here and
		// the chunk is allocated in one piece (or, on a nearly full
		// disk, only what b needs).
		grow, err := preallocate(p.f, p.alloc, p.chunk, need, p.short)
		if err != nil {
			return 0, err
		}
		if err := writeZeros(p.f, p.alloc, grow); err != nil {
			return 0, err
		}
		if err := p.Sync(); err != nil {
			return 0, err
		}
		p.alloc += grow
	}
	n, err := p.f.WriteAt(b, p.size)
	p.size += int64(n)
	return n, err
}

// Sync flushes the written bytes to stable storage. fdatasync suffices:
// the file's size and blocks were synced when its chunk was zeroed.
func (p *preallocFile) Sync() error {
	for {
		err := syscall.Fdatasync(int(p.f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// Truncate undoes writes after size by zeroing them; the space stays
// allocated.
func (p *preallocFile) Truncate(size int64) error {
	if size > p.size {
		return errors.New("truncate beyond the written size")
	}
	if err := writeZeros(p.f, size, p.size-size); err != nil {
		return err
	}
	p.size = size
	return nil
}

// Close cuts the unwritten rest and closes the file.
func (p *preallocFile) Close() error {
	var err error
	if fi, serr := p.f.Stat(); serr != nil || fi.Size() > p.size {
		err = p.f.Truncate(p.size)
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	return err
}
