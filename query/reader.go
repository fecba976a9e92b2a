package query

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// Options configure a Reader.
type Options struct {
	// Key is the chain's initial key K(0) (chain.ReadKeyFile), which
	// verifies every epoch. Without it events of keyed files are returned
	// with Verified false, except those EpochKey or a signed digest can
	// verify.
	Key []byte
	// EpochKey, if set, returns the writer's key of an epoch if it still
	// holds it (handler.Handler.EpochKey): a service whose key is
	// forward-secure holds only the current epoch's (and, briefly, those of
	// epochs whose checkpoints are being signed). from is the first seq
	// the key is known to have sealed: lines before it are not verified by
	// it, whatever epoch their file claims (someone holding the key could
	// re-seal an older file claiming the key's epoch).
	EpochKey func(epoch uint64) (key []byte, from uint64, ok bool)
	// CheckpointKey verifies the signed checkpoints (chain.ReadVerifierFile).
	// With it, events of an epoch whose MACs the reader cannot check (no
	// K(0), an epoch EpochKey no longer has) are Verified when the
	// epoch's lines hash to the digest its signed checkpoint carries.
	CheckpointKey note.Verifier
	// Prefix and Ext name the files, as in rotate.Options; default
	// chain.DefaultPrefix and chain.DefaultExt.
	Prefix, Ext string
}

// Reader queries the audit files of one directory. It is safe for
// concurrent use, also while a writer appends to the directory, rotates,
// compresses and removes files.
type Reader struct {
	dir, prefix, ext string
	key              []byte
	keyID            string
	epochKey         func(uint64) ([]byte, uint64, bool)
	ckptKey          note.Verifier

	mu        sync.Mutex
	first     map[string]uint64 // sealed file name → seq of its first line
	notes     map[uint64][sha256.Size]byte
	notesSize int64
	digests   map[string]fileDigests

	filesRead atomic.Int64 // files read line by line; for tests
}

// NewReader returns a Reader of the audit files in dir. The directory is
// not read until Query.
func NewReader(dir string, opts Options) (*Reader, error) {
	if opts.Key != nil && len(opts.Key) != chain.KeySize {
		return nil, fmt.Errorf("query: key must be %d bytes, got %d", chain.KeySize, len(opts.Key))
	}
	r := &Reader{dir: dir, prefix: opts.Prefix, ext: opts.Ext, first: make(map[string]uint64), epochKey: opts.EpochKey,
		ckptKey: opts.CheckpointKey, digests: make(map[string]fileDigests)}
	if r.prefix == "" {
		r.prefix = chain.DefaultPrefix
	}
	if r.ext == "" {
		r.ext = chain.DefaultExt
	}
	if opts.Key != nil {
		r.key = bytes.Clone(opts.Key)
		r.keyID = chain.KeyID(r.key)
	}
	return r, nil
}

// Dir returns the directory the Reader reads.
func (r *Reader) Dir() string { return r.dir }

