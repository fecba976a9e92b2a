package query

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// Notifier tells followers (Reader.Follow, the UI's streams) which records
// are committed, and wakes them as soon as one is: pass it to the handler
// that writes the directory as a Sink (handler.Options.Sinks), and to
// Follow (FollowOptions.Notifier) or the UI (UIOptions.Notifier). The
// handler passes a record to its sinks after its write committed (under
// rotate.SyncAlways: after its fsync), so the highest seq the Notifier
// has heard of, and every seq below it, are in the trail for good; a line
// of the file being written with a higher seq may still be rolled back.
// Its Audit costs an atomic maximum (a load, and a compare-and-swap for a
// higher seq) and, while nobody follows, one more atomic load. Without a Notifier, followers poll and cannot tell a committed
// line from one that may still be rolled back (see Follow).
type Notifier struct {
	hi      atomic.Uint64 // the highest seq passed to Audit
	waiting atomic.Bool
	mu      sync.Mutex
	ch      chan struct{} // closed at the next record; nil when nobody waits
}

// NewNotifier returns a Notifier.
func NewNotifier() *Notifier { return &Notifier{} }

// Audit implements handler.Sink: it notes that pos.Seq is committed and
// wakes whoever waits. It neither blocks nor keeps body.
func (n *Notifier) Audit(body []byte, pos chain.Position) {
	if n == nil {
		return
	}
	// Before the wake-up: a follower that took its channel before reading
	// either sees the seq or is woken (see Follow).
	for {
		cur := n.hi.Load()
		if pos.Seq <= cur || n.hi.CompareAndSwap(cur, pos.Seq) {
			break
		}
	}
	if !n.waiting.Load() {
		return
	}
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.waiting.Store(false)
	n.mu.Unlock()
}

// committed returns the highest seq known committed (0: none).
func (n *Notifier) committed() uint64 {
	if n == nil {
		return 0
	}
	return n.hi.Load()
}

// wait returns a channel that is closed at the next record. Take it before
// reading, so that a record written meanwhile is not missed.
func (n *Notifier) wait() <-chan struct{} {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	n.waiting.Store(true)
	return n.ch
}

// FollowOptions configure Reader.Follow.
type FollowOptions struct {
	Filter Filter
	// After is the seq after which to start: Follow returns the events with
	// a greater seq. Use Head for "from now on".
	After uint64
	// Notifier, if set, wakes Follow when a record is written, and tells
	// it which lines of the file being written are committed: Follow then
	// delivers only those (see Follow). It must be a Sink of the handler
	// that writes the directory; a Notifier that hears of no record holds
	// back every new line of the file being written until the file is
	// finished.
	Notifier *Notifier
	// Poll is how often Follow looks for new records and files when not
	// woken: default 250ms without a Notifier, 2s with one (which does not
	// hear about rotations).
	Poll time.Duration
	// OnUnreadable, if set, hears of a file that could not be read to its
	// end (a .gz that no longer decompresses): Follow goes on with the next
	// file, and the events past the damage are not delivered. It also
	// hears of a line longer than MaxLineBytes (err wraps ErrLineTooLong
	// and names the line): Follow passes over it without holding it in
	// memory and goes on with the next line of the file.
	OnUnreadable func(file string, err error)
	// OnRetracted, if set, hears of audit records that are no longer in
	// the trail, the writer having rolled their write back (see Follow):
	// the seqs, in file order, of those Follow delivered, of those in
	// Shown, and of those at or before After that it read before they
	// were rolled back (it does not deliver them, but the caller may have
	// them from Query or Head: those are not filtered). Follow then
	// delivers the records that took their seqs, if they match. It is
	// called from Follow's goroutine, between calls of fn.
	OnRetracted func(file string, seqs []uint64)
	// Shown, if set, are events at or before After that the caller has
	// already shown, typically the newest ones Query returned up to Head
	// before Follow started: the newest of them may be lines not committed
	// yet, which the writer may roll back before Follow reads the file.
	// Follow compares each line it reads with a seq among them with the
	// event's record; one that differs (or a seq the file no longer holds
	// and that a new line takes) is reported to OnRetracted, and that
	// line, the record that took the seq, is delivered if it matches.
	Shown []Event
}

