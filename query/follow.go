package query

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// Notifier wakes followers (Reader.Follow, the UI's streams) as soon as a
// record is written: pass it to the handler as a Sink
// (handler.Options.Sinks). Its Audit costs one atomic load while nobody
// follows. Without a Notifier, followers poll.
type Notifier struct {
	waiting atomic.Bool
	mu      sync.Mutex
	ch      chan struct{} // closed at the next record; nil when nobody waits
}

// NewNotifier returns a Notifier.
func NewNotifier() *Notifier { return &Notifier{} }

// Audit implements handler.Sink: it wakes whoever waits. It neither blocks
// nor keeps body.
func (n *Notifier) Audit(body []byte, pos chain.Position) {
	if n == nil || !n.waiting.Load() {
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
	// Notifier, if set, wakes Follow when a record is written.
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
	f := &follower{r: r, p: p, fn: fn, onUnreadable: opts.OnUnreadable}
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
		timer.Reset(poll)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-timer.C:
		}
	}
}

// follower is Follow's position: the file being read and how far.
type follower struct {
	r            *Reader
	p            *plan
	fn           func(Event) error
	onUnreadable func(string, error)

	name    string // sealed name of the current (or last) file; "" before the first
	rc      io.ReadCloser
	br      *bufio.Reader
	ck      checker
	partial []byte // an incomplete last line read so far (compressed files)
	skipped int64  // bytes read of an incomplete line longer than MaxLineBytes and not kept (readLine)
	off     int64  // plain files: offset after the last complete line
	ended   bool   // the current file has its close record
	final   bool   // the current file is no longer written (readLine)
}

func (f *follower) closeFile() {
	if f.rc != nil {
		f.rc.Close()
		f.rc = nil
	}
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
	if err != nil || progressed && !f.ended {
		return progressed, err
	}
	if !f.ended {
		// At the end of a file without a close record: the writer is still
		// on it, unless a newer file exists (the writer crashed or gave the
		// file up). A newer file is created only after the last line of
		// this one is written, so read once more before moving on.
		newer, err := f.newerExists()
		if err != nil || !newer {
			return false, err
		}
		f.final = true
		if _, err := f.drain(ctx); err != nil {
			return false, err
		}
	}
	f.closeFile()
	return true, nil
}

// drain reads the complete lines there are in the current file.
func (f *follower) drain(ctx context.Context) (bool, error) {
	progressed := false
	for {
		buf, n, st, err := readLine(f.br, f.partial, f.final, f.skipped)
		if err != nil {
			if _, plain := f.rc.(io.Seeker); !plain {
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
			if rs, ok := f.rc.(io.Seeker); ok {
				// A plain file may be preallocated: what the buffer read
				// after the last line may be NUL bytes written over since.
				// Read the rest again from the end of the last line, or,
				// in a line already too long, from where its reading
				// stopped (not all of it again at every look).
				f.skipped = 0
				if n > int64(maxLine) {
					f.skipped = n
				}
				if _, err := rs.Seek(f.off+f.skipped, io.SeekStart); err != nil {
					return progressed, fmt.Errorf("query: %s: %w", f.name, err)
				}
				f.br.Reset(f.rc)
				f.partial = buf[:0]
			} else {
				f.partial = buf // wait for the rest
				f.skipped = n - int64(len(buf))
			}
			return progressed, nil
		}
		f.off += n
		f.partial, f.skipped = buf[:0], 0
		progressed = true
		if st == lineTooLong {
			f.ck.skip()
			if f.onUnreadable != nil {
				f.onUnreadable(f.name, fmt.Errorf("line %d (%d bytes): %w", f.ck.no, n-1, ErrLineTooLong))
			}
			continue
		}
		if f.ck.no%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return progressed, err
			}
		}
		l, verified, ok := f.ck.next(buf)
		if !ok {
			continue
		}
		if l.Kind == chain.RecClose {
			f.ended = true
		}
		if l.Kind != "" || l.Seq < f.p.lo || f.p.empty {
			continue
		}
		ev := Event{Seq: l.Seq, File: f.name, Line: f.ck.no, Verified: verified}
		if !f.p.match(buf, &ev) {
			continue
		}
		ev.Record = bytes.Clone(buf)
		if err := f.fn(ev); err != nil {
			return progressed, err
		}
	}
}

// newerExists reports whether a file after the current one exists.
func (f *follower) newerExists() (bool, error) {
	files, err := rotate.List(f.r.dir, f.r.prefix, f.r.ext)
	if err != nil {
		return false, fmt.Errorf("query: %w", err)
	}
	return len(files) > 0 && chain.BaseName(files[len(files)-1]) > f.name, nil
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
	f.name = chain.BaseName(path)
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
	_, plain := rc.(io.Seeker)
	f.final = next < len(files)-1 || !plain
	return true, nil
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