// Query returns one page of the audit records that match req, in req.Order.
// Bad requests (limit, status, time range, cursor) give a *ParamError.
//
// Newest first, it reads the files from the newest back, one at a time,
// keeping only the page in memory, and stops when the page is full; oldest
// first, it starts at the file holding the cursor's successor. Either way
// files wholly outside the cursor's range are skipped by the seq of their
// first line.
func (r *Reader) Query(ctx context.Context, req Request) (Page, error) {
	p, err := compile(req)
	if err != nil {
		return Page{}, err
	}
	page := Page{Events: []Event{}}
	if p.empty {
		return page, nil
	}
	files, err := rotate.List(r.dir, r.prefix, r.ext)
	if err != nil {
		return Page{}, fmt.Errorf("query: %w", err)
	}
	r.pruneCache(files)
	need := p.limit + 1 // one more than the page, to know whether there is a next one
	out := make([]Event, 0, need)
	if p.order == NewestFirst {
		for i := len(files) - 1; i >= 0 && len(out) < need; i-- {
			if p.hi < math.MaxUint64 {
				if first, ok := r.firstSeq(files[i]); ok && first > p.hi {
					continue // every line is newer than the cursor
				}
			}
			ring := &ring{max: need - len(out)}
			tooLong := false
			if err := r.readFile(ctx, files[i], p, ring, i < len(files)-1 || strings.HasSuffix(files[i], ".gz"), r.boundOf(files, i), &tooLong); err != nil {
				if !page.unreadable(err) {
					return Page{}, err
				}
			}
			page.lineTooLong(files[i], tooLong)
			out = ring.appendNewestFirst(out)
		}
	} else {
		c := &list{events: out}
		for i := 0; i < len(files) && len(c.events) < need; i++ {
			if p.lo > 1 && i+1 < len(files) {
				if next, ok := r.firstSeq(files[i+1]); ok && next <= p.lo {
					continue // every line is older than the cursor's successor
				}
			}
			tooLong := false
			if err := r.readFile(ctx, files[i], p, c, i < len(files)-1 || strings.HasSuffix(files[i], ".gz"), r.boundOf(files, i), &tooLong); err != nil {
				if !page.unreadable(err) {
					return Page{}, err
				}
			}
			page.lineTooLong(files[i], tooLong)
		}
		out = c.events
	}
	if len(out) > p.limit {
		out = out[:p.limit]
		page.NextCursor = encodeCursor(p.order, out[len(out)-1].Seq)
	}
	page.Events = out
	return page, nil
}

// damagedFile is readFile's error for a file that is there but cannot be
// read to its end.
type damagedFile struct {
	name string
	err  error
}

func (d *damagedFile) Error() string { return fmt.Sprintf("query: %s: %v", d.name, d.err) }
func (d *damagedFile) Unwrap() error { return d.err }

// unreadable records a damaged file and reports whether err was one: one
// bad file does not make the rest of the trail unreadable.
func (p *Page) unreadable(err error) bool {
	var d *damagedFile
	if !errors.As(err, &d) {
		return false
	}
	p.Unreadable = append(p.Unreadable, d.name)
	return true
}

// boundOf returns the seq from which the lines of files[i] are not the
// chain's: the first seq of the file after it. A writer that could not
// undo a failed write gives its file up with lines it never committed, and
// goes on in a new file from their seqs (FORMAT.md §5); otherwise every
// line of a file is below the next file's first seq.
func (r *Reader) boundOf(files []string, i int) uint64 {
	if i+1 < len(files) {
		if first, ok := r.firstSeq(files[i+1]); ok {
			return first
		}
	}
	return math.MaxUint64
}

// lineTooLong records a file that holds a line longer than MaxLineBytes
// (passed over; the rest of the file was read), if it is not recorded yet.
func (p *Page) lineTooLong(path string, tooLong bool) {
	if name := chain.BaseName(path); tooLong && !slices.Contains(p.Unreadable, name) {
		p.Unreadable = append(p.Unreadable, name)
	}
}

// collector receives the matching events of a file in file order.
type collector interface {
	// add stores ev and returns where, valid until the next add, and
	// whether to go on reading.
	add(ev Event) (slot *Event, more bool)
}

// list collects into a slice whose capacity is the number wanted.
type list struct{ events []Event }

func (l *list) add(ev Event) (*Event, bool) {
	l.events = append(l.events, ev)
	return &l.events[len(l.events)-1], len(l.events) < cap(l.events)
}

// ring keeps the last max events of a file.
type ring struct {
	buf  []Event
	max  int
	next int // slot of the next add, once len(buf) == max
}

func (r *ring) add(ev Event) (*Event, bool) {
	if len(r.buf) < r.max {
		r.buf = append(r.buf, ev)
		return &r.buf[len(r.buf)-1], true
	}
	slot := &r.buf[r.next]
	*slot = ev
	r.next = (r.next + 1) % r.max
	return slot, true
}

// appendNewestFirst appends the kept events to out, newest first.
func (r *ring) appendNewestFirst(out []Event) []Event {
	n := len(r.buf)
	for i := range n {
		out = append(out, r.buf[(r.next-1-i+2*n)%n])
	}
	return out
}