// Follow calls fn with each audit record after opts.After that matches
// opts.Filter, oldest first, as it is written, across rotations (new
// files), until ctx is done (returning ctx.Err()) or fn returns an error
// (returned as is). It never blocks the writer: it reads the files.
//
// Events are verified as in Query, with one difference: an event is
// reported as it was when read, so the case where a later line shows that
// the line before it was changed (see the package doc) does not flip an
// event already passed to fn. auditctl verify has the final word.
//
// A line of the file being written is not necessarily committed: when a
// write or (under rotate.SyncAlways) its fsync fails, the writer
// truncates the batch away and gives its seqs to the next records, or, if
// it cannot truncate, gives the file up and goes on from those seqs in a
// new one (FORMAT.md §5). A line is known committed when its file is
// finished — compressed, ended by its close record, followed by a newer
// file (whose first seq it must be below: the lines of a file given up
// from that seq on are not the chain's, and are never delivered), or held
// by no writer any more (rotate.FileLocked) — or, with opts.Notifier, when
// its seq is at most the highest the handler passed on. With a Notifier,
// Follow delivers only committed lines: it holds a matching line of the
// file being written back until the Notifier hears of its seq (or a later
// one) or the file is finished, and so never delivers a line that is
// rolled back. Without one (a follower in another process than the
// writer, e.g. auditctl tail) it cannot know, and delivers lines as it
// reads them; when the writer rolls lines back (the file becomes shorter
// than what was read, or holds other bytes where a line was read: Follow
// reads the last line it took again each time it looks for more, at no
// extra read), or a file is given up with lines from the newer file's
// first seq on, it reports the records that are gone to opts.OnRetracted,
// reads the file again from where it changed, and delivers the records
// that took their seqs. It keeps what it needs for that of the last 4,096
// lines it read of the file being written (fewer with a Notifier: only
// those not known committed); a rollback of more lines than that is
// reported in part. Either way this covers lines at or before opts.After
// too (the seq Head returns may be a line that is then rolled back), those
// Follow read before the rollback and, with opts.Shown, those the caller
// showed before Follow started: the records that take their seqs are
// delivered. (The UI's stream, given a Notifier, starts after the newest
// committed line rather than Head, so it never shows such a line.)
func (r *Reader) Follow(ctx context.Context, opts FollowOptions, fn func(Event) error) error {
	p, err := compile(Request{Filter: opts.Filter, Order: OldestFirst})
	if err != nil {
		return err
	}
	if opts.After == math.MaxUint64 {
		p.empty = true
	}
	p.lo = opts.After + 1
	poll := opts.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
		if opts.Notifier != nil {
			poll = 2 * time.Second
		}
	}
	f := &follower{r: r, p: p, fn: fn, onUnreadable: opts.OnUnreadable, onRetracted: opts.OnRetracted,
		notifier: opts.Notifier, poll: poll, seed: maphash.MakeSeed(), recheck: -1}
	for _, e := range opts.Shown {
		if l, err := chain.ParseLine(e.Record); err == nil && e.Seq == l.Seq && l.Seq < p.lo {
			if f.shown == nil {
				f.shown = make(map[uint64][sha256.Size]byte)
			}
			f.shown[l.Seq] = l.MAC
		}
	}
	defer f.closeFile()
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		wake := opts.Notifier.wait()
		progressed, err := f.step(ctx)
		if err != nil {
			return err
		}
		if progressed {
			continue
		}
		d := poll
		if f.suspect {
			d = min(poll, suspectDelay) // look again soon
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-timer.C:
		}
	}
}

