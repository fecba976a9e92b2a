package otelbridge

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// fileReader reads lines of the chain back from the audit files by seq. It
// keeps its place, so reading consecutive seqs is sequential I/O; a seq
// elsewhere is found by the seq of each file's first line (its open record),
// which does not change when the file is compressed and is cached by name.
// It is used by the exporter goroutine only.
type fileReader struct {
	dir, prefix, ext string
	first            map[string]uint64 // base name -> seq of its first line

	base    string // base name of the open file; "" when none is open
	path    string
	f       *os.File
	zr      *gzip.Reader
	br      *bufio.Reader
	off     int64  // plain file: offset of the next unread line
	lineOff int64  // offset of the line read returned last
	nextSeq uint64 // seq of the line after the last one read; 0 unknown
	line    []byte
	// stale says what br holds past off may have been read before the
	// caller's view of what is committed (see expire).
	stale bool
	// final holds the base names of files known to be finished (see
	// finished), with the seq below which their lines are the chain's.
	final map[string]uint64
	// live says why the file finished last found not finished may still
	// grow.
	live string
	// liveTo is, for the open file while it is not known finished, the
	// highest hi (the seq up to which Audit had seen records) at which it
	// was found to have no newer file (see checkLive): its lines up to
	// liveTo are the chain's.
	liveTo uint64
}

func newFileReader(dir, prefix, ext string) *fileReader {
	return &fileReader{dir: dir, prefix: prefix, ext: ext, first: make(map[string]uint64), final: make(map[string]uint64)}
}

// read returns the first line whose seq is at least want: normally want
// itself, a later one if the files no longer hold want. ok is false when
// the files do not (yet) hold such a line. The line aliases a buffer that
// the next call reuses.
func (r *fileReader) read(want uint64) (l chain.Line, ok bool, err error) {
	if r.stale {
		r.stale = false
		if r.f != nil {
			if err := r.rewind(); err != nil {
				return l, false, fmt.Errorf("otelbridge: read %s: %w", r.path, err)
			}
		}
	}
	if r.f == nil || r.nextSeq != want {
		if err := r.locate(want); err != nil {
			return l, false, err
		}
		if r.f == nil {
			return l, false, nil
		}
	}
	rechecked := false // the file was read again after its end was seen
	next := ""         // the file after it, as listed before that
	for {
		start := r.off
		raw, st, err := r.readRaw()
		if err != nil {
			if r.zr != nil {
				return l, false, &unreadableError{path: r.path, err: err}
			}
			return l, false, fmt.Errorf("otelbridge: read %s: %w", r.path, err)
		}
		if st == lineComplete {
			rechecked = false
			l, err := chain.ParseLine(raw)
			if err != nil {
				// Not a sealed line (tampering; auditctl verify says more).
				// Its seq is unknown; the next line's seq tells what is missing.
				continue
			}
			r.nextSeq = l.Seq + 1
			if l.Seq < want {
				continue
			}
			r.lineOff = start
			return l, true, nil
		}
		// End of the file's content, or an incomplete last line: a line
		// being written, or, if a later file exists, a torn tail left by a
		// crash, which is never part of the chain.
		// What the buffer holds may predate the last lines written (a
		// preallocated file reads as NUL bytes where they went): read
		// once more from the end of the last complete line. If a newer
		// file existed before that reading, this one was finished, and
		// what it still lacks is a torn tail.
		if !rechecked {
			if next, err = r.successor(); err != nil {
				return l, false, err
			}
			if err := r.rewind(); err != nil {
				return l, false, err
			}
			rechecked = true
			continue
		}
		if err := r.rewind(); err != nil {
			return l, false, err
		}
		if next == "" {
			return l, false, nil
		}
		rechecked = false
		if err := r.open(next); err != nil {
			return l, false, err
		}
	}
}

type rawStatus int

const (
	lineComplete rawStatus = iota
	atEOF                  // no more bytes
	partial                // bytes without a newline, then EOF
)

// readRaw returns the next line without its newline.
func (r *fileReader) readRaw() ([]byte, rawStatus, error) {
	r.line = r.line[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if bytes.IndexByte(chunk, 0) >= 0 {
			// Preallocated space not written yet (or written after the
			// buffer read it): the end for now; rewind re-reads it.
			return nil, partial, nil
		}
		r.line = append(r.line, chunk...)
		switch {
		case err == nil:
			r.off += int64(len(r.line))
			return r.line[:len(r.line)-1], lineComplete, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF) && r.zr != nil:
			if len(r.line) == 0 {
				return nil, atEOF, nil
			}
			return nil, partial, nil
		default:
			return nil, 0, err
		}
	}
}