// link is what the check of the next line needs of a line.
type link struct {
	parsed bool // a sealed line (chain.ParseLine accepted it)
	macOK  bool
	seq    uint64
	mac    [sha256.Size]byte
	ev     *Event // the event returned for it, if any
}

// readFile reads the file at path from its start, verifying every line,
// and hands the matching audit records in p's seq range to c.
//
// final: a newer file exists, so this one is no longer written (readLine).
// Lines from seq bound on are not the chain's (boundOf). *tooLong (if not
// nil) is set when a line longer than MaxLineBytes was passed over.
func (r *Reader) readFile(ctx context.Context, path string, p *plan, c collector, final bool, bound uint64, tooLong *bool) error {
	rc, err := rotate.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed (retention) since it was listed
	}
	if err != nil {
		return &damagedFile{chain.BaseName(path), err}
	}
	defer rc.Close()
	r.filesRead.Add(1)
	name := chain.BaseName(path)
	br := bufio.NewReaderSize(rc, 64<<10)
	var buf []byte
	ck := checker{r: r, path: path}
	for {
		if ck.no%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var st lineStatus
		buf, _, st, err = readLine(br, buf[:0], final, 0)
		if err != nil {
			return &damagedFile{name, err}
		}
		if st == lineEnd {
			return nil // the end, maybe after a torn or half-written last line
		}
		if st == lineTooLong {
			ck.skip()
			if tooLong != nil {
				*tooLong = true
			}
			continue
		}
		l, verified, ok := ck.next(buf)
		if !ok || l.Kind != "" || l.Seq < p.lo || l.Seq > p.hi || l.Seq >= bound {
			continue
		}
		ev := Event{Seq: l.Seq, File: name, Line: ck.no, Verified: verified}
		if !p.match(buf, &ev) {
			continue
		}
		ev.Record = bytes.Clone(buf)
		slot, more := c.add(ev)
		ck.p1.ev = slot
		if !more {
			return nil
		}
	}
}

// checker verifies the lines of one file in order, as the package doc
// says. Set p1.ev to the event returned for the last line, if any, so that
// a successor that shows the line was changed can mark it unverified.
type checker struct {
	r      *Reader
	path   string
	signed []seqRange // seqs a signed digest vouches for; read when first needed
	loaded bool
	no     int // lines checked
	fk     fileKey
	mac    hash.Hash // nil: the line's MAC cannot be checked
	sum    [sha256.Size]byte
	p1, p2 link // the line before and the one before that
	closed bool // a close record was read
}

// skip counts the file's next complete line, which was not read (longer
// than MaxLineBytes): it is not a sealed line for the check.
func (c *checker) skip() {
	c.no++
	c.p2, c.p1 = c.p1, link{}
}

// next checks the file's next complete line (without its newline). ok is
// false when it is not a sealed line.
func (c *checker) next(buf []byte) (l chain.Line, verified, ok bool) {
	l, perr := chain.ParseLine(buf)
	verified, ok = c.nextParsed(&l, perr)
	return l, verified, ok
}