// suspectDelay is how soon Follow looks again at a file whose last line
// read looked changed before it takes that for a rollback (one look could
// catch a file being rewritten by other means than the writer, which
// never shortens a file below what it committed).
const suspectDelay = 20 * time.Millisecond

// maxRecent bounds follower.recent.
const maxRecent = 4096

// checkWhole is the length up to which follower.recent compares a line
// whole; of a longer line, its first checkWhole bytes and its length.
const checkWhole = 64 << 10

// follower is Follow's position: the file being read and how far.
type follower struct {
	r            *Reader
	p            *plan
	fn           func(Event) error
	onUnreadable func(string, error)
	onRetracted  func(string, []uint64)
	notifier     *Notifier
	poll         time.Duration
	seed         maphash.Seed

	name    string // sealed name of the current (or last) file; "" before the first
	path    string // its path as listed
	rc      io.ReadCloser
	br      *bufio.Reader
	ck      checker
	partial []byte // an incomplete last line read so far (compressed files)
	skipped int64  // bytes read of an incomplete line longer than MaxLineBytes and not kept (readLine)
	off     int64  // plain files: offset after the last complete line
	ended   bool   // the current file has its close record
	final   bool   // the current file is no longer written (readLine)

	// done: the current file is finished (see Follow): its complete
	// lines with a seq below bound are the chain's, the others never.
	done  bool
	bound uint64
	// held: stopped before a line to deliver that is not known committed
	// (with a Notifier), at heldOff since heldAt.
	held    bool
	heldOff int64
	heldAt  time.Time
	// recent are the last lines taken of the current plain file that are
	// not known committed, oldest first, contiguous, the last one the
	// last line taken: each drain reads that one again first, to see
	// whether the writer rolled it back.
	recent     []seen
	lastSeq    uint64            // seq of the last sealed line taken
	lastMAC    [sha256.Size]byte // its MAC
	lastLinked bool              // the last line taken is that sealed line
	suspect    bool              // the last line taken looked changed: look again soon
	recheck    int               // >= 0: reading the file again from its start after a change, at recent[recheck]; -1: not
	scratch    []byte
	retracts   []uint64
	live       int // in this drain, no newer file exists: 1, it does (or unknown): -1, not looked yet: 0
	// shown are the chain values of the records FollowOptions.Shown, by
	// seq, until a line with the seq is read.
	shown map[uint64][sha256.Size]byte
}

// seen is a line follower.recent keeps.
type seen struct {
	off, n int64  // where it is and its length (with its newline)
	sum    uint64 // maphash of its first checkWhole bytes
	seq    uint64 // its seq; not parsed: the seq after the last sealed line before it
	parsed bool   // a sealed line
	shown  bool   // an audit record delivered, or at or before After
}

func (f *follower) closeFile() {
	if f.rc != nil {
		f.rc.Close()
		f.rc = nil
	}
}

// plain reports whether the current file is a plain (uncompressed) one.
func (f *follower) plain() bool {
	_, ok := f.rc.(io.Seeker)
	return ok
}

