package rotate

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

// fakeSpace stands in for statfs(2): it reports free and total bytes the
// test sets, and counts the calls.
type fakeSpace struct {
	mu          sync.Mutex
	free, total uint64
	err         error
	calls       atomic.Int64
}

func (f *fakeSpace) statfs(string) (uint64, uint64, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.free, f.total, f.err
}

func (f *fakeSpace) set(free uint64) {
	f.mu.Lock()
	f.free = free
	f.mu.Unlock()
}

// useSpace makes the Writers opened during the test check the free space
// with fs (and with a minimum gap between checks of gap).
func useSpace(t *testing.T, fs func(string) (uint64, uint64, error), gap time.Duration) {
	t.Helper()
	if !spaceSupported {
		t.Skip("no free-space checks on this platform")
	}
	oldFS, oldGap := statfs, spaceMinGap
	statfs, spaceMinGap = fs, gap
	t.Cleanup(func() { statfs, spaceMinGap = oldFS, oldGap })
}

// checkNow makes w check the free space once more, through a rotation (a
// check follows each), and waits until the check, with the OnLowSpace call
// it makes, is done. Seeing statfs called is not enough: OnLowSpace comes
// after it. So it asks for a second check and waits for that to start: the
// background goroutine makes them one at a time. (The second check sees
// what the first saw; under the hysteresis it calls nothing.)
func checkNow(t *testing.T, w *Writer, fs *fakeSpace) {
	t.Helper()
	for range 2 {
		n := fs.calls.Load()
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a free-space check", func() bool { return fs.calls.Load() > n })
	}
}