// nextParsed is next for a line already parsed: l and perr are what
// chain.ParseLine returned for it.
func (c *checker) nextParsed(l *chain.Line, perr error) (verified, ok bool) {
	c.no++
	if perr != nil {
		c.p2, c.p1 = c.p1, link{}
		return false, false
	}
	if c.no == 1 {
		c.fk = c.r.keyFor(l)
		c.mac = c.fk.hash(c.r)
	}
	cur := link{parsed: true, seq: l.Seq, mac: l.MAC}
	if c.mac != nil {
		c.mac.Reset()
		c.mac.Write(l.Sealed)
		cur.macOK = hmac.Equal(c.mac.Sum(c.sum[:0]), l.MAC[:]) && l.Seq >= c.fk.from
	}
	p1, p2 := c.p1, c.p2
	var linked bool
	switch {
	case c.no == 1:
		linked = l.Kind == chain.RecOpen // MAC only; the first line must open the file
	case l.Kind == chain.RecOpen || c.closed:
		linked = false // inserted: an open record inside a file, a line after a close record
	case p1.parsed && l.Seq == p1.seq+1 && l.Prev == p1.mac:
		linked = true
	case cur.macOK && !p1.macOK && p2.parsed && l.Seq == p2.seq+1 && l.Prev == p2.mac:
		linked = true // the line before was never sealed into the chain
	case cur.macOK && p1.parsed && l.Seq == p1.seq+1:
		// Sealed after seq p1.seq, but over other content: the line
		// before was changed (and its MAC recomputed).
		linked = true
		if p1.ev != nil {
			p1.ev.Verified = false
		}
	}
	if l.Kind == chain.RecClose {
		c.closed = true
	}
	if (l.Kind == chain.RecClose || l.Kind == chain.RecCheckpoint) && (cur.macOK || c.mac == nil && linked) {
		c.fk.epoch++ // the next line is sealed with the next epoch's key
		c.mac = c.fk.hash(c.r)
	}
	c.p2, c.p1 = p1, cur
	if c.mac == nil && linked && !cur.macOK {
		// No key for this epoch: a signed digest may vouch for the line.
		if !c.loaded {
			c.signed, c.loaded = c.r.digestRanges(c.path), true
		}
		return inRanges(c.signed, uint64(c.no)), true
	}
	return cur.macOK && linked, true
}

// fileKey says how a file's lines are sealed.
type fileKey struct {
	keyed bool   // hmac-sha256 with this Reader's key (K(0) or the current one)
	plain bool   // sha256
	epoch uint64 // the epoch of the next line
	base  chain.KeyState
	from  uint64 // lines before this seq are not verified by the current key
}

// keyFor reads how the file whose first line is l is sealed: as its open
// record says, if it is one, or else by the key.
func (r *Reader) keyFor(l *chain.Line) fileKey {
	alg, keyID := chain.AlgSHA256, ""
	if r.key != nil {
		alg, keyID = chain.AlgHMACSHA256, r.keyID
	}
	var fk fileKey
	if l.Kind == chain.RecOpen {
		var oi chain.OpenInfo
		if err := l.Decode(&oi); err != nil {
			return fk
		}
		alg, keyID, fk.epoch = oi.Alg, oi.KeyID, oi.Epoch
	}
	switch {
	case alg == chain.AlgHMACSHA256 && r.key != nil && keyID == r.keyID:
		fk.keyed, fk.base = true, chain.NewKeyState(r.key)
	case alg == chain.AlgHMACSHA256 && r.key == nil && r.epochKey != nil:
		fk.keyed = true
	case alg == chain.AlgSHA256 && r.key == nil && r.epochKey == nil && r.ckptKey == nil:
		// Only for a reader without any key: given one, an unkeyed
		// file is a downgrade (anyone can write one).
		fk.plain = true
	}
	return fk // neither: keyed without the key, the wrong key, a downgrade, an unknown algorithm
}

// hash returns the MAC of the epoch fk is at, or nil if it cannot be checked.
func (fk *fileKey) hash(r *Reader) hash.Hash {
	switch {
	case fk.plain:
		return sha256.New()
	case !fk.keyed:
		return nil
	case fk.base.Key != nil:
		if fk.epoch < fk.base.Epoch {
			fk.base = chain.NewKeyState(r.key)
		}
		fk.base, _ = fk.base.At(fk.epoch)
		return hmac.New(sha256.New, fk.base.Key)
	}
	k, from, ok := r.epochKey(fk.epoch)
	if !ok {
		return nil
	}
	fk.from = from
	return hmac.New(sha256.New, k)
}

