package chain

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/internal/jsonenc"
	"github.com/slogaudit/slogaudit/rotate"
)

// Default file naming, shared with rotate's defaults.
const (
	DefaultPrefix = "audit"
	DefaultExt    = ".jsonl"
)

// DefaultPreallocate is the Rotate.Preallocate a Writer uses unless told
// otherwise (negative: off): records are appended to memory-mapped,
// preallocated files, which costs no system call per record (under
// SyncAlways: with pwrite(2) into zeroed preallocated space, whose
// fdatasync(2) then flushes only data).
const DefaultPreallocate = 4 << 20

// Options configure a Writer.
type Options struct {
	// Key is the initial 32-byte MAC key K(0). Nil (and no KeyFile) seals
	// with plain SHA-256, which anyone can recompute: see FORMAT.md for what
	// that does not protect.
	Key []byte
	// KeyFile makes the key forward-secure: the file holds the key of the
	// current epoch (a KeyState; initially K(0) as WriteKeyFile writes it),
	// and the Writer replaces it with the next epoch's key at the end of every
	// epoch, erasing the old one. Keep a copy of K(0) offline before the
	// first use: only K(0) verifies every epoch. Excludes Key.
	//
	// The Writer creates KeyFile.tmp next to it and renames it over
	// KeyFile, so it needs to write the key file's directory. Open
	// refuses a key file that is a symbolic link (the Writer would replace
	// the link and leave the old key at its target: name the file itself),
	// that is not a regular file, or that another user owns, and a
	// directory that others may change, as rotate.CheckDir reports it
	// (unless AllowSharedKeyDir).
	KeyFile string
	// AllowSharedKeyDir lets Open accept a KeyFile whose directory is
	// writable by its group or by others, or owned by another user. Whoever
	// may create entries there can put symbolic links where the Writer
	// writes and erases keys (it follows none: it creates KeyFile.tmp with
	// O_EXCL|O_NOFOLLOW and erases only regular files of its user), but
	// can also delete the key file or swap it for one of theirs, which the
	// next Open would take as the chain's key: set it only where all of
	// them are trusted.
	AllowSharedKeyDir bool
	// Checkpoints configures epochs and signed checkpoints.
	Checkpoints CheckpointOptions
	// Archive, if set, receives each file that retention (Rotate.MaxBackups,
	// Rotate.MaxAge) is about to remove; an error keeps the file. Before a
	// file is removed the Writer seals a pruned record naming it, so that
	// verification reports GAP (pruned) rather than MISSING.
	Archive func(path string) error
	// Rotate configures the files: Dir is required; Framer and BeforeRemove
	// are set by Open. Open refuses a Dir that others may change before it
	// reads or writes anything there, unless Rotate.AllowSharedDir (see
	// rotate.New).
	Rotate rotate.Options
	// Now stamps open, close and checkpoint records; default Rotate.Now,
	// then time.Now.
	Now func() time.Time
}

// CheckpointOptions configure epochs and checkpoints. An epoch ends with a
// checkpoint line after Every lines, after Interval if it holds any line,
// and with every close record (rotation and Close). The key evolves at
// each epoch's end; with a Signer, each end is also signed as a note,
// appended to the checkpoints file in the directory and passed to
// OnCheckpoint, e.g. to export it off the host.
type CheckpointOptions struct {
	// Signer signs checkpoints (golang.org/x/mod/sumdb/note, ed25519; see
	// GenerateSigner and ReadSignerFile). Nil: epochs and checkpoint lines,
	// but no notes.
	Signer note.Signer
	// Origin is the first line of every note; default "slogaudit/<host>".
	Origin string
	// Every is the number of lines after which an epoch ends; default
	// 1000, negative for no limit.
	Every int
	// Interval is the longest an epoch holding lines lasts; default 10s,
	// negative for no limit.
	Interval time.Duration
	// OnCheckpoint is called, from a background goroutine and in order,
	// with each checkpoint once its line, the evolved key and its note are
	// durable. It must not call Close.
	OnCheckpoint func(Checkpoint)
	// OnError receives errors of the background work (fsync, key file,
	// checkpoints file, pruning); default none.
	OnError func(error)
}

// Defaults of CheckpointOptions.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Second
)

// A Writer appends sealed records to a directory of chained files. It is
// safe for concurrent use; the chain order is the order in which Append
// calls reach the underlying writer's queue.
type Writer struct {
	w        *rotate.Writer
	dir      string
	prefix   string // file names, as rotate.Options.Prefix and Ext
	ext      string
	keyFile  string
	ckptPath string
	signer   note.Signer
	origin   string
	interval time.Duration
	now      func() time.Time
	onCkpt   func(Checkpoint)
	onError  func(error)
	archive  func(string) error

	ready    chan struct{} // closed once w is set
	settleMu sync.Mutex    // one settle at a time: notes chain in order
	mu       sync.Mutex
	ends     []Checkpoint    // committed epoch ends not yet settled
	pruned   map[string]bool // files retention removed (BaseName), under mu
	// lastPruned: the pruned record this Writer sealed last, under mu.
	lastPruned PrunedInfo
	key        KeyState // newest committed key to persist; Key nil: none
	curKey     KeyState // the committed key in use, for CurrentKey
	// keys of ended epochs whose checkpoints are not settled yet: until a
	// signed digest vouches for an epoch, only its key can (EpochKey).
	unsettled map[uint64]heldKey
	lines     int // lines of the current epoch, as committed
	lastEnd   time.Time
	prevNote  [sha256.Size]byte
	// lastNote: the seq of the last note synced to the checkpoints file,
	// which each open record names (last_note).
	lastNote  atomic.Uint64
	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	startErr  error // reported through OnError once the Writer runs
	hole      *Hole // what resume found in the newest file
}