// step reads what there is to read and reports whether it got anywhere.
func (f *follower) step(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if f.rc == nil {
		return f.openNext()
	}
	progressed, err := f.drain(ctx)
	if err != nil || progressed && !f.ended || f.suspect {
		return progressed, err
	}
	if !f.ended {
		// At the end of a file without a close record: the writer is still
		// on it, unless a newer file exists (the writer crashed or gave the
		// file up). A newer file is created only after the last line of
		// this one is written, so read once more before moving on.
		next, err := f.newer()
		if err != nil {
			return false, err
		}
		if next == "" && f.held && !f.done && time.Since(f.heldAt) >= f.poll {
			// Held for a whole poll: if no writer holds the file any
			// more, it is finished (its writer is gone: a handler whose
			// Notifier this is not, one that crashed or could not write
			// its close record) and every complete line in it is as
			// final as it will be; it is read again after the answer
			// (rotate.FileLocked). But a writer that gave the file up
			// releases it once the newer file exists, before that one's
			// first line: look for it again after the answer too.
			f.heldAt = time.Now()
			if locked, ok := rotate.FileLocked(f.path); ok && !locked {
				if next, err = f.newer(); err != nil {
					return false, err
				}
				if next == "" {
					f.done, f.bound = true, math.MaxUint64
					return f.drain(ctx)
				}
			}
		}
		if next == "" {
			return false, nil
		}
		bound, known := f.r.bound(next)
		if !known {
			return false, nil // the newer file's first line is not complete yet
		}
		f.done, f.bound, f.final = true, bound, true
		if _, err := f.drain(ctx); err != nil || f.suspect {
			return false, err
		}
		// Lines taken from the newer file's first seq on were never the
		// chain's: the writer gave the file up with them.
		for i, e := range f.recent {
			if e.seq >= bound {
				f.retract(i)
				break
			}
		}
	}
	f.closeFile()
	return true, nil
}

// committed reports whether a sealed line with this seq is known to be the
// chain's, hi being what the Notifier said before it was read. A seq at
// most hi is committed, but in this file only if the writer did not give
// the file up before committing it in a newer one: so only if no newer
// file existed after hi was read (looked at once per drain, only when a
// line depends on it).
func (f *follower) committed(seq, hi uint64) bool {
	if f.done {
		return seq < f.bound
	}
	if f.notifier == nil || seq > hi {
		return false
	}
	if f.live == 0 {
		f.live = -1
		if next, err := f.newer(); err == nil && next == "" {
			f.live = 1
		}
	}
	return f.live > 0
}