// MaxLineBytes is the longest line (without its newline) a Reader reads.
// A longer line is passed over without being held in memory: it is not
// returned, as a line that is not a sealed line is not (the line after it
// is unverified if it was a sealed one), and its file is reported
// (Page.Unreadable, FollowOptions.OnUnreadable with ErrLineTooLong);
// every line after it is read. Neither the handler nor the chain writer
// limits a record's size, so the bound is this reader's: a record of 16
// MiB is already far outside what the writer is built for (it ends an
// epoch early once its lines take 8 MiB, keeping them in memory for the
// epoch's digest), and one line of garbage, or forged, in a file must
// not make a query or a stream allocate all of it (1 GiB without a
// newline would). auditctl verify reads such a line whole.
const MaxLineBytes = 16 << 20

// maxLine is MaxLineBytes; tests lower it.
var maxLine = MaxLineBytes

// ErrLineTooLong is reported for a line longer than MaxLineBytes: see
// there.
var ErrLineTooLong = errors.New("line longer than query.MaxLineBytes")

// lineStatus is what readLine read.
type lineStatus int

const (
	lineEnd     lineStatus = iota // no complete line: the end of the file (for now, if it is written)
	lineOK                        // a complete line
	lineTooLong                   // a complete line longer than maxLine, passed over
)

// readLine appends the next line to buf, without its newline, and returns
// n, the number of bytes of the line read so far (its newline included
// once it is complete). It returns lineEnd at the end of the file, for an
// empty or unterminated last line, and lineTooLong, with buf holding at
// most maxLine bytes of it, for a line longer than maxLine, which it reads
// to its end without holding the rest. skipped > 0 continues a line longer
// than maxLine of which skipped bytes were read before (br is positioned
// after them).
//
// final says the file is no longer written (a newer one exists, or it is
// compressed): then only a NUL followed by nothing but NULs is its end
// (unwritten preallocated space), and a NUL with other bytes after it is
// damage inside a line, read on (the line does not parse, nothing after it
// is hidden). In a file being written a NUL is the end for now: a read
// that overlaps a write can see a line's start still NUL and its end
// already there.
func readLine(br *bufio.Reader, buf []byte, final bool, skipped int64) (_ []byte, n int64, st lineStatus, err error) {
	n = skipped + int64(len(buf))
	long := skipped > 0 || len(buf) > maxLine
	for {
		chunk, err := br.ReadSlice('\n')
		if i := bytes.IndexByte(chunk, 0); i >= 0 && (!final || allZero(chunk[i+1:])) {
			chunk = chunk[:i]
			if !long && len(buf)+len(chunk) <= maxLine {
				buf = append(buf, chunk...)
			}
			return buf, n + int64(len(chunk)), lineEnd, nil
		}
		n += int64(len(chunk))
		if !long {
			content := len(chunk)
			if err == nil {
				content-- // the newline
			}
			if len(buf)+content > maxLine {
				long = true // buf keeps the line's first bytes
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch err {
		case nil:
			if long {
				return buf, n, lineTooLong, nil
			}
			return buf[:len(buf)-1], n, lineOK, nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			return buf, n, lineEnd, nil
		default:
			return buf, n, lineEnd, err
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// firstSeq returns the seq of the first line of the file at path.
func (r *Reader) firstSeq(path string) (uint64, bool) {
	name := chain.BaseName(path)
	r.mu.Lock()
	seq, ok := r.first[name]
	r.mu.Unlock()
	if ok {
		return seq, true
	}
	rc, err := rotate.Open(path)
	if err != nil {
		return 0, false
	}
	defer rc.Close()
	line, _, st, err := readLine(bufio.NewReaderSize(rc, 4096), nil, false, 0)
	if err != nil || st != lineOK {
		return 0, false
	}
	l, err := chain.ParseLine(line)
	if err != nil {
		return 0, false
	}
	r.mu.Lock()
	r.first[name] = l.Seq // a file's first line never changes
	r.mu.Unlock()
	return l.Seq, true
}

// pruneCache forgets files that are gone.
func (r *Reader) pruneCache(files []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.first) <= 2*len(files)+16 {
		return
	}
	keep := make(map[string]bool, len(files))
	for _, f := range files {
		keep[chain.BaseName(f)] = true
	}
	for name := range r.first {
		if !keep[name] {
			delete(r.first, name)
		}
	}
}