// Open resumes the chain in opts.Rotate.Dir (reading the tail of its newest
// file) or starts a new one, and opens a new file that continues it.
//
// Open refuses to continue a chain sealed with another algorithm or key, one
// whose last record does not verify, and one that ends before what the key
// file or the checkpoints file has seen: continuing it would fork the chain,
// bless a tampered tail or hide lost records.
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
	if ro.Preallocate == 0 {
		// Under SyncAlways rotate zeroes preallocated space and writes it
		// with pwrite(2) rather than through a mapping: each fdatasync(2)
		// then flushes only data (see rotate.Options.Preallocate).
		ro.Preallocate = DefaultPreallocate
	}
	if !ro.AllowSharedDir {
		// Before resume writes there (it trims torn tails). rotate.New
		// checks it again, after creating it if it is missing.
		if err := rotate.CheckDir(ro.Dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, rotate.UnsafeDirError("chain", err)
		}
	}
	var ks KeyState
	switch {
	case opts.KeyFile != "" && opts.Key != nil:
		return nil, errors.New("chain: set Options.Key or Options.KeyFile, not both")
	case opts.KeyFile != "":
		if err := checkKeyFile(opts.KeyFile, opts.AllowSharedKeyDir); err != nil {
			return nil, err
		}
		var err error
		if ks, err = ReadKeyState(opts.KeyFile); err != nil {
			return nil, err
		}
	case opts.Key != nil:
		if len(opts.Key) != KeySize {
			return nil, fmt.Errorf("chain: key must be %d bytes, got %d", KeySize, len(opts.Key))
		}
		ks = NewKeyState(opts.Key)
	}
	now := opts.Now
	if now == nil {
		now = ro.Now
	}
	if now == nil {
		now = time.Now
	}
	co := opts.Checkpoints
	if co.Every == 0 {
		co.Every = DefaultCheckpointEvery
	}
	if co.Interval == 0 {
		co.Interval = DefaultCheckpointInterval
	}
	if co.Origin == "" {
		host, _ := os.Hostname()
		co.Origin = "slogaudit/" + host
	}
	w := &Writer{
		dir: ro.Dir, prefix: ro.Prefix, ext: ro.Ext, keyFile: opts.KeyFile, ckptPath: filepath.Join(ro.Dir, CheckpointsFileName(ro.Prefix)),
		signer: co.Signer, origin: co.Origin, interval: co.Interval, now: now,
		onCkpt: co.OnCheckpoint, onError: co.OnError, archive: opts.Archive,
		ready: make(chan struct{}),
		wake:  make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if w.onError == nil {
		w.onError = func(error) {}
	}
	ks0 := ks // the key as read: the earliest epoch this writer can check
	rs, err := resume(ro.Dir, ro.Prefix, ro.Ext, ks, w.ckptPath)
	if err != nil {
		return nil, err
	}
	if ks.Key != nil {
		if ks, err = ks.At(rs.head.epoch); err != nil {
			return nil, err
		}
	}
	w.prevNote = rs.prevNote
	if w.hole = rs.hole; w.hole != nil {
		w.startErr = errors.Join(w.startErr, fmt.Errorf("chain: power loss: %s", w.hole))
	}
	if w.signer != nil {
		var refused int
		w.ends, refused = vouchable(rs.unsigned, ks0)
		if refused > 0 {
			w.startErr = fmt.Errorf("chain: %d epoch end(s) after the last note in %s were not signed: their lines cannot be checked with the key this writer holds (was the checkpoints file cut? run auditctl verify)", refused, ro.Dir)
		}
	}
	if ks.Key != nil {
		// This writer's own lines are all sealed with this key at least.
		w.curKey = KeyState{ID: ks.ID, Epoch: ks.Epoch, Key: bytes.Clone(ks.Key), From: rs.head.seq + 1}
	}
	every := max(co.Every, 0)
	s := newSealer(ks, every, now, rs.head)
	s.sync = ro.Sync.String()
	s.onCommit = w.committed
	w.lastNote.Store(rs.lastNote)
	s.lastNote = &w.lastNote
	w.lastEnd = now()
	ro.Framer = s
	ro.BeforeRemove = w.beforeRemove
	rw, err := rotate.New(ro)
	w.w = rw
	close(w.ready)
	if err != nil {
		return nil, err
	}
	go w.keep()
	if len(w.ends) > 0 {
		w.poke()
	}
	return w, nil
}