// drain reads the complete lines there are in the current file.
func (f *follower) drain(ctx context.Context) (bool, error) {
	// What the Notifier says before the file is read: a line read after
	// this with a seq at most hi is the committed one (a committed line
	// is never rewritten, and a rolled-back seq is committed only after
	// its new line is written over the old one).
	hi := f.notifier.committed()
	f.live = 0
	plain := f.plain()
	progressed := false
	if plain && len(f.recent) > 0 && f.recheck < 0 {
		same, err := f.lastUnchanged()
		if err != nil {
			return false, fmt.Errorf("query: %s: %w", f.name, err)
		}
		if !same {
			if !f.suspect {
				f.suspect = true
				return false, f.rewind()
			}
			// Changed twice in a row: the writer rolled lines back.
			// Read the file again from its start (the check of the
			// lines needs those before), comparing the lines taken.
			f.suspect, f.recheck, f.held = false, 0, false
			f.ck, f.off, f.skipped, f.ended, f.lastSeq, f.lastLinked = checker{r: f.r, path: f.ck.path}, 0, 0, false, 0, false
			f.partial = f.partial[:0]
			if _, err := f.rc.(io.Seeker).Seek(0, io.SeekStart); err != nil {
				return false, fmt.Errorf("query: %s: %w", f.name, err)
			}
			f.br.Reset(f.rc)
			progressed = true
		} else {
			f.suspect = false
			last := f.recent[len(f.recent)-1]
			if f.recent[0].seq <= hi && f.notifier != nil {
				// Lines taken and still there, once committed, need no
				// second look.
				i := 0
				for i < len(f.recent) && f.committed(f.recent[i].seq, hi) {
					i++
				}
				f.recent = f.recent[:copy(f.recent, f.recent[i:])]
			}
			if f.skipped == 0 && !f.final {
				// Nothing after it yet: done, without reading again to
				// find that out (so that a look costs what it did before
				// the last line was read again). Either the reader holds
				// preallocated space (NUL) after the line, or the read
				// that got the line was short: it ended at the end of the
				// file.
				if f.br.Buffered() == 0 && last.n < int64(f.br.Size()) {
					return false, f.rewind()
				}
				if f.br.Buffered() > 0 {
					if b, _ := f.br.Peek(1); b[0] == 0 {
						return false, f.rewind()
					}
				}
			}
			if f.skipped > 0 {
				// On in the line too long (the reader is after the
				// last line taken).
				if _, err := f.rc.(io.Seeker).Seek(f.off+f.skipped, io.SeekStart); err != nil {
					return false, fmt.Errorf("query: %s: %w", f.name, err)
				}
				f.br.Reset(f.rc)
			}
		}
	}
	for {
		lineOff := f.off
		buf, n, st, err := readLine(f.br, f.partial, f.final, f.skipped)
		if err != nil {
			if !plain {
				// A compressed file is complete: one that no longer
				// decompresses is damaged (auditctl verify says so),
				// and the stream goes on with the next file.
				f.ended, f.partial = true, nil
				if f.onUnreadable != nil {
					f.onUnreadable(f.name, err)
				}
				return progressed, nil
			}
			return progressed, fmt.Errorf("query: %s: %w", f.name, err)
		}
		if st == lineEnd {
			if plain {
				if f.recheck >= 0 {
					// The file ends before lines taken: they are gone.
					f.retract(f.recheck)
				}
				// Read the rest again, from the last line taken that
				// is not known committed (to see whether it is still
				// there), else from the end of the last line: a plain
				// file may be preallocated, and what the buffer read
				// after the last line may be NUL bytes written over
				// since. In a line already too long, from where its
				// reading stopped (not all of it again at every look).
				f.skipped = 0
				if n > int64(maxLine) {
					f.skipped = n
				}
				f.partial = buf[:0]
				return progressed, f.rewind()
			}
			f.partial = buf // wait for the rest
			f.skipped = n - int64(len(buf))
			return progressed, nil
		}
		var l chain.Line
		perr := ErrLineTooLong
		if st == lineOK {
			l, perr = chain.ParseLine(buf)
		}
		sum := uint64(0)
		if plain && (f.recheck >= 0 || len(f.recent) > 0 || perr != nil || !f.committed(l.Seq, hi)) {
			head := buf[:min(len(buf), checkWhole)]
			if st == lineTooLong && int64(len(head)) < min(n-1, checkWhole) {
				// Read on from an earlier look, which kept none of it.
				head = append(f.scratch[:0], make([]byte, checkWhole)...)
				if _, err := f.rc.(io.ReaderAt).ReadAt(head, lineOff); err != nil {
					return progressed, fmt.Errorf("query: %s: %w", f.name, err)
				}
				f.scratch = head[:0]
			}
			sum = maphash.Bytes(f.seed, head)
		}
		if f.recheck >= 0 {
			// Reading again after a rollback: the lines before those
			// taken and still there were handled before.
			if e := &f.recent[f.recheck]; lineOff < e.off && lineOff+n <= e.off || lineOff == e.off && n == e.n && sum == e.sum {
				f.checkOnly(st, &l, perr)
				f.lastLinked = perr == nil
				if perr == nil {
					f.lastSeq, f.lastMAC = l.Seq, l.MAC
				}
				f.off += n
				f.partial, f.skipped = buf[:0], 0
				if lineOff == e.off {
					if f.recheck++; f.recheck == len(f.recent) {
						f.recheck = -1 // nothing changed after all
					}
				}
				continue
			}
			f.retract(f.recheck) // the first line that changed
		}
		if plain && f.recheck < 0 && len(f.recent) > 0 &&
			!(perr == nil && f.lastLinked && l.Seq == f.lastSeq+1 && l.Prev == f.lastMAC) {
			// A line that does not follow the last one taken, which may
			// still be rolled back: a read that spans a rollback reads the
			// start of a line from before it and the rest from after
			// (here: the middle of the line that took its place). Is the
			// last line taken still there?
			e := f.recent[len(f.recent)-1]
			same, err := f.intact(&e)
			if err != nil {
				return progressed, fmt.Errorf("query: %s: %w", f.name, err)
			}
			if !same {
				f.suspect = true
				f.partial = buf[:0]
				return progressed, f.rewind()
			}
		}
		if perr == nil && f.shown != nil {
			if mac, ok := f.shown[l.Seq]; ok {
				delete(f.shown, l.Seq)
				if mac != l.MAC {
					// The caller showed another record with this seq,
					// which the writer rolled back: this one took it.
					if l.Seq < f.p.lo {
						f.p.lo = l.Seq
					}
					if f.onRetracted != nil {
						f.onRetracted(f.name, []uint64{l.Seq})
					}
				}
			}
		}
		if perr == nil && f.notifier != nil && !f.done && l.Kind == "" && l.Seq >= f.p.lo && !f.p.empty && !f.committed(l.Seq, hi) {
			// A line to deliver that may still be rolled back: hold it
			// until the Notifier hears of it or the file is finished.
			if ev := (Event{Seq: l.Seq, File: f.name}); f.p.match(buf, &ev) {
				if !f.held || f.heldOff != lineOff {
					f.heldOff, f.heldAt = lineOff, time.Now()
				}
				f.held = true
				f.partial = buf[:0]
				return progressed, f.rewind()
			}
		}
		f.held = false
		f.off += n
		f.partial, f.skipped = buf[:0], 0
		progressed = true
		if f.ck.no%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return progressed, err
			}
		}
		e := seen{off: lineOff, n: n, sum: sum, seq: f.lastSeq + 1}
		f.lastLinked = perr == nil
		if perr == nil {
			e.seq, e.parsed, f.lastSeq, f.lastMAC = l.Seq, true, l.Seq, l.MAC
		}
		verified, ok := f.checkOnly(st, &l, perr)
		if st == lineTooLong && f.onUnreadable != nil {
			f.onUnreadable(f.name, fmt.Errorf("line %d (%d bytes): %w", f.ck.no, n-1, ErrLineTooLong))
		}
		var ev *Event
		if ok {
			if l.Kind == chain.RecClose {
				f.ended = true
			}
			if l.Kind == "" && !f.p.empty && !(f.done && l.Seq >= f.bound) {
				if l.Seq < f.p.lo {
					e.shown = true // the caller may have it (see OnRetracted)
				} else if ev = (&Event{Seq: l.Seq, File: f.name, Line: f.ck.no, Verified: verified}); !f.p.match(buf, ev) {
					ev = nil
				}
			}
		}
		if plain && (len(f.recent) > 0 || !e.parsed || !f.committed(e.seq, hi)) {
			e.shown = e.shown || ev != nil
			if len(f.recent) == maxRecent {
				f.recent = f.recent[:copy(f.recent, f.recent[maxRecent/2:])]
			}
			f.recent = append(f.recent, e)
		}
		if ev != nil {
			ev.Record = bytes.Clone(buf)
			if err := f.fn(*ev); err != nil {
				return progressed, err
			}
		}
	}
}

