package rotate

import (
	"fmt"
	"time"
)

// Space is the space of the file system that holds a Writer's directory,
// as a free-space check saw it (see Options.LowSpace).
type Space struct {
	Free      uint64 // bytes available to unprivileged users (statfs f_bavail × block size)
	Total     uint64 // size of the file system in bytes
	Threshold uint64 // the threshold in effect: Options.LowSpace, or its default for Total
}

// DefaultLowSpace returns the threshold that Options.LowSpace 0 stands for
// on a file system of total bytes: 5 % of it, but at least 1 GiB, or a
// quarter of a file system smaller than 4 GiB. So a large disk warns at
// 95 % full, as disk monitoring commonly does, with ~50 GiB of room on
// 1 TiB; a 20 GiB audit volume warns with 1 GiB left, hours of records
// even at a few MB/s; and a small one (a test tmpfs, a 1 GiB volume)
// warns at 75 % full rather than from the start.
func DefaultLowSpace(total uint64) uint64 {
	return max(total/20, min(1<<30, total/4))
}

// How often the free space is checked (see Options.OnLowSpace). Variables
// for the tests.
var (
	spaceCheckBytes int64 = 4 << 20     // after this many bytes written (a preallocated chunk)
	spaceCheckEvery       = time.Minute // and at least this often, written or not
	spaceMinGap           = time.Second // but never more often than this
	lowSpaceRemind        = time.Hour   // OnLowSpace again while still low
	statfs                = diskSpace   // New takes it: the tests count and fake the checks
)

// spaceRecovered is how much free space counts as back above threshold t:
// 10 % more, so that space hovering around the threshold (retention
// removing a file, records filling it again) does not fire at every turn.
func spaceRecovered(t uint64) uint64 { return t + t/10 }

// spaceWatch is the background goroutine's state of the free-space checks.
type spaceWatch struct {
	timer  *time.Timer
	last   time.Time // of the last check
	low    bool      // below the threshold, and not back above spaceRecovered since
	fired  time.Time // of the last OnLowSpace
	failed bool      // the last check failed (its error was reported)
}

// askSpace asks the background goroutine for a free-space check. It costs
// an atomic store and a non-blocking send; the background goroutine makes
// the check (a statfs(2)) at its own pace.
func (w *Writer) askSpace() {
	w.spaceReq.Store(true)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pollSpace checks the free space if a check was asked for and the last one
// was at least spaceMinGap ago; otherwise it sets the timer for when it may.
// It runs on the background goroutine.
func (w *Writer) pollSpace(s *spaceWatch) {
	if !w.spaceReq.Load() {
		return
	}
	if since := time.Since(s.last); !s.last.IsZero() && since < spaceMinGap {
		s.timer.Reset(spaceMinGap - since)
		return
	}
	w.spaceReq.Store(false)
	s.last = time.Now()
	s.timer.Reset(spaceCheckEvery)
	free, total, err := w.statfs(w.dir)
	if err != nil {
		if !s.failed {
			s.failed = true
			w.onError(fmt.Errorf("rotate: free space of %s: %w", w.dir, err))
		}
		return
	}
	s.failed = false
	thr := uint64(w.lowSpace)
	if w.lowSpace == 0 {
		thr = DefaultLowSpace(total)
	}
	switch {
	case free < thr:
		if !s.low || time.Since(s.fired) >= lowSpaceRemind {
			s.low, s.fired = true, time.Now()
			w.onLowSpace(Space{Free: free, Total: total, Threshold: thr})
		}
	case free >= spaceRecovered(thr):
		s.low = false
	}
}