// expire makes the next read fill the buffer afresh from the position (a
// plain file's; compressed files are complete). The exporter calls it at
// the start of each build, after it read hi: a line is committed if its
// seq is at most hi, but only as read after hi was. A line the buffer
// took in while its write waited for its fsync may since have been
// truncated away and its seq reused by the next record, in the same file
// at the same offset; once Audit has seen that record, hi passes the
// stale line in the buffer. Reading afresh costs a seek and at most one
// buffer (64 KiB) read again per build, and nothing for a build that does
// not read the files.
func (r *fileReader) expire() { r.stale = true }

// rewind makes the next read start again at the first unread line: a plain
// file may grow (a line in the middle of being written completes).
func (r *fileReader) rewind() error {
	if r.zr != nil {
		return nil // compressed files are complete
	}
	if _, err := r.f.Seek(r.off, io.SeekStart); err != nil {
		return err
	}
	r.br.Reset(r.f)
	return nil
}

// unread makes the line read returned last (seq seq) the next one read
// again. The writer may yet truncate it away (see exporter.build).
func (r *fileReader) unread(seq uint64) error {
	if r.f == nil {
		return nil
	}
	if r.zr != nil {
		r.close() // not expected (compressed files are finished): locate again
		return nil
	}
	r.off, r.nextSeq = r.lineOff, seq
	return r.rewind()
}

// knownFinished is finished without reading: ok is false if it needs to
// read.
func (r *fileReader) knownFinished() (bound uint64, ok bool) {
	if r.zr != nil {
		return math.MaxUint64, true
	}
	bound, ok = r.final[r.base]
	return bound, ok
}

// checkLive records hi as liveTo if the open file has no newer file now.
// The caller read hi (the highest seq Audit has seen) before calling it.
//
// A line of a file that is not finished is committed if its seq is at most
// hi, unless the file is one the writer gave up (see finished): its lines
// from the newer file's first seq on were never committed, and their seqs
// are committed again in the newer file, so hi passes them. That needs a
// newer file, made before the record hi was committed (seqs are handed
// out in order, so the record hi came after the given-up lines): a file
// that has no newer file once Audit has seen hi holds no given-up line up
// to hi.
func (r *fileReader) checkLive(hi uint64) error {
	if r.f == nil || r.zr != nil || hi <= r.liveTo {
		return nil
	}
	next, err := r.successor()
	if err != nil {
		return err
	}
	if next == "" {
		r.liveTo = hi
	}
	return nil
}

// finished returns the seq below which every complete line of the open
// file is final, 0 if the file may still grow. The writer opens each file
// with O_EXCL and never writes to an older one, so a file is finished when
// it is compressed, when it ends with a close record (the writer's last
// line), when a newer file exists, or when no writer holds its lock (its
// writer crashed; see rotate.FileLocked); with a newer file, its lines
// from the newer file's first seq on are a tail the writer gave up on (a
// write it could not truncate away after its fsync failed: it then starts
// the next file at that seq, and keeps the lock of the abandoned file
// until then), never part of the chain. Call it only after a complete line
// of the file was read (see the lock test). It reads ahead in the open
// file from the position (call unread first to include the line read
// returned last, which is overwritten); the position is kept.
func (r *fileReader) finished() (uint64, error) {
	if r.f == nil {
		return 0, nil
	}
	if bound, ok := r.final[r.base]; ok {
		return bound, nil
	}
	bound := uint64(0)
	if r.zr != nil {
		bound = math.MaxUint64
	}
	hasNext := false
	if bound == 0 {
		next, err := r.successor()
		if err != nil {
			return 0, err
		}
		if hasNext = next != ""; hasNext {
			first, err := r.firstSeq(next)
			if ue := (*unreadableError)(nil); errors.As(err, &ue) {
				// A compressed successor that does not read: this file
				// is finished, its replaced tail (if any) unknown.
				first, err = math.MaxUint64, nil
			}
			if err != nil {
				return 0, err
			}
			bound = first // 0 while its first line is not complete: not yet known
		}
	}
	if bound == 0 {
		// Read ahead for a close record.
		off, nextSeq := r.off, r.nextSeq
		for bound == 0 {
			raw, st, err := r.readRaw()
			if err != nil {
				return 0, fmt.Errorf("otelbridge: read %s: %w", r.path, err)
			}
			if st != lineComplete {
				break
			}
			if l, err := chain.ParseLine(raw); err == nil && l.Kind == chain.RecClose {
				bound = math.MaxUint64
			}
		}
		r.off, r.nextSeq = off, nextSeq
		if err := r.rewind(); err != nil {
			return 0, err
		}
	}
	r.live = ""
	if bound == 0 {
		// No close record and no newer file: a file being written, or
		// one whose writer crashed. The writer holds a lock on the file
		// it writes (rotate.FileLocked), taken before its first byte: the
		// caller read a complete line of it, so if no one holds the lock
		// now, its writer is gone and every complete line is as final as
		// it will ever be (the position's lines are read again after
		// this, so a tail the writer truncated before it closed is not
		// returned). Where locks are not supported the file may still
		// grow.
		switch locked, ok := rotate.FileLocked(r.path); {
		case hasNext:
			// Its bound is the newer file's first seq, not known yet
			// (the writer releases the lock of a file it abandoned once
			// the newer one exists, before its first line).
			r.live = "the newer file's first line is not complete yet"
		case !ok:
			r.live = "its writer may still be writing it (file locks not available here)"
		case locked:
			r.live = "a writer (a handler not closed yet, in this process or another) is writing it"
		default:
			bound = math.MaxUint64
		}
	}
	if bound != 0 {
		if len(r.final) > 4096 {
			clear(r.final)
		}
		r.final[r.base] = bound
	}
	return bound, nil
}

