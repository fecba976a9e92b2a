package rotate

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// timeLayout is the start time in file names. Its fixed width makes name
// order equal time order.
const timeLayout = "20060102T150405.000000000Z"

// maxKeep bounds the buffers kept for reuse, so that one burst of huge
// records does not pin its memory for the life of the Writer.
const maxKeep = 4 << 20

// An op is what a leader does after writing the queue.
type op int

const (
	opWrite  op = iota // nothing
	opSync             // fsync if dirty (Writer.Sync)
	opTick             // fsync if dirty (SyncInterval ticker)
	opRotate           // close the file, reason "rotate"
	opClose            // close the file, reason "close"
	opStart            // create the file if none is open and write its Open frame
)

// flush writes the records of q, then performs op. Records before failAt
// were written; records from failAt on were not, because of err. opErr is
// the op's own error.
func (w *Writer) flush(q *queue, op op) (failAt int, err, opErr error) {
	failAt, err = w.writeRecords(q)
	switch op {
	case opSync, opTick:
		if w.f != nil && w.dirty {
			if e := w.f.Sync(); e != nil {
				opErr = fmt.Errorf("rotate: %w", e)
			} else {
				w.dirty = false
			}
		}
	case opRotate:
		if w.f != nil {
			opErr = w.finish("rotate")
		}
		if opErr == nil && w.eager {
			opErr = w.start()
		}
	case opStart:
		if opErr = w.start(); opErr != nil && w.f != nil {
			// New fails: the Open frame did not make it and the file was
			// truncated back to empty. Remove it rather than let Close
			// frame it again for a Writer the caller never gets.
			w.discard()
		}
	case opClose:
		if w.f != nil {
			opErr = w.finish("close")
		}
		if w.f != nil { // the Close frame did not make it; close anyway
			w.f.Close()
			w.f = nil
		}
		w.unlock()
		closeLock(&w.abandoned)
	}
	if cap(w.out) > maxKeep {
		w.out = nil
	}
	if cap(q.buf) > maxKeep {
		q.buf = nil
	}
	return failAt, err, opErr
}

// writeRecords frames and writes the records of q, rotating before a record
// as needed. Each file's part of the batch is written with one write(2).
func (w *Writer) writeRecords(q *queue) (failAt int, err error) {
	n := len(q.ends)
	if n == 0 {
		return 0, nil
	}
	// Time is read once per batch, and only when needed: for Interval, or
	// to name a new file.
	var now time.Time
	haveNow := false
	if w.f != nil && w.interval > 0 {
		now, haveNow = w.now(), true
		if !now.Before(w.rotateAt) {
			if err := w.finish("time"); err != nil {
				return 0, err
			}
		}
	}
	segFirst, start := 0, 0
	for i := 0; i < n; {
		if w.f == nil {
			if !haveNow {
				now, haveNow = w.now(), true
			}
			if err := w.create(now); err != nil {
				return i, err
			}
			segFirst = i
		}
		w.frameOpen()
		rec := q.buf[start:q.ends[i]]
		if w.maxBytes > 0 && w.nrec+w.segRecs > 0 &&
			w.size+int64(len(w.out))+int64(w.fr.Len(rec, q.args[i])) > w.maxBytes {
			if err := w.finish("size"); err != nil {
				return segFirst, err
			}
			continue
		}
		w.out = w.fr.Frame(w.out, rec, q.args[i])
		w.framed = true
		w.segRecs++
		start = q.ends[i]
		i++
	}
	if err := w.commit(w.policy == SyncAlways); err != nil {
		return segFirst, err
	}
	return n, nil
}

// start creates a file, if none is open, and commits its Open frame.
func (w *Writer) start() error {
	if w.f != nil {
		return nil
	}
	if err := w.create(w.now()); err != nil {
		return err
	}
	w.frameOpen()
	return w.commit(w.policy != SyncNone)
}

// discard closes and removes the open file, which holds nothing.
func (w *Writer) discard() {
	path := filepath.Join(w.dir, w.name)
	w.f.Close()
	w.f = nil
	w.unlock()
	w.active.Store(nil)
	os.Remove(path)
}

// unlock releases the lock of the file just closed.
func (w *Writer) unlock() { closeLock(&w.lock) }

func closeLock(f **os.File) {
	if *f != nil {
		(*f).Close()
		*f = nil
	}
}

// frameOpen puts the Open frame in front of the segment if the file does
// not hold it yet (it is new, or the batch that wrote it failed).
func (w *Writer) frameOpen() {
	if !w.opened && !w.segOpen {
		w.out = w.fr.Open(w.out, w.name, w.prev)
		w.segOpen = true
		w.framed = true
	}
}