// checkKeyFile checks the key file a Writer is to evolve, and its
// directory, where the Writer creates path.tmp and renames it over path:
// see Options.KeyFile.
func checkKeyFile(path string, allowSharedDir bool) error {
	dir := filepath.Dir(path)
	if !allowSharedDir {
		if err := rotate.CheckDir(dir); rotate.IsSharedDir(err) {
			// Shared by design: rotate advises a subdirectory already.
			return fmt.Errorf("chain: key file directory: %w, and keep the key file there; chain.Options.AllowSharedKeyDir accepts %s as it is", err, dir)
		} else if errors.Is(err, rotate.ErrUnsafeDir) {
			return fmt.Errorf("chain: key file directory: %w; or keep the key file in a directory of the writer's own; chain.Options.AllowSharedKeyDir accepts it as it is", err)
		} else if err != nil {
			return fmt.Errorf("chain: key file directory: %w", err)
		}
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("chain: read key: %w; create one with auditctl keygen -o %s (and copy it offline first: it is K(0), which verifies every epoch)", err, path)
	} else if err != nil {
		return fmt.Errorf("chain: read key: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		to, _ := os.Readlink(path)
		return fmt.Errorf("chain: key file %s is a symbolic link (to %s): the writer replaces its key file at every epoch by renaming a new file over it, which would replace the link and leave the old key at its target; set KeyFile to the file itself", path, to)
	}
	if err := checkOwnFile(path, fi, true); err != nil {
		return fmt.Errorf("chain: key file: %w", err)
	}
	return nil
}

// Append seals body (JSON object members without the braces, e.g.
// `"msg":"hi","a":1`) as the next record and writes it as the durability
// policy requires. When pos is not nil it receives the record's position.
// The error is the write's: on error the record is not in the file.
//
// Append refuses, with an error wrapping ErrBadBody and writing nothing, a
// body that starts with a "rec" member the format reserves (open, close,
// checkpoint, pruned: FORMAT.md §4) or that holds a newline or a NUL byte
// (which would end the line, or the file's content): sealed, it would make
// the honest trail fail verification.
func (w *Writer) Append(body []byte, pos *Position) error {
	if err := checkBody(body); err != nil {
		return err
	}
	if pos == nil {
		return w.w.WriteRecord(body, nil)
	}
	return w.w.WriteRecord(body, pos)
}

// ErrBadBody is returned by Append for a body it refuses to seal.
var ErrBadBody = errors.New("chain: body cannot be sealed as an audit record")

// reservedRec is how a body that ParseLine would take for a record of a
// reserved kind starts (it classifies by prefix: `"rec":"openx"` is one).
var reservedRec = [...][]byte{recOpenMember[1:], recCloseMember[1:], recCheckpointMember[1:], recPrunedMember[1:]}

// checkBody is Append's check, on the hot path of every record: two
// IndexByte scans (vectorised), and the reserved prefixes only for a body
// that starts with a "rec" member.
func checkBody(body []byte) error {
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		return fmt.Errorf("%w: a raw newline at byte %d (JSON escapes it as \\n)", ErrBadBody, i)
	}
	if i := bytes.IndexByte(body, 0); i >= 0 {
		return fmt.Errorf("%w: a NUL byte at byte %d (JSON escapes it as \\u0000)", ErrBadBody, i)
	}
	if len(body) > 6 && body[1] == 'r' && bytes.HasPrefix(body, []byte(`"rec":"`)) {
		for _, r := range reservedRec {
			if bytes.HasPrefix(body, r[:len(r)-1]) { // without the closing quote
				return fmt.Errorf("%w: it starts with %s, a record kind the chain reserves", ErrBadBody, r)
			}
		}
	}
	return nil
}

// Checkpoint ends the current epoch now, if it holds any line, and waits
// until the checkpoint is settled (line synced, key evolved on disk, note
// appended and passed to OnCheckpoint).
func (w *Writer) Checkpoint() error {
	if err := w.w.WriteRecord(nil, checkpointReq{}); err != nil {
		return err
	}
	return w.settle()
}

// CurrentKey returns a copy of the key of the current epoch, so that the
// process can verify what it wrote in this epoch (e.g. as
// VerifyOptions.KeyAt). It reports false for an unkeyed chain.
func (w *Writer) CurrentKey() (KeyState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.curKey.Key == nil {
		return KeyState{}, false
	}
	return KeyState{ID: w.curKey.ID, Epoch: w.curKey.Epoch, Key: bytes.Clone(w.curKey.Key), From: w.curKey.From}, true
}

// heldKey is the key of an ended epoch whose checkpoint is not settled
// yet, and the first seq it sealed.
type heldKey struct {
	key  []byte
	from uint64
}

// EpochKey returns a copy of the key of epoch e if the Writer still holds
// it: the current epoch's, and those of ended epochs until their
// checkpoints are settled (signed, with the digest that vouches for their
// lines from then on). Forward security keeps no other. from is the first
// seq the key sealed: a line before it that verifies with the key was
// re-sealed by someone holding the key, claiming a later epoch than its
// own, and must not be taken as verified.
func (w *Writer) EpochKey(e uint64) (key []byte, from uint64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.curKey.Key != nil && w.curKey.Epoch == e {
		return bytes.Clone(w.curKey.Key), w.curKey.From, true
	}
	if k, ok := w.unsettled[e]; ok {
		return bytes.Clone(k.key), k.from, true
	}
	return nil, 0, false
}

// forget drops the keys of settled epochs.
func (w *Writer) forget(ends []Checkpoint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range ends {
		if k, ok := w.unsettled[c.Epoch]; ok {
			clear(k.key)
			delete(w.unsettled, c.Epoch)
		}
	}
}

// Rotate closes the current file with a close record and starts a new one.
func (w *Writer) Rotate() error { return w.w.Rotate() }