// list returns the chain's files, oldest first; none if dir does not exist.
func (r *fileReader) list() ([]string, error) {
	files, err := rotate.List(r.dir, r.prefix, r.ext)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return files, err
}

// locate positions the reader at the file holding want: the newest file
// whose first line's seq is at most want (or the oldest file, if all start
// later). It keeps the open file and its position when that is the file and
// the position is not past want.
func (r *fileReader) locate(want uint64) error {
	files, err := r.list()
	if err != nil || len(files) == 0 {
		r.close()
		return err
	}
	pick := 0
	var damaged error // of the oldest unreadable file seen
	for i := len(files) - 1; i >= 0; i-- {
		seq, err := r.firstSeq(files[i])
		if ue := (*unreadableError)(nil); errors.As(err, &ue) {
			// Its first line is unknown: an older file may hold want
			// (reading on from it reaches the damage, see build).
			damaged = err
			if i == 0 {
				// None does: it is where want would be.
				r.close()
				return damaged
			}
			continue
		}
		if err != nil {
			return err
		}
		if seq != 0 && seq <= want {
			pick = i
			break
		}
	}
	if r.f != nil && chain.BaseName(files[pick]) == r.base && r.nextSeq != 0 && r.nextSeq <= want {
		return nil
	}
	return r.open(files[pick])
}

// oldestAfter reports whether the oldest file's first line comes after
// seq: the files hold no line up to seq.
func (r *fileReader) oldestAfter(seq uint64) bool {
	files, err := r.list()
	if err != nil || len(files) == 0 {
		return false
	}
	first, err := r.firstSeq(files[0])
	return err == nil && first > seq
}

// firstSeq returns the seq of the first line of the file at path, 0 if it
// has no complete line yet.
func (r *fileReader) firstSeq(path string) (uint64, error) {
	base := chain.BaseName(path)
	if seq, ok := r.first[base]; ok {
		return seq, nil
	}
	src, err := rotate.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // removed since the listing
	}
	gz := strings.HasSuffix(path, ".gz")
	if err != nil {
		if gz {
			return 0, &unreadableError{path: path, err: err} // a damaged header
		}
		return 0, err
	}
	defer src.Close()
	first, err := bufio.NewReaderSize(src, 4096).ReadSlice('\n')
	if err != nil {
		if gz && !errors.Is(err, bufio.ErrBufferFull) {
			// A compressed file is complete: its first line must read
			// (an ErrUnexpectedEOF is a truncated file too).
			return 0, &unreadableError{path: path, err: err}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, bufio.ErrBufferFull) {
			return 0, nil
		}
		return 0, err
	}
	l, err := chain.ParseLine(first[:len(first)-1])
	if err != nil {
		return 0, nil
	}
	r.first[base] = l.Seq
	if len(r.first) > 4096 { // names of long-gone files
		clear(r.first)
	}
	return l.Seq, nil
}

