// Package rotate writes records to a directory of rotating files, durably.
//
// A [Writer] appends each record to the active file and rotates by size and by
// time, keeps a bounded number of old files, and compresses closed files in the
// background. Concurrent writers share a single write(2) and, with
// [SyncAlways], a single fsync (group commit), so durability costs one disk
// flush per batch rather than one per record.
//
// A [Framer] may wrap records as they are written; it is called by one
// goroutine at a time, in file order, and is told which bytes reached the file
// (Commit) and which did not (Rollback). That is what lets a caller keep
// per-file state, such as a hash chain, exactly in step with the file.
//
// The directory belongs to the Writer's user. New refuses one that others
// may change (owned by another user, or writable by its group or by
// others, sticky or not: see CheckDir), with an error that says how to fix
// it, unless Options.AllowSharedDir is set; it does not chmod it. And a
// Writer writes no file through a symbolic link: it creates files with
// O_EXCL|O_NOFOLLOW, removes a leftover temporary file rather than
// truncating it, and opens what it reads or locks there with O_NOFOLLOW.
//
// A Writer can warn before its disk is full: with Options.OnLowSpace it
// checks the free space of Dir's file system (statfs(2)) in the background
// — at start, after each rotation, per 4 MiB written, when a preallocated
// chunk no longer fits, and every minute, never on a writer's path — and
// calls OnLowSpace when it falls below
// Options.LowSpace (default: DefaultLowSpace).
package rotate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Policy says when written bytes are flushed to stable storage.
type Policy int

const (
	// SyncNone hands each record to the OS (write(2)) before WriteRecord
	// returns; the OS decides when it reaches the disk.
	SyncNone Policy = iota
	// SyncInterval is SyncNone plus an fsync every Options.SyncEvery when
	// anything was written since the last one.
	SyncInterval
	// SyncAlways fsyncs a record before WriteRecord returns. Concurrent
	// writers share one write and one fsync: while writers keep coming
	// back, a batch may wait for them for up to 300µs (less on disks
	// whose fsync is faster) before it is written; a lone writer never
	// waits.
	SyncAlways
)