// Hole returns the Hole that Open found in the newest file when it resumed
// the chain, or nil.
func (w *Writer) Hole() *Hole {
	if w.hole == nil {
		return nil
	}
	h := *w.hole
	return &h
}

// Sync flushes the current file to stable storage.
func (w *Writer) Sync() error { return w.w.Sync() }

// Close writes a close record (which ends the epoch), syncs and closes the
// file, and settles the last checkpoint. It is idempotent; Append after
// Close returns an error wrapping rotate.ErrClosed.
func (w *Writer) Close() error {
	w.w.Retain() // while pruned records can still be written
	err := w.w.Close()
	w.closeOnce.Do(func() { close(w.stop) })
	<-w.done
	return err
}

// Path returns the path of the file being written.
func (w *Writer) Path() string { return w.w.Path() }

// committed is the sealer's Commit hook, called by the leader.
func (w *Writer) committed(ends []Checkpoint, ks KeyState, lines int) {
	w.mu.Lock()
	w.lines = lines
	if len(ends) > 0 {
		w.ends = append(w.ends, ends...)
		from := w.curKey.From // of the first epoch that ended
		for _, c := range ends {
			if c.key != nil {
				if w.unsettled == nil {
					w.unsettled = make(map[uint64]heldKey)
				}
				w.unsettled[c.Epoch] = heldKey{c.key, from}
			}
			from = c.Seq + 1
		}
		if ks.Key != nil {
			clear(w.key.Key)
			clear(w.curKey.Key)
			w.key = ks
			w.curKey = KeyState{ID: ks.ID, Epoch: ks.Epoch, Key: bytes.Clone(ks.Key), From: ends[len(ends)-1].Seq + 1}
		}
		w.lastEnd = w.now()
	}
	w.mu.Unlock()
	if len(ends) > 0 {
		w.poke()
	}
}

func (w *Writer) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// keep settles epoch ends and ends epochs by Interval, until Close.
func (w *Writer) keep() {
	defer close(w.done)
	w.report(w.startErr)
	var tick <-chan time.Time
	if w.interval > 0 {
		t := time.NewTicker(min(w.interval, time.Second))
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-w.wake:
			w.report(w.settle())
		case <-tick:
			w.mu.Lock()
			due := w.lines > 0 && w.now().Sub(w.lastEnd) >= w.interval
			w.mu.Unlock()
			if due {
				if err := w.w.WriteRecord(nil, checkpointReq{}); err != nil && !errors.Is(err, rotate.ErrClosed) {
					w.onError(err)
				}
			}
		case <-w.stop:
			w.report(w.settle())
			return
		}
	}
}

func (w *Writer) report(err error) {
	if err != nil {
		w.onError(err)
	}
}

// settle makes the committed epoch ends durable in order: the files holding
// their lines are synced before the key file moves past their epochs (a
// crash must never leave an evolved key with the epoch's end unwritten);
// then the notes are signed and appended, then passed on.
func (w *Writer) settle() error {
	w.settleMu.Lock()
	defer w.settleMu.Unlock()
	w.mu.Lock()
	ends, ks := w.ends, w.key
	w.ends, w.key = nil, KeyState{}
	w.mu.Unlock()
	if len(ends) == 0 {
		return nil
	}
	for i := range ends {
		ends[i].hashText()
	}
	// On failure the ends go back, to be settled on the next try: a note
	// is never skipped, and the chain of notes never names one that was
	// not written.
	retry := func(err error) error {
		w.mu.Lock()
		w.ends = append(ends, w.ends...)
		if w.key.Key == nil {
			w.key = ks
		}
		w.mu.Unlock()
		return err
	}
	if w.keyFile != "" || w.signer != nil {
		synced := ""
		for _, c := range ends {
			if c.File == synced {
				continue
			}
			if err := syncFile(filepath.Join(w.dir, c.File)); err != nil {
				// Retention may remove a file before the end of its last
				// epoch is settled (a pruned record accounts for it):
				// there is nothing left to sync.
				if !errors.Is(err, fs.ErrNotExist) || !w.wasPruned(c.File) {
					return retry(fmt.Errorf("chain: checkpoint: %w", err))
				}
			}
			synced = c.File
		}
	}
	// The notes before the key file moves on: a crash in between leaves a
	// key the next writer evolves forward, never an epoch whose key is gone
	// without its note.
	if w.signer != nil {
		prev := w.prevNote
		for i := range ends {
			ends[i].Origin, ends[i].Prev = w.origin, prev
			if err := ends[i].Sign(w.signer); err != nil {
				return retry(err)
			}
			prev = ends[i].NoteHash()
		}
		if err := appendCheckpoints(w.ckptPath, ends); err != nil {
			return retry(fmt.Errorf("chain: checkpoints file: %w", err))
		}
		w.prevNote = prev
		if len(ends) > 0 {
			w.lastNote.Store(ends[len(ends)-1].Seq) // synced: the next open record may name it
		}
	}
	if w.keyFile != "" && ks.Key != nil {
		if err := WriteKeyState(w.keyFile, ks); err != nil {
			w.mu.Lock()
			if w.key.Key == nil {
				w.key = ks // tried again at the next epoch's end, or at Close
			}
			w.mu.Unlock()
			w.forget(ends)
			return err
		}
		clear(ks.Key)
	}
	w.forget(ends)
	if w.onCkpt != nil {
		for _, c := range ends {
			w.onCkpt(c)
		}
	}
	return nil
}