// create creates the next file, named for now but strictly after the
// previous name.
func (w *Writer) create(now time.Time) error {
	t := now.UTC()
	if !t.After(w.lastT) {
		t = w.lastT.Add(time.Nanosecond)
	}
	w.lastT = t // even on failure, so a retry never reuses the name
	name := w.prefix + "-" + t.Format(timeLayout) + w.ext
	path := filepath.Join(w.dir, name)
	// Retention must not see the file before it knows it is active.
	w.active.Store(&path)
	// O_EXCL: never a file (or a symbolic link) that is already there;
	// O_NOFOLLOW says so twice.
	var f File
	var err error
	if w.mapChunk > 0 {
		var osf *os.File
		if osf, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600); err == nil {
			var short func()
			if w.onLowSpace != nil {
				// Less than a chunk is left: check the free space now
				// rather than after the next 4 MiB, which may not fit.
				short = w.askSpace
			}
			if w.policy == SyncAlways {
				f = newPreallocFile(osf, w.mapChunk, w.maxBytes, short)
			} else {
				f = newMappedFile(osf, w.mapChunk, short)
			}
		}
	} else {
		// O_APPEND: after a Truncate, the next write lands at the new end
		// instead of leaving a hole at the old offset.
		f, err = w.openFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND|oNoFollow, 0o600)
	}
	if err != nil {
		w.active.Store(nil)
		return fmt.Errorf("rotate: %w", err)
	}
	w.noteBorn(name)
	// Held for as long as the file is written, so that readers can tell a
	// live file from one a crashed Writer left (FileLocked). Taken before
	// the first byte is written.
	if lockSupported {
		var lerr error
		if w.lock, lerr = lockFile(path); lerr != nil {
			w.post(job{err: fmt.Errorf("rotate: lock %s: %w (readers may take it for a crashed writer's file)", name, lerr)})
		}
	}
	closeLock(&w.abandoned) // a newer file exists now
	w.f, w.name = f, name
	w.size, w.nrec = 0, 0
	w.opened, w.dirSynced, w.dirty = false, false, false
	if w.interval > 0 {
		w.rotateAt = nextBoundary(t, w.interval)
	}
	w.latest.Store(&path)
	return nil
}

// nextBoundary returns the first multiple of iv (since the Unix epoch)
// after t.
func nextBoundary(t time.Time, iv time.Duration) time.Time {
	ns, d := t.UnixNano(), int64(iv)
	b := ns - ns%d
	if ns < 0 && ns%d != 0 {
		b -= d
	}
	return time.Unix(0, b+d).UTC()
}

// finish ends the file with its Close frame and closes it. If the Close
// frame cannot be written the file stays open (or is abandoned, see fail).
func (w *Writer) finish(reason string) error {
	w.frameOpen()
	w.out = w.fr.Close(w.out, w.name, reason)
	w.framed = true
	if err := w.commit(w.policy != SyncNone || reason == "close"); err != nil {
		return err
	}
	path := filepath.Join(w.dir, w.name)
	err := w.f.Close()
	w.f = nil
	w.unlock() // after the close record: the file is finished
	w.prev = w.name
	if err != nil {
		err = fmt.Errorf("rotate: %w", err)
	}
	if reason == "close" {
		// The file stays active for retention still to run: it is the
		// newest file, not a backup.
		return err
	}
	w.active.Store(nil)
	// A rotation's records are written; the error is no concern of theirs.
	if err != nil {
		w.post(job{err: err})
	}
	w.post(job{closed: path})
	return nil
}

// commit writes the segment with one write(2), fsyncs if sync, and tells
// the Framer. On failure it undoes the write (see fail).
func (w *Writer) commit(sync bool) error {
	var err error
	if len(w.out) > 0 {
		var n int
		n, err = w.f.Write(w.out)
		if err == nil && n < len(w.out) {
			err = io.ErrShortWrite
		}
	}
	if err == nil && sync && (len(w.out) > 0 || w.dirty) {
		// An *os.File syncs with fsync, not fdatasync: the bytes were
		// appended, and the new size is metadata that fdatasync(2) must
		// flush too. On ext4 it then commits the same journal transaction
		// as fsync (size, extents; the timestamps ride along in the same
		// inode block), and measured no faster here. A preallocated file
		// under SyncAlways (preallocFile) overwrites zeroed blocks and
		// syncs with fdatasync, which then flushes only data.
		if w.timeSync {
			t := time.Now()
			err = w.f.Sync()
			w.noteSync(time.Since(t))
		} else {
			err = w.f.Sync()
		}
	}
	if err == nil && !w.dirSynced && w.policy != SyncNone {
		// A synced file is no use if its name can vanish in a crash.
		err = syncDir(w.dir)
		w.dirSynced = err == nil
	}
	if err != nil {
		return w.fail(err)
	}
	w.size += int64(len(w.out))
	w.nrec += w.segRecs
	if w.onLowSpace != nil {
		// Off the writer's path: the background goroutine checks.
		if w.spaceLeft -= int64(len(w.out)); w.spaceLeft <= 0 {
			w.spaceLeft = spaceCheckBytes
			w.askSpace()
		}
	}
	if w.segOpen {
		w.opened = true
	}
	if sync {
		w.dirty = false
	} else if len(w.out) > 0 {
		w.dirty = true
	}
	if w.framed {
		w.fr.Commit()
	}
	w.resetSeg()
	return nil
}

// noteSync folds the duration of an fsync into syncEst.
func (w *Writer) noteSync(d time.Duration) {
	if w.syncEst == 0 {
		w.syncEst = d
	} else {
		w.syncEst += (d - w.syncEst) / 4
	}
}

// fail truncates the file back to its last committed size, so that no
// partial record is ever followed by more data, and rolls the Framer back.
// If the file cannot be truncated, it is abandoned: closed without a Close
// frame, and the next record starts a new file.
func (w *Writer) fail(err error) error {
	err = fmt.Errorf("rotate: %s: %w", w.name, err)
	if terr := w.f.Truncate(w.size); terr != nil {
		err = fmt.Errorf("%w; abandoning the file, truncate failed: %w", err, terr)
		path := filepath.Join(w.dir, w.name)
		w.f.Close()
		w.f = nil
		closeLock(&w.abandoned)
		w.abandoned, w.lock = w.lock, nil // until the next file exists
		w.prev = w.name
		w.active.Store(nil)
		w.post(job{closed: path})
	}
	if w.framed {
		w.fr.Rollback()
	}
	w.resetSeg()
	return err
}

func (w *Writer) resetSeg() {
	w.out = w.out[:0]
	w.segOpen = false
	w.segRecs = 0
	w.framed = false
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