// successor returns the path of the file after the open one, "" if none.
func (r *fileReader) successor() (string, error) {
	return r.after(r.base)
}

// after returns the path of the file after the one with base name base,
// "" if none.
func (r *fileReader) after(base string) (string, error) {
	files, err := r.list()
	if err != nil {
		return "", err
	}
	for _, p := range files {
		if chain.BaseName(p) > base {
			return p, nil
		}
	}
	return "", nil
}

// unreadableError is the error of a compressed file that does not read to
// its end (a .gz damaged after it was written, at its start or further
// on): a complete file, so reading it again gives the same error. locate,
// firstSeq and read return it; build passes over the rest of the file.
type unreadableError struct {
	path string
	err  error
}

func (e *unreadableError) Error() string {
	return fmt.Sprintf("otelbridge: %s does not read to its end: %v", e.path, e.err)
}

func (e *unreadableError) Unwrap() error { return e.err }

// resumeAfter returns the seq of the first line of the file after the
// one at path, 0 if there is none or its first line is not known yet; the
// reader is closed, so that the next read locates afresh.
func (r *fileReader) resumeAfter(path string) (uint64, error) {
	r.close()
	for {
		next, err := r.after(chain.BaseName(path))
		if err != nil || next == "" {
			return 0, err
		}
		first, err := r.firstSeq(next)
		if ue := (*unreadableError)(nil); errors.As(err, &ue) {
			path = next // damaged at its start too: the one after it
			continue
		}
		return first, err
	}
}

// open opens path for reading from its start. A plain file that was
// compressed since the listing is opened as its .gz.
func (r *fileReader) open(path string) error {
	r.close()
	f, zr, err := openChainFile(path)
	if errors.Is(err, fs.ErrNotExist) && !strings.HasSuffix(path, ".gz") {
		path += ".gz"
		f, zr, err = openChainFile(path)
	}
	if err != nil {
		if strings.HasSuffix(path, ".gz") && !errors.Is(err, fs.ErrNotExist) {
			return &unreadableError{path: path, err: err}
		}
		return fmt.Errorf("otelbridge: %w", err)
	}
	r.f, r.zr, r.path, r.base, r.off, r.nextSeq, r.liveTo = f, zr, path, chain.BaseName(path), 0, 0, 0
	var src io.Reader = f
	if zr != nil {
		src = zr
	}
	if r.br == nil {
		r.br = bufio.NewReaderSize(src, 64<<10)
	} else {
		r.br.Reset(src)
	}
	return nil
}

func openChainFile(path string) (*os.File, *gzip.Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, nil, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, zr, nil
}

func (r *fileReader) close() {
	if r.f != nil {
		r.f.Close()
	}
	r.f, r.zr, r.base, r.path, r.nextSeq, r.liveTo = nil, nil, "", "", 0, 0
}

// The cursor file: "v1 <seq> <chain value of seq in hex>\n".

func cursorPath(dir, prefix string) string {
	return filepath.Join(dir, ".otlp-cursor-"+prefix)
}

func readCursor(path string) (seq uint64, mac [32]byte, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, mac, err
	}
	f := strings.Fields(string(b))
	if len(f) != 3 || f[0] != "v1" || len(f[2]) != 2*len(mac) {
		return 0, mac, fmt.Errorf("otelbridge: %s: malformed cursor", path)
	}
	if seq, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return 0, mac, fmt.Errorf("otelbridge: %s: %w", path, err)
	}
	if _, err := hex.Decode(mac[:], []byte(f[2])); err != nil {
		return 0, mac, fmt.Errorf("otelbridge: %s: %w", path, err)
	}
	return seq, mac, nil
}

// writeCursor replaces the cursor file atomically: a crash leaves the old
// or the new one, never a mix. (Losing the rename itself to a crash only
// means re-exporting a batch.)
func writeCursor(path string, seq uint64, mac [32]byte) error {
	if err := replaceFile(path, fmt.Appendf(nil, "v1 %d %x\n", seq, mac)); err != nil {
		return fmt.Errorf("otelbridge: write cursor: %w", err)
	}
	return nil
}

// replaceFile replaces path with a file holding data, synced, through
// path+".tmp". The temporary file is created afresh (O_EXCL), never
// truncated: the audit directory may hold a symbolic link planted at that
// name (rotate.CheckDir), which O_EXCL does not follow.
func replaceFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