// syncFile fsyncs path, or its compressed copy (already synced) if the
// plain file is gone.
func syncFile(path string) error {
	f, err := openFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if _, gzErr := os.Stat(path + ".gz"); gzErr == nil {
			return nil
		}
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// beforeRemove is rotate's BeforeRemove: archive the file, then seal and
// sync a pruned record naming it and its last line, so that the chain
// itself accounts for the removal before it happens.
func (w *Writer) beforeRemove(path string) error {
	if <-w.ready; w.w == nil {
		return errors.New("chain: writer failed to open")
	}
	rs, err := scanFile(path)
	if err != nil {
		return err
	}
	var through PrunedInfo
	if rs.last == nil {
		// Only torn bytes: a crash while its open record was written
		// (FORMAT.md §5). It holds no line; the chain before it ends
		// where the file before it, pruned already, ended.
		if through, err = w.throughBeforeTornOnly(path); err != nil {
			return err
		}
	} else {
		l, err := ParseLine(rs.last)
		if err != nil {
			return fmt.Errorf("chain: %s: last line: %v", path, err)
		}
		through.ThroughSeq, through.ThroughChain = l.Seq, hex.EncodeToString(l.MAC[:])
	}
	if w.archive != nil {
		if err := w.archive(path); err != nil {
			return fmt.Errorf("chain: archive %s: %w", path, err)
		}
	}
	var body []byte
	body = append(body, `"rec":"pruned","time":`...)
	body = jsonenc.Time(body, w.now())
	body = append(body, `,"file":`...)
	body = jsonenc.String(body, BaseName(path))
	body = append(body, `,"through_seq":`...)
	body = strconv.AppendUint(body, through.ThroughSeq, 10)
	body = append(body, `,"through_chain":"`...)
	body = append(body, through.ThroughChain...)
	body = append(body, '"')
	if err := w.w.WriteRecord(body, nil); err != nil {
		return err
	}
	if err := w.w.Sync(); err != nil {
		return err
	}
	through.File = BaseName(path)
	w.mu.Lock()
	if w.pruned == nil {
		w.pruned = map[string]bool{}
	}
	w.pruned[through.File] = true
	w.lastPruned = through
	w.mu.Unlock()
	return nil
}

// throughBeforeTornOnly returns where the chain stands before the file at
// path, which holds no complete line: the through_seq and through_chain of
// the pruned record of the file before it (this Writer's, or the newest in
// the chain that names an earlier file). Retention removes the oldest file
// first, so that file is gone. The first line after path must continue
// the chain from there: otherwise the file held lines once (it was cut
// after the files before it were pruned), and pruning it would account
// for lines that retention never removed.
func (w *Writer) throughBeforeTornOnly(path string) (PrunedInfo, error) {
	name := BaseName(path)
	w.mu.Lock()
	through := w.lastPruned
	w.mu.Unlock()
	known := through.File != "" && through.File < name
	files, err := rotate.List(filepath.Dir(path), w.prefix, w.ext)
	if err != nil {
		return through, err
	}
	var next *Line
	for _, f := range files {
		if BaseName(f) <= name {
			continue
		}
		sc, err := scanFile(f)
		if err != nil {
			return through, err
		}
		if !known {
			if p, ok := sc.lastPrunedBefore(name); ok {
				through = p
			}
		}
		if next == nil && sc.first != nil {
			if l, err := ParseLine(sc.first); err == nil {
				next = &l
			}
		}
		if next != nil && known {
			break
		}
	}
	switch {
	case next != nil && next.Seq == 1 && next.Prev == [sha256.Size]byte{}:
		// The chain begins after path (a crash while its first open
		// record was written): nothing came before it.
		return PrunedInfo{ThroughChain: hex.EncodeToString(next.Prev[:])}, nil
	case through.File == "" || through.File >= name:
		return through, fmt.Errorf("chain: %s holds no complete line and no pruned record names a file before it; not pruning it", path)
	case next == nil:
		return through, fmt.Errorf("chain: %s holds no complete line and no line follows it; not pruning it", path)
	case next.Seq-1 != through.ThroughSeq || hex.EncodeToString(next.Prev[:]) != through.ThroughChain:
		return through, fmt.Errorf("chain: %s holds no complete line, but the chain before it ends at seq %d (pruned %s) and the line after it continues from seq %d: lines are missing; not pruning it (run auditctl verify)", path, through.ThroughSeq, through.File, next.Seq-1)
	}
	return through, nil
}

// wasPruned reports whether retention removed the file named name
// (BaseName) after its pruned record was written.
func (w *Writer) wasPruned(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pruned[name]
}

// BaseName returns a file's name as sealed in open records: without its
// directory and without the .gz that compression adds.
func BaseName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".gz")
}

// resumed is where a chain stands.
type resumed struct {
	lastNote uint64 // seq of the last note in the checkpoints file, 0: none
	head     state
	prevNote [sha256.Size]byte // hash of the last note in the checkpoints file
	unsigned []Checkpoint      // epoch ends after the last note (a crash before settling)
	hole     *Hole             // in the newest file, if any
}