// checkOnly passes a line read to the checker.
func (f *follower) checkOnly(st lineStatus, l *chain.Line, perr error) (verified, ok bool) {
	if st == lineTooLong {
		f.ck.skip()
		return false, false
	}
	return f.ck.nextParsed(l, perr)
}

// rewind positions the reader of the plain file where the next drain
// starts: at the last line taken that is not known committed, to read it
// again (see lastUnchanged), or else after the last line taken (and the
// part read of a line too long).
func (f *follower) rewind() error {
	pos := f.off + f.skipped
	if len(f.recent) > 0 && f.recheck < 0 {
		pos = f.recent[len(f.recent)-1].off
	}
	if _, err := f.rc.(io.Seeker).Seek(pos, io.SeekStart); err != nil {
		return fmt.Errorf("query: %s: %w", f.name, err)
	}
	f.br.Reset(f.rc)
	return nil
}

// lastUnchanged reads the last line taken again and reports whether it is
// still there as it was, leaving the reader after it. The reader is at
// its start (rewind).
func (f *follower) lastUnchanged() (bool, error) {
	e := f.recent[len(f.recent)-1]
	if e.n > checkWhole {
		same, err := f.intact(&e)
		if same {
			if _, err := f.rc.(io.Seeker).Seek(e.off+e.n, io.SeekStart); err != nil {
				return false, err
			}
			f.br.Reset(f.rc)
		}
		return same, err
	}
	buf, n, st, err := readLine(f.br, f.scratch[:0], f.final, 0)
	f.scratch = buf[:0]
	if err != nil {
		return false, err
	}
	return st == lineOK && n == e.n && maphash.Bytes(f.seed, buf) == e.sum, nil
}