// Crossing below the threshold fires once; staying low does not fire again
// (neither at rotations nor per 4 MiB written); coming back above the
// threshold but within its 10 % margin does not re-arm; recovering past the
// margin and falling again fires again.
func TestLowSpaceHysteresis(t *testing.T) {
	fs := &fakeSpace{free: 10 * gib, total: 100 * gib}
	useSpace(t, fs.statfs, 0)
	var got collected[Space]
	w := open(t, Options{Dir: t.TempDir(), LowSpace: gib, OnLowSpace: got.add, Framer: &logFramer{}})
	waitFor(t, "the first check", func() bool { return fs.calls.Load() > 0 })
	if c := got.get(); len(c) != 0 {
		t.Fatalf("fired with 10 GiB free: %v", c)
	}

	fs.set(900 * mib)
	checkNow(t, w, fs)
	want := Space{Free: 900 * mib, Total: 100 * gib, Threshold: gib}
	if c := got.get(); len(c) != 1 || c[0] != want {
		t.Fatalf("OnLowSpace calls = %+v, want [%+v]", c, want)
	}

	// Still low: rotations and written chunks check, and stay quiet.
	fs.set(800 * mib)
	for range 3 {
		checkNow(t, w, fs)
	}
	n := fs.calls.Load()
	rec := []byte(strings.Repeat("x", 64<<10))
	for range 2 * spaceCheckBytes / int64(len(rec)) {
		if err := w.WriteRecord(rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "checks after 8 MiB written", func() bool { return fs.calls.Load() > n })
	// Just above the threshold, within the margin, and down again.
	fs.set(gib + 50*mib)
	checkNow(t, w, fs)
	fs.set(900 * mib)
	checkNow(t, w, fs)
	if c := got.get(); len(c) != 1 {
		t.Fatalf("fired again while low: %+v", c)
	}

	// Recovered (retention, an operator), then low again: news.
	fs.set(2 * gib)
	checkNow(t, w, fs)
	fs.set(500 * mib)
	checkNow(t, w, fs)
	checkNow(t, w, fs)
	c := got.get()
	if len(c) != 2 || c[1].Free != 500*mib {
		t.Fatalf("OnLowSpace calls = %+v, want a second one with 500 MiB free", c)
	}
}

// While the space stays low, OnLowSpace is called again after
// lowSpaceRemind (an hour), not before.
func TestLowSpaceReminder(t *testing.T) {
	fs := &fakeSpace{free: 100 * mib, total: 100 * gib}
	useSpace(t, fs.statfs, 0)
	old := lowSpaceRemind
	lowSpaceRemind = 300 * time.Millisecond
	t.Cleanup(func() { lowSpaceRemind = old })
	var got collected[Space]
	w := open(t, Options{Dir: t.TempDir(), LowSpace: gib, OnLowSpace: got.add, Framer: &logFramer{}})
	waitFor(t, "the first alarm", func() bool { return len(got.get()) == 1 })
	start := time.Now()
	checkNow(t, w, fs)
	checkNow(t, w, fs)
	if c := got.get(); len(c) != 1 && time.Since(start) < lowSpaceRemind {
		t.Fatalf("reminded within %v: %+v", lowSpaceRemind, c)
	}
	time.Sleep(lowSpaceRemind)
	checkNow(t, w, fs)
	if c := got.get(); len(c) != 2 {
		t.Fatalf("OnLowSpace calls = %d after the reminder interval, want 2", len(c))
	}
}

// LowSpace 0 is DefaultLowSpace of the file system's size.
func TestLowSpaceDefault(t *testing.T) {
	for _, c := range []struct{ total, want uint64 }{
		{8 * mib, 2 * mib},      // a test tmpfs: a quarter
		{2 * gib, 512 * mib},    // a quarter
		{4 * gib, gib},          // 1 GiB from here
		{10 * gib, gib},         // 1 GiB
		{20 * gib, gib},         // 5 % = 1 GiB
		{100 * gib, 5 * gib},    // 5 %
		{1 << 40, 1 << 40 / 20}, // 1 TiB: 51.2 GiB
		{0, 0},
	} {
		if got := DefaultLowSpace(c.total); got != c.want {
			t.Errorf("DefaultLowSpace(%d) = %d, want %d", c.total, got, c.want)
		}
	}
	fs := &fakeSpace{free: 4 * gib, total: 100 * gib}
	useSpace(t, fs.statfs, 0)
	var got collected[Space]
	open(t, Options{Dir: t.TempDir(), OnLowSpace: got.add})
	waitFor(t, "the first alarm", func() bool { return len(got.get()) == 1 })
	if c := got.get(); c[0] != (Space{Free: 4 * gib, Total: 100 * gib, Threshold: 5 * gib}) {
		t.Fatalf("OnLowSpace(%+v), want the default threshold 5 GiB", c[0])
	}
}

// The checks are not made per record: 10,000 records (10 MiB) cost the
// check at start and one per 4 MiB written, each on the background
// goroutine; and none at all with LowSpace negative or no OnLowSpace.
func TestLowSpaceNotPerRecord(t *testing.T) {
	rec := []byte(strings.Repeat("r", 1023) + "\n")
	const n = 10000
	run := func(t *testing.T, opts Options) int64 {
		fs := &fakeSpace{free: 50 * gib, total: 100 * gib}
		useSpace(t, fs.statfs, 0)
		opts.Dir = t.TempDir()
		w := open(t, opts)
		for range n {
			if err := w.WriteRecord(rec, nil); err != nil {
				t.Fatal(err)
			}
		}
		if opts.OnLowSpace != nil && opts.LowSpace >= 0 {
			waitFor(t, "the checks by bytes written", func() bool { return fs.calls.Load() >= 2 })
		}
		closeW(t, w)
		return fs.calls.Load()
	}
	t.Run("on", func(t *testing.T) {
		calls := run(t, Options{OnLowSpace: func(Space) {}})
		// 1 at start, 2 by bytes (10 MiB / 4 MiB), 1 more if a minute passed.
		if max := 1 + int64(n*len(rec))/spaceCheckBytes + 1; calls < 2 || calls > max {
			t.Fatalf("%d free-space checks for %d records of %d bytes, want 2..%d", calls, n, len(rec), max)
		}
	})
	t.Run("mapped", func(t *testing.T) {
		if !mmapSupported {
			t.Skip("no memory-mapped files here")
		}
		calls := run(t, Options{OnLowSpace: func(Space) {}, Preallocate: 4 << 20})
		if max := 1 + int64(n*len(rec))/spaceCheckBytes + 1; calls < 2 || calls > max {
			t.Fatalf("%d free-space checks for %d records of %d bytes, want 2..%d", calls, n, len(rec), max)
		}
	})
	t.Run("off", func(t *testing.T) {
		if calls := run(t, Options{OnLowSpace: func(Space) {}, LowSpace: -1}); calls != 0 {
			t.Fatalf("%d free-space checks with LowSpace -1", calls)
		}
	})
	t.Run("no callback", func(t *testing.T) {
		if calls := run(t, Options{}); calls != 0 {
			t.Fatalf("%d free-space checks without OnLowSpace", calls)
		}
	})
}

// Checks asked for in quick succession are made at most once per
// spaceMinGap, and the last of them is not lost: it is made when the gap
// has passed.
func TestLowSpaceMinGap(t *testing.T) {
	fs := &fakeSpace{free: 50 * gib, total: 100 * gib}
	useSpace(t, fs.statfs, 200*time.Millisecond)
	var got collected[Space]
	w := open(t, Options{Dir: t.TempDir(), LowSpace: gib, OnLowSpace: got.add, Framer: &logFramer{}})
	waitFor(t, "the first check", func() bool { return fs.calls.Load() == 1 })
	fs.set(100 * mib)
	start := time.Now()
	for range 20 {
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the alarm", func() bool { return len(got.get()) == 1 })
	if d := time.Since(start); fs.calls.Load() > 1+int64(d/spaceMinGap)+1 {
		t.Fatalf("%d checks in %v with a minimum gap of %v", fs.calls.Load(), d, spaceMinGap)
	}
}

// A check that fails is reported to OnError once, not at every check.
func TestLowSpaceError(t *testing.T) {
	fs := &fakeSpace{err: errors.New("statfs: no")}
	useSpace(t, fs.statfs, 0)
	var errs atomic.Int64
	w := open(t, Options{Dir: t.TempDir(), OnLowSpace: func(Space) { t.Error("OnLowSpace called") }, Framer: &logFramer{},
		OnError: func(err error) {
			if !strings.Contains(err.Error(), "statfs: no") {
				t.Errorf("OnError(%v)", err)
			}
			errs.Add(1)
		}})
	waitFor(t, "the first check", func() bool { return fs.calls.Load() == 1 })
	for range 3 {
		checkNow(t, w, fs)
	}
	if n := errs.Load(); n != 1 {
		t.Fatalf("%d errors reported for 4 failed checks, want 1", n)
	}
}