// resume finds where the chain in dir stands. Empty files (created, never
// written) are removed; a file holding only a torn line becomes the
// predecessor with its size recorded as prev_torn.
func resume(dir, prefix, ext string, ks KeyState, ckptPath string) (resumed, error) {
	var rs resumed
	st := &rs.head
	if err := trimTornNote(ckptPath); err != nil {
		return rs, fmt.Errorf("chain: resume: %w", err)
	}
	notes, err := ReadCheckpointsFile(ckptPath)
	if err != nil {
		return rs, fmt.Errorf("chain: resume: %w", err)
	}
	var lastNoteSeq uint64
	var lastNote *Checkpoint
	for i := len(notes) - 1; i >= 0; i-- {
		if notes[i].Err == nil {
			rs.prevNote = sha256.Sum256(notes[i].Note)
			lastNoteSeq = notes[i].Seq
			if c, err := ParseNote(notes[i].Note); err == nil {
				lastNoteSeq = c.Seq // the note's own word, not the listing's
				lastNote = &c
			}
			rs.lastNote = lastNoteSeq
			break
		}
	}
	files, err := rotate.List(dir, prefix, ext)
	if errors.Is(err, fs.ErrNotExist) {
		files, err = nil, nil
	}
	if err != nil {
		return rs, fmt.Errorf("chain: resume: %w", err)
	}
	found, needStart := false, false
	for i := len(files) - 1; i >= 0; i-- {
		path := files[i]
		sc, err := scanFile(path)
		if err != nil {
			return rs, fmt.Errorf("chain: resume from %s: %w", path, err)
		}
		if !found {
			if sc.size == 0 {
				if !strings.HasSuffix(path, ".gz") {
					if err := os.Remove(path); err != nil {
						return rs, fmt.Errorf("chain: resume: remove empty %s: %w", path, err)
					}
				}
				continue
			}
			if st.file == "" {
				st.file, st.prevTorn = BaseName(path), sc.torn
				if rs.hole, err = trimUnwritten(path, sc.size, writtenAlways(sc.first)); err != nil {
					return rs, fmt.Errorf("chain: resume: %w", err)
				}
			}
			if sc.last == nil {
				continue // only a torn line: the head is in an earlier file
			}
			if err := checkResumable(path, sc, ks, lastNote); err != nil {
				return rs, err
			}
			l, _ := ParseLine(sc.last)
			st.seq, st.prev, st.epoch = l.Seq, l.MAC, sc.epoch
			found = true
			needStart = true
		}
		// The lines of the current epoch so far, for its digest: after the
		// newest end line, which may be in an earlier file (a crash).
		if needStart {
			st.text = append(sc.afterEnd, st.text...)
			if len(sc.ends) > 0 || sc.firstSeq == 1 {
				needStart = false
			}
		}
		// Epoch ends after the last note were sealed but never signed.
		for j := len(sc.ends) - 1; j >= 0 && sc.ends[j].Seq > lastNoteSeq; j-- {
			rs.unsigned = append(rs.unsigned, sc.ends[j])
		}
		if (sc.firstSeq <= lastNoteSeq+1 || len(notes) == 0) && !needStart {
			break
		}
	}
	st.unknown = needStart && found
	if rs.hole != nil {
		rs.hole.ChainSeq = st.seq
	}
	slices.Reverse(rs.unsigned)
	if lastNoteSeq > st.seq {
		return rs, fmt.Errorf("chain: cannot resume in %s: the checkpoints file has signed seq %d but the files end at seq %d: records are missing from the end of the chain (run auditctl verify; move the directory aside to start a new chain)", dir, lastNoteSeq, st.seq)
	}
	if ks.Key != nil && ks.Epoch > st.epoch {
		return rs, fmt.Errorf("chain: cannot resume in %s: the key file is at epoch %d but the chain ends in epoch %d: records are missing from the end of the chain, or the key belongs to another chain (run auditctl verify; move the directory aside to start a new chain)", dir, ks.Epoch, st.epoch)
	}
	return rs, nil
}

func checkResumable(path string, sc scanned, ks KeyState, lastNote *Checkpoint) error {
	fl, err := ParseLine(sc.first)
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
	if ks.Key != nil {
		wantAlg = AlgHMACSHA256
	}
	if oi.Alg != wantAlg || oi.KeyID != ks.ID {
		return fmt.Errorf("chain: cannot resume from %s: it is sealed with %s key_id %q, this writer uses %s key_id %q; use the key it was written with or another directory",
			path, oi.Alg, oi.KeyID, wantAlg, ks.ID)
	}
	if oi.V != Version {
		return fmt.Errorf("chain: cannot resume from %s: format version %d, this writer writes %d; use another directory", path, oi.V, Version)
	}
	ll, err := ParseLine(sc.last)
	if err != nil {
		return fmt.Errorf("chain: cannot resume from %s: last line: %v", path, err)
	}
	// Epochs are read before any MAC is checked; each epoch ends with a
	// line, so a line's epoch is below its seq. A larger one would only
	// make the key derivation (one HMAC per epoch) run for ever.
	if sc.lastEpoch >= ll.Seq || sc.epoch > ll.Seq {
		return fmt.Errorf("chain: cannot resume from %s: it claims epoch %d at seq %d, which is impossible; run auditctl verify", path, sc.epoch, ll.Seq)
	}
	// The last line's epoch key; a writer whose key already moved past it
	// (the line ended an epoch) cannot check it, and need not: it was
	// settled before the key moved.
	var key []byte
	if ks.Key != nil {
		if ks.Epoch > sc.lastEpoch {
			// The last line ended an epoch whose key is gone. Its note, if
			// notes are kept, was written before the key moved on, and
			// vouches for it instead.
			if lastNote != nil && (lastNote.Seq != ll.Seq || lastNote.Chain != ll.MAC) {
				return fmt.Errorf("chain: cannot resume from %s: its last record (seq %d) is not the one the last signed checkpoint names (seq %d); run auditctl verify", path, ll.Seq, lastNote.Seq)
			}
			return nil
		}
		k, err := ks.At(sc.lastEpoch)
		if err != nil {
			return err
		}
		key = k.Key
	}
	if macOf(key, ll.Sealed) != ll.MAC {
		return fmt.Errorf("chain: cannot resume from %s: its last record (seq %d) fails its MAC; run auditctl verify", path, ll.Seq)
	}
	return nil
}

