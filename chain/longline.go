package chain

import (
	"bytes"
	"fmt"
	"io"

	"github.com/slogaudit/slogaudit/rotate"
)

// Verify holds a line in memory only up to longLine bytes. A longer line
// (no writer limits a record's size, and a forged one can be of any size)
// is streamed: the reader keeps its first longHead bytes and its last
// lineTail bytes, and a MAC over it reads the sealed part again from the
// file (a torn long line is read again to look for a sealed line in it).
// So memory stays bounded whatever a file holds.
//
// Vars, not constants, so that tests can stream short lines.
var (
	longLine = 1 << 20
	longHead = 4 << 10 // at least 128: the fixed members up to the "rec" member
)

const (
	lineTail = len(macPrefix) + hashHex + 2 // ,"mac":"<64 hex>"}

	// maxDecode bounds the long record Line.Decode reads back (only
	// tests make a record that short long).
	maxDecode = 64 << 10
)

// longRef locates the first n bytes of a long line: at offset off of the
// (decompressed) content of the file at path.
type longRef struct {
	path string
	off  int64
	n    int64
}

// copyTo writes the bytes [from, from+n) of the file's content to w,
// reading them again.
func (r *longRef) copyTo(w io.Writer, from, n int64) error {
	f, err := rotate.Open(r.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if s, ok := f.(io.Seeker); ok {
		if _, err := s.Seek(r.off+from, io.SeekStart); err != nil {
			return err
		}
	} else if _, err := io.CopyN(io.Discard, f, r.off+from); err != nil {
		return err
	}
	if _, err := io.CopyN(w, f, n); err != nil {
		return fmt.Errorf("reading a long line again (off %d from %d n %d): %w", r.off, from, n, err)
	}
	return nil
}

// tailBuf holds the last lineTail bytes seen.
type tailBuf struct {
	b [lineTail]byte
	n int
}

// push appends a then b, keeping the last lineTail bytes.
func (t *tailBuf) push(b []byte) {
	if len(b) >= lineTail {
		t.n = copy(t.b[:], b[len(b)-lineTail:])
		return
	}
	keep := min(t.n, lineTail-len(b))
	copy(t.b[:], t.b[t.n-keep:t.n])
	t.n = keep + copy(t.b[keep:], b)
}

func (t *tailBuf) bytes() []byte { return t.b[:t.n] }

// streamState is what the reader keeps of a long line.
type streamState struct {
	size int64   // bytes of the line so far, without a newline
	tail tailBuf // its last bytes
}

// start begins streaming a line whose first bytes are b.
func (s *streamState) start(b []byte) {
	*s = streamState{}
	s.feed(b)
}

// feed adds the next bytes of the line.
func (s *streamState) feed(b []byte) {
	if len(b) == 0 {
		return
	}
	s.tail.push(b)
	s.size += int64(len(b))
}

// decode reads the sealed part back and unmarshals it, if it is short.
func (r *longRef) decode(v any) error {
	if r.n+1 > maxDecode {
		return fmt.Errorf("record of %d bytes is too long to decode", r.n+int64(lineTail))
	}
	var buf bytes.Buffer
	buf.Grow(int(r.n) + 1)
	if err := r.copyTo(&buf, 0, r.n); err != nil {
		return err
	}
	buf.WriteByte('}')
	return decodeStrict(buf.Bytes(), v)
}

// parseStreamed parses the first n bytes of a long line, given its head
// (its first bytes) and tail (the lineTail bytes before n), as ParseLine
// parses the whole: the fixed frame lies in the head and the tail.
func parseStreamed(head, tail []byte, n int64, ref longRef) (Line, error) {
	if n <= int64(len(head)) {
		return ParseLine(head[:n])
	}
	if len(tail) < lineTail {
		return Line{}, fmt.Errorf("internal: short tail")
	}
	h := head
	if k := n - int64(lineTail); k < int64(len(h)) {
		h = h[:k]
	}
	synth := make([]byte, 0, len(h)+lineTail)
	synth = append(append(synth, h...), tail...)
	l, err := ParseLine(synth)
	l.Raw, l.Sealed = nil, nil
	ref.n = n - int64(lineTail)
	l.long = &ref
	return l, err
}