// intact reports whether the line e is still in the file as it was (a
// long line: its first checkWhole bytes and its length), reading it
// with ReadAt (the reader's position stays).
func (f *follower) intact(e *seen) (bool, error) {
	ra, ok := f.rc.(io.ReaderAt)
	if !ok {
		return true, nil
	}
	m := min(e.n-1, checkWhole) // bytes compared
	f.scratch = append(f.scratch[:0], make([]byte, m+1)...)
	head, nl := f.scratch[:m], f.scratch[m:m+1]
	var err error
	if e.n-1 <= checkWhole {
		_, err = ra.ReadAt(f.scratch[:m+1], e.off)
	} else if _, err = ra.ReadAt(head, e.off); err == nil {
		_, err = ra.ReadAt(nl, e.off+e.n-1)
	}
	if errors.Is(err, io.EOF) {
		return false, nil // shorter
	}
	if err != nil {
		return false, err
	}
	return nl[0] == '\n' && bytes.IndexByte(head, 0) < 0 && maphash.Bytes(f.seed, head) == e.sum, nil
}

// retract drops recent[i:], the lines taken that the writer rolled back
// (or that a file given up holds past the newer file's first seq), tells
// OnRetracted the seqs of the audit records among them that were shown,
// and makes the records that take their seqs deliverable.
func (f *follower) retract(i int) {
	seqs := f.retracts[:0]
	for _, e := range f.recent[i:] {
		if e.shown {
			seqs = append(seqs, e.seq)
		}
		delete(f.shown, e.seq) // reported here
		if e.parsed && e.seq < f.p.lo {
			f.p.lo = e.seq
		}
	}
	f.recent = f.recent[:i]
	f.recheck, f.lastLinked = -1, false
	if len(f.recent) > 0 {
		f.lastSeq = f.recent[len(f.recent)-1].seq
	}
	f.retracts = seqs[:0]
	if len(seqs) > 0 && f.onRetracted != nil {
		f.onRetracted(f.name, append([]uint64(nil), seqs...))
	}
}

// newer returns the path of the file after the current one, "" if none.
func (f *follower) newer() (string, error) {
	files, err := rotate.List(f.r.dir, f.r.prefix, f.r.ext)
	if err != nil {
		return "", fmt.Errorf("query: %w", err)
	}
	for _, path := range files {
		if chain.BaseName(path) > f.name {
			return path, nil
		}
	}
	return "", nil
}

// bound returns the seq of the first line of the file at path, below which
// the lines of the file before it are the chain's: known is false while
// that line is not complete. A file whose first line does not read or is
// not a sealed line (damage) bounds nothing.
func (r *Reader) bound(path string) (seq uint64, known bool) {
	if seq, ok := r.firstSeq(path); ok {
		return seq, true
	}
	rc, err := rotate.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false // renamed (compressed) or removed: look again
	}
	if err != nil {
		return math.MaxUint64, true
	}
	defer rc.Close()
	_, plain := rc.(io.Seeker)
	line, _, st, err := readLine(bufio.NewReaderSize(rc, 4096), nil, !plain, 0)
	switch {
	case st == lineEnd && err == nil && plain:
		return 0, false
	case st == lineOK:
		if l, err := chain.ParseLine(line); err == nil {
			return l.Seq, true // completed since firstSeq looked
		}
	}
	return math.MaxUint64, true
}