// vouchable returns the epoch ends, found after the last note at resume,
// that this writer may sign: those whose every line it can check with a key
// it holds. A note signs the chain value and the digest of its epoch's
// lines as read back from the files; for an epoch whose key is gone they
// could have been changed since, and signing them would bless that.
func vouchable(ends []Checkpoint, ks KeyState) (ok []Checkpoint, refused int) {
	for _, c := range ends {
		if ks.Key != nil && !linesVerify(c, ks) {
			refused++
			continue
		}
		ok = append(ok, c)
	}
	return ok, refused
}

// linesVerify reports whether the lines of the epoch c ends all carry the
// MAC of its key, derived from ks.
func linesVerify(c Checkpoint, ks KeyState) bool {
	if c.Epoch < ks.Epoch {
		return false
	}
	k, err := ks.At(c.Epoch)
	if err != nil {
		return false
	}
	text := c.text
	if text == nil {
		// The epoch's first lines are not known (its digest will be
		// zero): the end line alone vouches for the chain value.
		text = append(c.line, '\n')
	}
	for _, raw := range bytes.SplitAfter(text, []byte{'\n'}) {
		if len(raw) == 0 {
			continue
		}
		l, err := ParseLine(bytes.TrimSuffix(raw, []byte{'\n'}))
		if err != nil || macOf(k.Key, l.Sealed) != l.MAC {
			return false
		}
		if l.Seq == c.Seq && l.MAC != c.Chain {
			return false
		}
	}
	return true
}

// A Hole is what Open found at the end of the newest file when it resumed
// the chain: its content ends in zero bytes that are followed by other
// bytes. Space preallocated for records (rotate.Options.Preallocate) and
// written through a memory mapping reaches the disk a page at a time, in
// no particular order, unless it is synced: after a power loss or a kernel
// crash under rotate.SyncNone or SyncInterval, pages of acknowledged
// records may be zeros while later pages made it. The chain goes on from
// the last line before the zeros: the records in them are lost, and those
// after them cannot be linked to it again. Open leaves the file as it is
// (their bytes stay in it, for an investigator; Verify reports the file
// MODIFIED: zeros followed by other bytes), gives their seqs to the
// records that follow, and reports the hole through CheckpointOptions.OnError and
// Writer.Hole, so that it is on record (package handler writes an
// audit_outage record). Zeros with nothing after them are space never
// written, as after any crash: Open cuts them, silently.
type Hole struct {
	File string // the file's name
	// Offset is where the zeros begin (the chain's content of the file
	// ends there), Data where the bytes after them begin, End where those
	// end (zeros preallocated and never written may follow), Size the
	// file's.
	Offset, Data, End, Size int64
	// ChainSeq is the last seq of the chain before the zeros: records from
	// ChainSeq+1 on are lost or stranded.
	ChainSeq uint64
	// FirstSeq and LastSeq are the seqs of the first and last sealed lines
	// after the zeros (0 when none parses): FirstSeq..LastSeq are stranded
	// in the file, ChainSeq+1..FirstSeq-1 lost.
	FirstSeq, LastSeq uint64
}

func (h *Hole) String() string {
	s := fmt.Sprintf("%s: zeros from offset %d to %d, then %d bytes the chain cannot hold; it goes on from seq %d", h.File, h.Offset, h.Data, h.End-h.Data, h.ChainSeq)
	if h.FirstSeq != 0 {
		s += fmt.Sprintf(" (records of seq %d-%d lost in the zeros, seq %d-%d stranded after them)", h.ChainSeq+1, h.FirstSeq-1, h.FirstSeq, h.LastSeq)
	}
	return s
}

