package chain

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slogaudit/slogaudit/rotate"
)

// Default file naming, shared with rotate's defaults.
const (
	DefaultPrefix = "audit"
	DefaultExt    = ".jsonl"
)

// Options configure a Writer.
type Options struct {
	// Key is the 32-byte MAC key. Nil seals with plain SHA-256, which
	// anyone can recompute: see FORMAT.md for what that does not protect.
	Key []byte
	// Rotate configures the files: Dir is required; Framer is set by Open.
	Rotate rotate.Options
	// Now stamps open and close records; default Rotate.Now, then time.Now.
	Now func() time.Time
}

// A Writer appends sealed records to a directory of chained files. It is
// safe for concurrent use; the chain order is the order in which Append
// calls reach the underlying writer's queue.
type Writer struct {
	w *rotate.Writer
}

// Open resumes the chain in opts.Rotate.Dir (reading the tail of its newest
// file) or starts a new one, and opens a new file that continues it.
//
// Open refuses to continue a chain sealed with another algorithm or key, and
// one whose last record does not verify: continuing it would either fork the
// chain or bless a tampered tail.
func Open(opts Options) (*Writer, error) {
	ro := opts.Rotate
	if ro.Dir == "" {
		return nil, errors.New("chain: Options.Rotate.Dir is required")
	}
	if ro.Prefix == "" {
		ro.Prefix = DefaultPrefix
	}
	if ro.Ext == "" {
		ro.Ext = DefaultExt
	}
	if opts.Key != nil && len(opts.Key) != KeySize {
		return nil, fmt.Errorf("chain: key must be %d bytes, got %d", KeySize, len(opts.Key))
	}
	now := opts.Now
	if now == nil {
		now = ro.Now
	}
	if now == nil {
		now = time.Now
	}
	head, err := resume(ro.Dir, ro.Prefix, ro.Ext, opts.Key)
	if err != nil {
		return nil, err
	}
	s := newSealer(opts.Key, now, head)
	ro.Framer = s
	w, err := rotate.New(ro)
	if err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// Append seals body (JSON object members without the braces, e.g.
// `"msg":"hi","a":1`) as the next record and writes it as the durability
// policy requires. When pos is not nil it receives the record's position.
// The error is the write's: on error the record is not in the file.
func (w *Writer) Append(body []byte, pos *Position) error {
	if pos == nil {
		return w.w.WriteRecord(body, nil)
	}
	return w.w.WriteRecord(body, pos)
}

// Rotate closes the current file with a close record and starts a new one.
func (w *Writer) Rotate() error { return w.w.Rotate() }

// Sync flushes the current file to stable storage.
func (w *Writer) Sync() error { return w.w.Sync() }

// Close writes a close record, syncs and closes the file. It is idempotent;
// Append after Close returns an error wrapping rotate.ErrClosed.
func (w *Writer) Close() error { return w.w.Close() }

// Path returns the path of the file being written.
func (w *Writer) Path() string { return w.w.Path() }

// BaseName returns a file's name as sealed in open records: without its
// directory and without the .gz that compression adds.
func BaseName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".gz")
}

// resume finds where the chain in dir stands. Empty files (created, never
// written) are removed; a file holding only a torn line becomes the
// predecessor with its size recorded as prev_torn.
func resume(dir, prefix, ext string, key []byte) (state, error) {
	var st state
	files, err := rotate.List(dir, prefix, ext)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("chain: resume: %w", err)
	}
	for i := len(files) - 1; i >= 0; i-- {
		path := files[i]
		first, last, torn, size, err := endLines(path)
		if err != nil {
			return st, fmt.Errorf("chain: resume from %s: %w", path, err)
		}
		if size == 0 {
			if !strings.HasSuffix(path, ".gz") {
				if err := os.Remove(path); err != nil {
					return st, fmt.Errorf("chain: resume: remove empty %s: %w", path, err)
				}
			}
			continue
		}
		if st.file == "" {
			st.file, st.prevTorn = BaseName(path), torn
		}
		if last == nil {
			continue // only a torn line: the head is in an earlier file
		}
		if err := checkResumable(path, first, last, key); err != nil {
			return st, err
		}
		l, _ := ParseLine(last)
		st.seq, st.prev = l.Seq, l.MAC
		return st, nil
	}
	return st, nil
}

func checkResumable(path string, first, last []byte, key []byte) error {
	fl, err := ParseLine(first)
	var oi OpenInfo
	if err == nil && fl.Kind == RecOpen {
		err = fl.Decode(&oi)
	} else if err == nil {
		err = errors.New("first line is not an open record")
	}
	if err != nil {
		return fmt.Errorf("chain: cannot resume from %s: %v", path, err)
	}
	wantAlg := AlgSHA256
	if key != nil {
		wantAlg = AlgHMACSHA256
	}
	if oi.Alg != wantAlg || oi.KeyID != KeyID(key) {
		return fmt.Errorf("chain: cannot resume from %s: it is sealed with %s key_id %q, this writer uses %s key_id %q; use the key it was written with or another directory",
			path, oi.Alg, oi.KeyID, wantAlg, KeyID(key))
	}
	ll, err := ParseLine(last)
	if err != nil {
		return fmt.Errorf("chain: cannot resume from %s: last line: %v", path, err)
	}
	if macOf(key, ll.Sealed) != ll.MAC {
		return fmt.Errorf("chain: cannot resume from %s: its last record (seq %d) fails its MAC; run auditctl verify", path, ll.Seq)
	}
	return nil
}

// endLines returns the first and the last complete line of a file (without
// newlines), the number of bytes after the last newline, and the size of the
// content. A plain file is read from both ends; a compressed one is streamed.
func endLines(path string) (first, last []byte, torn, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	defer f.Close()
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, nil, 0, 0, err
		}
		return scanEnds(zr)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, 0, 0, err
	}
	size = fi.Size()
	if size <= 1<<20 {
		first, last, torn, _, err = scanEnds(f)
		return first, last, torn, size, err
	}
	first, err = bufio.NewReaderSize(f, 64<<10).ReadBytes('\n')
	if err != nil {
		return nil, nil, 0, size, err
	}
	first = first[:len(first)-1]
	// Read backwards in growing chunks until the chunk holds a whole line.
	for chunk := int64(64 << 10); ; chunk *= 2 {
		off := max(size-chunk, 0)
		buf := make([]byte, size-off)
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return nil, nil, 0, size, err
		}
		end := bytes.LastIndexByte(buf, '\n')
		if end >= 0 {
			torn = int64(len(buf) - end - 1)
			start := bytes.LastIndexByte(buf[:end], '\n')
			if start >= 0 || off == 0 {
				return first, buf[start+1 : end], torn, size, nil
			}
		}
		if off == 0 {
			return first, nil, size, size, nil
		}
	}
}

func scanEnds(r io.Reader) (first, last []byte, torn, size int64, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	size = int64(len(data))
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return nil, nil, size, size, nil
	}
	torn = size - int64(end) - 1
	first, _, _ = bytes.Cut(data, []byte{'\n'})
	last = data[bytes.LastIndexByte(data[:end], '\n')+1 : end]
	return first, last, torn, size, nil
}