// openNext opens the file to read next: at the start, the one holding the
// seq after After; then the one after the current.
func (f *follower) openNext() (bool, error) {
	files, err := rotate.List(f.r.dir, f.r.prefix, f.r.ext)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // no directory yet
	}
	if err != nil {
		return false, fmt.Errorf("query: %w", err)
	}
	next := -1
	if f.name == "" {
		if len(files) > 0 {
			next = 0
		}
		for i := len(files) - 1; i > 0; i-- {
			if first, ok := f.r.firstSeq(files[i]); ok && first <= f.p.lo {
				next = i
				break
			}
		}
	} else {
		for i, path := range files {
			if chain.BaseName(path) > f.name {
				next = i
				break
			}
		}
	}
	if next < 0 {
		return false, nil
	}
	path := files[next]
	f.name, f.path = chain.BaseName(path), path
	rc, err := rotate.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil // removed (retention) since it was listed: on to the next
	}
	if err != nil {
		return false, fmt.Errorf("query: %w", err)
	}
	f.r.filesRead.Add(1)
	f.rc, f.br = rc, bufio.NewReaderSize(rc, 64<<10)
	f.ck, f.partial, f.skipped, f.ended, f.off = checker{r: f.r, path: path}, f.partial[:0], 0, false, 0
	f.recent, f.lastSeq, f.lastLinked, f.suspect, f.recheck, f.held = f.recent[:0], 0, false, false, -1, false
	_, plain := rc.(io.Seeker)
	f.final = next < len(files)-1 || !plain
	// A file is finished if it is compressed or a newer file exists; its
	// lines are the chain's below the newer file's first seq. Otherwise
	// it is the file being written (see Follow).
	f.done, f.bound = !plain, math.MaxUint64
	if next < len(files)-1 {
		if bound, known := f.r.bound(files[next+1]); known {
			f.done, f.bound = true, bound
		}
	}
	return true, nil
}

// committedHead returns head (Head's) or, if the line it names may not be
// committed yet, the newest seq known committed with n: the highest n
// heard of, or, if that is in an older file, the last before the newest
// file (a newer file exists for all the others).
func (r *Reader) committedHead(head uint64, n *Notifier) uint64 {
	hi := n.committed()
	if head <= hi {
		return head
	}
	files, err := rotate.List(r.dir, r.prefix, r.ext)
	if err != nil || len(files) == 0 {
		return head
	}
	first, ok := r.firstSeq(files[len(files)-1])
	if !ok || first > head {
		return head // the newest file holds no complete line: head is in a finished one
	}
	return max(hi, first-1)
}

// Head returns the seq of the newest sealed line in the directory, 0 when
// there is none: Follow with After set to it returns what is written from
// now on.
func (r *Reader) Head() (uint64, error) {
	files, err := rotate.List(r.dir, r.prefix, r.ext)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("query: %w", err)
	}
	for i := len(files) - 1; i >= 0; i-- {
		seq, err := lastSeq(files[i])
		if err != nil {
			return 0, err
		}
		if seq > 0 {
			return seq, nil
		}
	}
	return 0, nil
}

// lastSeq returns the seq of the last sealed line of the file at path (0:
// none, or the file is gone).
func lastSeq(path string) (uint64, error) {
	rc, err := rotate.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("query: %w", err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	var (
		buf  []byte
		last uint64
	)
	for {
		var st lineStatus
		buf, _, st, err = readLine(br, buf[:0], false, 0)
		if err != nil {
			return 0, fmt.Errorf("query: %s: %w", path, err)
		}
		if st == lineEnd {
			return last, nil
		}
		if st == lineTooLong {
			continue
		}
		if l, err := chain.ParseLine(buf); err == nil {
			last = l.Seq
		}
	}
}