// trimUnwritten cuts the zero bytes that a crash left after the content of
// a preallocated file (rotate.Options.Preallocate), unless other bytes
// follow them and always is false: then it leaves the file as it is and
// returns the Hole. Under rotate.SyncAlways (always) nothing after the
// zeros was acknowledged: a batch is acknowledged once its fdatasync is
// done, so what a power loss left there are pages of a batch that was not.
// It opens the file only when there are zeros, and not through a symbolic
// link (the file was listed as a regular file, but may have been swapped
// since).
func trimUnwritten(path string, content int64, always bool) (*Hole, error) {
	if strings.HasSuffix(path, ".gz") {
		return nil, nil
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink == 0 && fi.Size() <= content {
		return nil, nil
	}
	f, err := openFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil || fi.Size() <= content {
		return nil, err
	}
	data := int64(-1)
	if !always {
		if data, err = firstNonZero(f, content); err != nil {
			return nil, err
		}
	}
	if data >= 0 {
		hole := &Hole{File: BaseName(path), Offset: content, Data: data, Size: fi.Size()}
		hole.FirstSeq, hole.LastSeq, hole.End, err = seqsAfter(f, data)
		return hole, err
	}
	if err := f.Truncate(content); err != nil {
		return nil, err
	}
	return nil, f.Close()
}

// writtenAlways reports whether first, the first line of a file, is an open
// record that names the SyncAlways policy.
func writtenAlways(first []byte) bool {
	l, err := ParseLine(first)
	var oi OpenInfo
	return err == nil && l.Kind == RecOpen && l.Decode(&oi) == nil && oi.Sync == rotate.SyncAlways.String()
}

// firstNonZero returns the offset of the first byte from off on that is not
// zero, or -1.
func firstNonZero(f *os.File, off int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for {
		n, err := f.ReadAt(buf, off)
		for i, c := range buf[:n] {
			if c != 0 {
				return off + int64(i), nil
			}
		}
		off += int64(n)
		if err == io.EOF {
			return -1, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// seqsAfter returns the seqs of the first and last sealed lines in f from
// off on (a line that begins at off may be torn: it is passed over unless
// it parses), and the offset after the last byte that is not zero.
func seqsAfter(f *os.File, off int64) (first, last uint64, end int64, err error) {
	rd := bufio.NewReader(io.NewSectionReader(f, off, 1<<62))
	for pos := off; ; {
		line, rerr := rd.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if l, err := ParseLine(line[:len(line)-1]); err == nil {
				if first == 0 {
					first = l.Seq
				}
				last = l.Seq
			}
		}
		for i := len(line) - 1; i >= 0; i-- {
			if line[i] != 0 {
				end = pos + int64(i) + 1
				break
			}
		}
		pos += int64(len(line))
		if rerr == io.EOF {
			return first, last, end, nil
		}
		if rerr != nil {
			return first, last, end, rerr
		}
	}
}

// scanned is what scanFile learns about a file.
type scanned struct {
	first, last []byte // first and last complete lines, without newlines
	torn, size  int64  // bytes after the last newline; content size
	firstSeq    uint64
	lastEpoch   uint64       // epoch of the last complete line
	epoch       uint64       // epoch of the line that would follow it
	ends        []Checkpoint // epoch ends in the file
	afterEnd    []byte       // the complete lines after the last end line (all, without one)
	pruned      []PrunedInfo // pruned records in the file, in order
}

// lastPrunedBefore returns the newest pruned record in the file that names
// a file before name.
func (sc *scanned) lastPrunedBefore(name string) (PrunedInfo, bool) {
	for i := len(sc.pruned) - 1; i >= 0; i-- {
		if sc.pruned[i].File < name {
			return sc.pruned[i], true
		}
	}
	return PrunedInfo{}, false
}

// scanFile reads a whole file (through gzip for .gz). Lines that do not
// parse are skipped: judging them is Verify's job.
func scanFile(path string) (scanned, error) {
	var sc scanned
	f, err := os.Open(path)
	if err != nil {
		return sc, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := rotate.NewGzipReader(f)
		if err != nil {
			return sc, err
		}
		r = zr
	}
	lr := newLineReader(r)
	for {
		rl, err := lr.next()
		if err != nil {
			return sc, err
		}
		if rl == nil {
			return sc, nil
		}
		sc.size += int64(len(rl.b))
		if !rl.complete {
			sc.torn = int64(len(rl.b))
			return sc, nil
		}
		sc.size++
		sc.afterEnd = append(append(sc.afterEnd, rl.b...), '\n')
		if sc.first == nil {
			sc.first = bytes.Clone(rl.b)
		}
		sc.last = append(sc.last[:0], rl.b...)
		l, err := ParseLine(rl.b)
		if err != nil {
			continue
		}
		if sc.firstSeq == 0 {
			sc.firstSeq = l.Seq
		}
		sc.lastEpoch = sc.epoch
		switch l.Kind {
		case RecOpen:
			var oi OpenInfo
			if l.Decode(&oi) == nil {
				sc.epoch, sc.lastEpoch = oi.Epoch, oi.Epoch
			}
		case RecPruned:
			var pi PrunedInfo
			if l.Decode(&pi) == nil {
				sc.pruned = append(sc.pruned, pi)
			}
		case RecCheckpoint, RecClose:
			var ei EndInfo
			if l.Decode(&ei) == nil {
				t, _ := time.Parse(time.RFC3339Nano, ei.Time)
				text := sc.afterEnd
				if len(sc.ends) == 0 && sc.firstSeq != 1 {
					// The epoch may have begun in an earlier file (after a
					// crash): its digest is unknown, not wrong.
					text = nil
				}
				sc.ends = append(sc.ends, Checkpoint{Seq: l.Seq, Chain: l.MAC, Epoch: ei.Epoch, File: ei.File, Time: t, text: text, line: bytes.Clone(rl.b)})
				sc.lastEpoch, sc.epoch = ei.Epoch, ei.Epoch+1
				sc.afterEnd = nil
			}
		}
	}
}