// String returns "none", "interval" or "always".
func (p Policy) String() string {
	switch p {
	case SyncNone:
		return "none"
	case SyncInterval:
		return "interval"
	case SyncAlways:
		return "always"
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// ParsePolicy returns the Policy whose String is s, ignoring case.
func ParsePolicy(s string) (Policy, error) {
	for p := SyncNone; p <= SyncAlways; p++ {
		if strings.EqualFold(s, p.String()) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("rotate: unknown sync policy %q (want none, interval or always)", s)
}

// File is what a Writer needs of an open file. Options.OpenFile may supply
// one, for example to inject write errors in tests.
type File interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Framer frames records as they are written. A Writer calls it from one
// goroutine at a time (the group-commit leader), in file order, so an
// implementation needs no locking of its own and may keep per-file state.
//
// Every sequence of Open, Frame and Close calls is followed by exactly one
// Commit, if the bytes reached the file, or Rollback, if the file was
// truncated back to where it was before them.
type Framer interface {
	// Open appends to b the bytes that begin file name (a base name).
	// prev is the base name of the file written before it, without any
	// .gz suffix, or "" if there is none.
	Open(b []byte, name, prev string) []byte
	// Close appends to b the bytes that end file name. reason is "size",
	// "time", "rotate" (Writer.Rotate) or "close" (Writer.Close).
	Close(b []byte, name, reason string) []byte
	// Frame appends to b the framed form of rec; arg is what the caller
	// passed to WriteRecord.
	Frame(b []byte, rec []byte, arg any) []byte
	// Len reports how many bytes Frame would append for rec and arg now;
	// the Writer uses it only to decide a rotation by size.
	Len(rec []byte, arg any) int
	// Commit reports that everything framed since the last Commit or
	// Rollback was written (and synced, as the policy requires).
	Commit()
	// Rollback reports that it was not; the file no longer holds it.
	Rollback()
}

// Options configure a Writer. Only Dir is required.
type Options struct {
	Dir        string        // directory of the files; created 0700 if missing, refused if others may write it (see AllowSharedDir); files are 0600
	Prefix     string        // file name prefix; default "audit"
	Ext        string        // file name extension; default ".jsonl"
	MaxBytes   int64         // rotate before a record that would take the file past this; 0 = no limit
	Interval   time.Duration // rotate at the first write after each UTC multiple of Interval; 0 = never
	MaxBackups int           // keep at most this many files besides the active one; 0 = all
	// MaxAge, if positive, removes files whose records are all older than
	// this: a file goes when the next one started more than MaxAge ago.
	// Age is not taken from a clock that jumped: when the next file was
	// created by this Writer, its age is the monotonic time since then, so
	// no step of the clock (forward by 400 days, or a clock that was behind
	// when the Writer started and is set right later) ages it early or
	// keeps it late. For a file an earlier Writer created, "now" for
	// retention is the clock (Now), but never later than a baseline plus
	// the monotonic time elapsed since New, the baseline being the clock
	// at New or, if earlier, the time the newest existing file was last
	// written (its mtime). So a clock stepped forward while the Writer
	// runs (by a day, or 400 days) removes nothing before its time; nor
	// does one that is wrong when the Writer starts, while the newest
	// file was written under a right one. The cost: time the Writer was
	// down (between that file's last write and New) is not counted until
	// the next New, so files may stay that much longer than MaxAge. A
	// clock that was already wrong when the newest file was written is
	// believed. 0 = never.
	MaxAge   time.Duration
	Compress bool   // gzip closed files in the background
	Sync     Policy // when to fsync
	// Preallocate, if positive, grows each file by this many bytes at a
	// time with fallocate(2) and appends by copying into a shared memory
	// mapping of that space (Linux): the bytes reach the page cache, as
	// with write(2), but without a system call per batch. Under SyncAlways
	// it writes zeros over that space first and then appends with
	// pwrite(2) into it instead (each fsync would write-protect mapped
	// pages again), syncing with fdatasync(2), which then has neither a
	// file size nor extents to flush, only the data. Close cuts the unused
	// rest; after a crash it remains as NUL bytes, which readers treat as
	// unwritten. Where the file system has no room for a whole chunk
	// (ENOSPC, or EDQUOT for a quota), only what the write needs is
	// preallocated, rounded up to a page: a nearly full disk takes the
	// records that fit, and a write fails (as without preallocation, with
	// nothing partial left) only once those bytes do not fit either.
	// Ignored with OpenFile or where unsupported.
	Preallocate int64
	SyncEvery   time.Duration // fsync period for SyncInterval; default 1s

	// OnRotate, if set, is called from the background goroutine with the
	// path of each file the Writer stops writing to, before it is compressed:
	// after a rotation, and after abandoning a file it could not truncate
	// (see WriteRecord). Close waits for it, so it must not call Close.
	OnRotate func(closedPath string)
	// OnError, if set, is called from the background goroutine with errors
	// that have no caller to return to (compression, retention, the
	// SyncInterval fsync, closing a rotated file). It must not call Close.
	OnError func(error)
	// BeforeRemove, if set, is called from the background goroutine with
	// the path of each file retention is about to remove (oldest first),
	// e.g. to archive it or to record the removal. When it returns an error
	// the file is kept, the error goes to OnError, and no newer file is
	// removed in that round (quietly if the error wraps ErrClosed: after
	// Close the next Writer on the directory removes it). It may call
	// WriteRecord and Sync, but not Close.
	BeforeRemove func(path string) error
	// LowSpace is the free space, in bytes, below which the file system
	// holding Dir is low on space for OnLowSpace: free meaning available
	// to unprivileged users (statfs(2) f_bavail), as df shows it. 0 means
	// DefaultLowSpace of the file system's size (5 %, at least 1 GiB);
	// negative turns the checks off.
	LowSpace int64
	// OnLowSpace, if set, is called from the background goroutine when a
	// check finds less free space than LowSpace: when it falls below, then
	// not again until it has been back above the threshold plus 10 %, or
	// for an hour while it stays low. The Writer checks when it starts,
	// after each rotation (and the retention that follows), after every
	// 4 MiB written, when a Preallocate chunk no longer fits, and at least
	// every minute; at most once a second, and
	// never on a writer's path: a write only counts its bytes. Linux, the
	// BSDs and macOS; elsewhere it is never called. Close waits for it, so
	// it must not call Close; it may call WriteRecord.
	OnLowSpace func(Space)
	// Framer, if set, frames records; without one, each record is written
	// as given.
	Framer Framer
	// Now is the clock for file names, Interval and MaxAge (bounded by
	// monotonic time, see MaxAge); default time.Now.
	Now func() time.Time
	// OpenFile creates files; default os.OpenFile. It is passed O_EXCL
	// and, where the platform has it, O_NOFOLLOW.
	OpenFile func(name string, flag int, perm os.FileMode) (File, error)

	// AllowSharedDir lets New accept a Dir that is writable by its group
	// or by others (sticky or not), or owned by another user, which it
	// refuses by default with an error wrapping ErrUnsafeDir (see
	// CheckDir) rather than change its mode. Whoever may create entries
	// in Dir can put symbolic links there, and remove or replace the
	// files. A Writer follows no symbolic link in Dir either way: it
	// creates files with O_EXCL|O_NOFOLLOW, and a leftover temporary file
	// is removed, not truncated. But with this option set, everyone who
	// may write Dir can still delete or swap the trail's files (which
	// verification detects, but cannot undo): set it only where they are
	// all trusted.
	AllowSharedDir bool
}

func mapChunk(opts Options) int64 {
	if !mmapSupported || opts.Preallocate <= 0 || opts.OpenFile != nil {
		return 0
	}
	return opts.Preallocate
}

// ErrClosed is returned by operations on a closed Writer.
var ErrClosed = errors.New("rotate: writer closed")

// A Writer writes records to rotating files in one directory. It is safe for
// concurrent use. It never appends to a file it did not create, and never
// writes through a symbolic link: files are created with O_EXCL and
// O_NOFOLLOW (where the platform has it).
//
// File names are "<Prefix>-<UTC start time><Ext>" with the time formatted as
// 20060102T150405.000000000Z, so name order is creation order. With a
// Framer a file is created as soon as the previous one is closed (and by
// New); without one, when the first record for it is written.
//
// While it writes a file, a Writer holds an exclusive flock(2) on it
// (through a descriptor of its own, so also with Options.OpenFile, as long
// as the file is at its path; on Linux and the BSDs, including macOS;
// elsewhere none): taken when the file is created, before its first byte,
// and released when the file is finished (its Close frame written; a file
// abandoned because it could not be truncated keeps its lock until the
// next file exists, or Close). The lock costs nothing per record. It lets
// readers tell a live file from one a crashed Writer left, which has no
// Close frame and no newer file either but will never grow: see
// FileLocked.
type Writer struct {
	// Set by New, then read-only.
	dir        string
	prefix     string
	ext        string
	maxBytes   int64
	interval   time.Duration
	maxBackups int
	maxAge     time.Duration
	compress   bool
	policy     Policy
	onRotate   func(string)
	onError    func(error)
	beforeRm   func(path string) error
	mapChunk   int64       // Preallocate, when supported (files are mapped, or zeroed under SyncAlways)
	retainMu   sync.Mutex  // one retention pass at a time
	lowSpace   int64       // Options.LowSpace
	onLowSpace func(Space) // nil: no free-space checks
	statfs     func(string) (free, total uint64, err error)
	fr         Framer
	eager      bool // a Framer was given: create files at once, not at the first record
	now        func() time.Time
	openFile   func(string, int, os.FileMode) (File, error)
	// MaxAge's clock (ageNow): never ahead of ageBase, a wall time without
	// a monotonic reading, plus the time mono has advanced since monoBase.
	ageBase  time.Time
	mono     func() time.Time // monoNow
	monoBase time.Time
	bornMu   sync.Mutex
	born     map[string]time.Time // files this Writer created: mono() then (startedBefore)

	latest atomic.Pointer[string] // path of the file most recently created (Path)
	active atomic.Pointer[string] // path of the open file, nil if none (retention skips it)

	mu        sync.Mutex
	idle      sync.Cond // on mu; broadcast when the leader role is released and idleWait > 0
	idleWait  int       // goroutines waiting on idle for the leader role (Sync, Rotate, Close)
	closed    bool
	closeDone chan struct{}
	leading   bool   // some goroutine holds the leader role
	pend      *queue // records waiting for a leader
	spare     *queue // the other buffer, owned by nobody while no one leads
	next      uint64 // sequence number of the next record enqueued
	done      uint64 // every record numbered below done has its result
	fails     []failure
	expect    int          // SyncAlways: records the next batch is expected to carry (see gather)
	gathering bool         // a leader is in gather, polling npend
	npend     atomic.Int32 // len(pend.ends) while gathering, read by the leader without mu
	spaceReq  atomic.Bool  // a free-space check is asked for (askSpace)

	// Leader state: used only by the goroutine holding the leader role,
	// which it takes and releases under mu.
	f    File     // open file, nil if none
	lock *os.File // holds the exclusive flock on f's file (see lockFile); nil if none
	// abandoned holds the lock of a file abandoned by fail until the next
	// file exists (or Close): without a close record, only a newer file
	// tells readers that its tail is not part of the chain.
	abandoned *os.File
	name      string // its base name
	prev      string // base name of the file before it, for Framer.Open
	lastT     time.Time
	size      int64 // bytes in f known to be written
	nrec      int   // records in f
	opened    bool  // f holds its Open frame
	dirSynced bool  // f's directory entry is durable
	dirty     bool  // f has bytes written since its last fsync
	rotateAt  time.Time
	out       []byte        // bytes framed for f but not yet written (the segment)
	segOpen   bool          // out holds f's Open frame
	segRecs   int           // records in out
	framed    bool          // the Framer was called since its last Commit/Rollback
	one       queue         // writeAlone's record: the caller's own slice, not a copy
	syncEst   time.Duration // moving average of the fsync time of lead's batches, for gather
	spaceLeft int64         // bytes to write before the next free-space check is asked for
	timeSync  bool          // measure fsyncs for syncEst (not on the fast path)

	stopTick chan struct{}
	tickDone chan struct{}
	stopBg   chan struct{}
	bgDone   chan struct{}
	bgMu     sync.Mutex
	jobs     []job
	wake     chan struct{}
}

// queue holds enqueued records back to back in buf; ends[i] is the end of
// record i in buf. Two queues alternate so that writers can enqueue while a
// leader writes, without allocating.
//
// The writers of a queue's records wait on its cond, so that the end of a
// batch wakes only that batch's writers (broadcast), plus one writer of the
// next batch to lead it (signal), not everybody.
type queue struct {
	buf     []byte
	ends    []int
	args    []any
	cond    sync.Cond // on Writer.mu
	waiters int       // goroutines waiting on cond
}

// A failure is the result of records [lo, hi) whose write failed. It is
// dropped when all left waiters have collected it, so a waiter never sees
// the result of another batch.
type failure struct {
	lo, hi uint64
	err    error
	left   int
}

// New returns a Writer for opts. It starts a new file whose name sorts
// after every existing file of the Writer's in Dir, and applies retention
// and compression to those files in the background.
//
// New creates Dir (mode 0700) if it is missing. It refuses a Dir that users
// other than the process's may change (see CheckDir), before it writes
// anything there, unless Options.AllowSharedDir is set; it never changes
// the mode of an existing directory. The check is made once, by New.
//
// With a Framer, New creates the file and writes its Open frame at once, and
// so does Rotate for the next file: the Open and Close frames then bracket
// the Writer's whole life, records or not. Without one, a file is created
// with its first record, so that no empty files appear.
func New(opts Options) (*Writer, error) {
	if opts.Dir == "" {
		return nil, errors.New("rotate: Options.Dir is empty")
	}
	if opts.Prefix == "" {
		opts.Prefix = "audit"
	}
	if opts.Ext == "" {
		opts.Ext = ".jsonl"
	}
	chunk := mapChunk(opts) // before OpenFile gets its default
	if strings.ContainsAny(opts.Prefix+opts.Ext, `/\`) {
		return nil, fmt.Errorf("rotate: Prefix %q and Ext %q must not contain path separators", opts.Prefix, opts.Ext)
	}
	if opts.MaxBytes < 0 || opts.Interval < 0 || opts.MaxBackups < 0 || opts.MaxAge < 0 || opts.SyncEvery < 0 {
		return nil, errors.New("rotate: negative limit in Options")
	}
	if opts.Sync < SyncNone || opts.Sync > SyncAlways {
		return nil, fmt.Errorf("rotate: invalid %v", opts.Sync)
	}
	if opts.SyncEvery == 0 {
		opts.SyncEvery = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OpenFile == nil {
		opts.OpenFile = openOSFile
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	if opts.Framer == nil {
		opts.Framer = plain{}
	}
	if !opts.AllowSharedDir {
		// Before MkdirAll creates anything there.
		if err := checkParents(opts.Dir); err != nil {
			return nil, UnsafeDirError("rotate", err)
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	if !opts.AllowSharedDir {
		if err := CheckDir(opts.Dir); err != nil {
			return nil, UnsafeDirError("rotate", err)
		}
	}
	files, tmps, err := scan(opts.Dir, opts.Prefix, opts.Ext)
	if err != nil {
		return nil, err
	}
	w := &Writer{
		dir:        opts.Dir,
		prefix:     opts.Prefix,
		ext:        opts.Ext,
		maxBytes:   opts.MaxBytes,
		interval:   opts.Interval,
		maxBackups: opts.MaxBackups,
		maxAge:     opts.MaxAge,
		compress:   opts.Compress,
		policy:     opts.Sync,
		onRotate:   opts.OnRotate,
		onError:    opts.OnError,
		beforeRm:   opts.BeforeRemove,
		lowSpace:   opts.LowSpace,
		statfs:     statfs,
		spaceLeft:  spaceCheckBytes,
		mapChunk:   chunk,
		fr:         opts.Framer,
		eager:      opts.Framer != (plain{}),
		now:        opts.Now,
		openFile:   opts.OpenFile,
		closeDone:  make(chan struct{}),
		pend:       new(queue),
		spare:      new(queue),
		one:        queue{ends: make([]int, 1), args: make([]any, 1)},
		stopTick:   make(chan struct{}),
		tickDone:   make(chan struct{}),
		stopBg:     make(chan struct{}),
		bgDone:     make(chan struct{}),
		wake:       make(chan struct{}, 1),
	}
	if w.maxAge > 0 {
		w.ageBase = ageBase(opts.Now(), opts.Dir, files)
		w.mono = monoNow
		w.monoBase = w.mono()
		w.born = make(map[string]time.Time)
	}
	w.idle.L = &w.mu
	w.pend.cond.L = &w.mu
	w.spare.cond.L = &w.mu
	startup := job{tmps: tmps, retain: true}
	if n := len(files); n > 0 {
		w.prev = files[n-1].base
		w.lastT = files[n-1].start
	}
	if w.compress {
		for _, f := range files {
			if f.plain {
				startup.old = append(startup.old, f.base)
			}
		}
	}
	if opts.OnLowSpace != nil && opts.LowSpace >= 0 && spaceSupported {
		w.onLowSpace = opts.OnLowSpace
		w.spaceReq.Store(true) // the first check, as the background goroutine starts
	}
	w.post(startup)
	go w.background()
	if w.policy == SyncInterval {
		go w.ticker(opts.SyncEvery)
	} else {
		close(w.tickDone)
	}
	if w.eager {
		if err := w.control(opStart); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

func openOSFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a nil *os.File in a non-nil File
	}
	return f, nil
}

// Write writes p as one record: it is WriteRecord(p, nil).
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.WriteRecord(p, nil); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteRecord writes rec as one record, passing arg to Framer.Frame. It
// returns once the record has been written (and synced, under SyncAlways),
// or with the error that kept it from the file. rec is copied, so the caller
// may reuse it at once.
//
// Records written concurrently are written together, with one write(2) per
// file. If that write or its fsync fails, every record in it gets the error,
// which wraps the OS error, and the file is truncated back to where it was,
// so that a later record never follows a partial one. If even the truncation
// fails, the file is abandoned: closed as it is, with the next record
// starting a new file.
func (w *Writer) WriteRecord(rec []byte, arg any) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	if !w.leading && len(w.pend.ends) == 0 && w.expect <= 1 {
		return w.writeAlone(rec, arg)
	}
	q := w.pend
	q.buf = append(q.buf, rec...)
	q.ends = append(q.ends, len(q.buf))
	q.args = append(q.args, arg)
	if w.gathering {
		w.npend.Store(int32(len(q.ends)))
	}
	seq := w.next
	w.next++
	for w.done <= seq {
		if w.leading {
			q.waiters++
			q.cond.Wait()
			q.waiters--
		} else {
			w.lead(opWrite)
		}
	}
	err := w.result(seq)
	w.mu.Unlock()
	return err
}

// writeAlone is WriteRecord's fast path, taken when there is no leader,
// nothing is pending and, under SyncAlways, no other writer is expected to
// join the batch (see gather). The caller takes the leader role and writes rec
// as a batch of its own, framed straight from its slice: no copy into the
// queue, no failure bookkeeping, and no wake-up unless someone started
// waiting meanwhile. Records enqueued meanwhile are numbered, and so framed,
// after rec.
//
// It is called with mu held and returns with mu released.
func (w *Writer) writeAlone(rec []byte, arg any) error {
	w.leading = true
	w.next++
	end := w.next
	w.mu.Unlock()

	w.timeSync = false
	q := &w.one
	q.buf = rec
	q.ends[0] = len(rec)
	q.args[0] = arg
	failAt, err, _ := w.flush(q, opWrite)
	q.buf = nil // the caller's, and it may reuse it once we return
	q.args[0] = nil

	w.mu.Lock()
	w.done = end
	w.batchDone(1)
	w.release()
	w.mu.Unlock()
	if failAt == 0 {
		return err
	}
	return nil
}

// result returns the error, if any, for record seq, whose batch is done.
func (w *Writer) result(seq uint64) error {
	for i := range w.fails {
		f := &w.fails[i]
		if f.lo <= seq && seq < f.hi {
			err := f.err
			if f.left--; f.left == 0 {
				w.fails = append(w.fails[:i], w.fails[i+1:]...)
			}
			return err
		}
	}
	return nil
}

// Rotate closes the current file (Framer.Close reason "rotate"). With a
// Framer it starts the next file at once; without one the next record does.
func (w *Writer) Rotate() error { return w.control(opRotate) }

// Retain applies MaxBackups and MaxAge now, in the caller's goroutine,
// rather than after the next rotation in the background; e.g. before Close,
// so that BeforeRemove can still write. Errors go to OnError.
func (w *Writer) Retain() { w.retain() }

// Sync writes any enqueued records and fsyncs the current file.
func (w *Writer) Sync() error { return w.control(opSync) }

// Close writes any enqueued records, ends the current file (Framer.Close
// reason "close"), fsyncs and closes it, and waits for background work to
// finish. Later writes return ErrClosed; later calls to Close return nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.closeDone
		return nil
	}
	w.closed = true
	for w.leading {
		w.waitIdle()
	}
	err := w.lead(opClose)
	w.mu.Unlock()

	// The ticker may post an error, so the background goroutine outlives it.
	close(w.stopTick)
	<-w.tickDone
	close(w.stopBg)
	<-w.bgDone
	close(w.closeDone)
	return err
}

// Path returns the path of the file most recently created: the one being
// written, or, after Rotate or Close, the one just closed. It is "" until the
// first file is created.
func (w *Writer) Path() string {
	if p := w.latest.Load(); p != nil {
		return *p
	}
	return ""
}

// control runs op as the leader, after waiting for any current leader.
func (w *Writer) control(op op) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.leading && !w.closed {
		w.waitIdle()
	}
	if w.closed {
		return ErrClosed
	}
	return w.lead(op)
}

// lead takes the leader role and the pending queue, writes the queue and
// performs op without holding mu, then publishes the results and wakes the
// waiters. It is called with mu held and no leader.
func (w *Writer) lead(op op) error {
	w.leading = true
	if op == opWrite && len(w.pend.ends) < w.expect {
		w.gather()
	}
	q := w.pend
	w.pend, w.spare = w.spare, nil
	end := w.next
	w.mu.Unlock()

	w.timeSync = w.policy == SyncAlways
	failAt, err, opErr := w.flush(q, op)
	n := len(q.ends)
	q.buf = q.buf[:0]
	q.ends = q.ends[:0]
	clear(q.args) // drop references to the callers' args
	q.args = q.args[:0]

	w.mu.Lock()
	if failAt < n {
		w.fails = append(w.fails, failure{lo: end - uint64(n-failAt), hi: end, err: err, left: n - failAt})
	}
	w.done = end
	if n > 0 {
		w.batchDone(n)
	}
	w.spare = q
	if q.waiters > 0 {
		q.cond.Broadcast()
	}
	w.release()
	return opErr
}

// release gives up the leader role. It wakes one writer of a pending record,
// to lead the next batch, and every goroutine waiting to run an op. It is
// called with mu held.
func (w *Writer) release() {
	w.leading = false
	if w.pend.waiters > 0 {
		w.pend.cond.Signal()
	}
	if w.idleWait > 0 {
		w.idle.Broadcast()
	}
}

// waitIdle waits on idle, with mu held, for the leader role to be released.
func (w *Writer) waitIdle() {
	w.idleWait++
	w.idle.Wait()
	w.idleWait--
}

// batchDone notes, with mu held, that a batch of n records has ended: under
// SyncAlways, the next batch is expected to carry its n writers, who come back
// with their next records, plus the writers already waiting.
func (w *Writer) batchDone(n int) {
	if w.policy == SyncAlways {
		w.expect = n + len(w.pend.ends)
	}
}

// Bounds of the gather window.
const (
	gatherMax   = 300 * time.Microsecond // never longer than this
	gatherQuiet = 100 * time.Microsecond // nor longer than this without a new record
)

// gather lets a SyncAlways leader wait briefly for records before it takes
// the queue, so that they share its fsync instead of waiting for the next one
// (PostgreSQL's commit_delay, MySQL's binlog_group_commit_sync_delay).
// Without it, concurrent writers split into two cohorts that take turns: the
// writers released by one batch come back only after the next leader has
// taken the queue, and every fsync carries about half of them.
//
// It waits until w.expect records are pending (the writers of the last batch
// and those who were already waiting), until no record came for gatherQuiet,
// or for at most min(gatherMax, half the usual fsync time). A lone writer
// never gets here: w.expect is 1 after its batch.
//
// It polls, yielding the processor to the writers it waits for, rather than
// sleeping, because a timer shorter than a millisecond fires a millisecond
// late when the process is otherwise idle. Polling also keeps the other
// processor from going idle while its writers return: on the project's
// 2-vCPU guest waking an idle one costs the waker ~20µs (a futex call) and
// the woken one ~100µs before it runs anything, so a leader that blocked
// until the last writer signalled it measured longer gathers (80 vs 48µs).
// It does not frame the records that have arrived meanwhile: that moved
// ~25µs of framing into the gather but made it ~35µs longer (the writers
// it waits for need the same processors), no net gain.
//
// It is called with mu held and the leader role taken, and releases mu while
// it waits.
func (w *Writer) gather() {
	limit := min(gatherMax, w.syncEst/2)
	if limit <= 0 {
		return
	}
	target := int32(w.expect)
	w.gathering = true
	n := int32(len(w.pend.ends))
	w.npend.Store(n)
	w.mu.Unlock()
	start := time.Now()
	last := start
	for n < target {
		runtime.Gosched()
		now := time.Now()
		if m := w.npend.Load(); m != n {
			n, last = m, now
		}
		if now.Sub(start) >= limit || now.Sub(last) >= gatherQuiet {
			break
		}
	}
	w.mu.Lock()
	w.gathering = false
}

// plain is the Framer used when Options.Framer is nil.
type plain struct{}

func (plain) Open(b []byte, _, _ string) []byte  { return b }
func (plain) Close(b []byte, _, _ string) []byte { return b }
func (plain) Frame(b, rec []byte, _ any) []byte  { return append(b, rec...) }
func (plain) Len(rec []byte, _ any) int          { return len(rec) }
func (plain) Commit()                            {}
func (plain) Rollback()                          {}
