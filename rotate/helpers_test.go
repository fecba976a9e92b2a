package rotate

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is the start of the test clock.
var t0 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is an injectable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// fileName is the base name a default-prefix Writer gives a file started at t.
func fileName(t time.Time) string {
	return "audit-" + t.UTC().Format(timeLayout) + ".jsonl"
}

// preallocEnv, when set to a chunk size, makes open use memory-mapped
// files (Options.Preallocate): TestMappedFiles runs the tests so.
const preallocEnv = "ROTATE_TEST_PREALLOCATE"

// open calls New and closes the Writer at the end of the test.
func open(t *testing.T, opts Options) *Writer {
	t.Helper()
	if n, _ := strconv.ParseInt(os.Getenv(preallocEnv), 10, 64); n > 0 && opts.Preallocate == 0 {
		opts.Preallocate = n
	}
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func write(t *testing.T, w *Writer, recs ...string) {
	t.Helper()
	for _, r := range recs {
		if err := w.WriteRecord([]byte(r), nil); err != nil {
			t.Fatalf("WriteRecord(%q): %v", r, err)
		}
	}
}

func closeW(t *testing.T, w *Writer) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// batch writes recs as a single batch, in order: it holds the leader role
// while one goroutine per record enqueues, then lets one of them lead. It
// returns each record's error.
func batch(t *testing.T, w *Writer, recs ...string) []error {
	t.Helper()
	w.mu.Lock()
	for w.leading {
		w.waitIdle()
	}
	w.leading = true
	w.mu.Unlock()

	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.WriteRecord([]byte(r), i)
		}()
		waitFor(t, "record to be enqueued", func() bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			return len(w.pend.ends) == i+1
		})
	}
	w.mu.Lock()
	w.release()
	w.mu.Unlock()
	wg.Wait()
	return errs
}

// contents returns the base names and contents of the Writer files in dir,
// oldest first, decompressing .gz files.
func contents(t *testing.T, dir string) (names, data []string) {
	t.Helper()
	paths, err := List(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		names = append(names, filepath.Base(p))
		data = append(data, readFile(t, p))
	}
	return names, data
}

// names returns the base names of the Writer files in dir, oldest first.
func names(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := List(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	return names
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(b)
}

// logFramer is a Framer in the style of a hash chain: it writes an open
// and a close line per file and numbers records across files, forgetting
// uncommitted numbers on Rollback. It logs every call but Len.
type logFramer struct {
	t         *testing.T
	quiet     bool // do not log (for high-volume tests)
	short     bool // write the open and close lines without names
	busy      atomic.Int32
	mu        sync.Mutex
	calls     []string
	committed int
	pending   int
}

func (f *logFramer) enter(format string, args ...any) {
	if f.busy.Add(1) != 1 {
		f.t.Error("Framer called concurrently")
	}
	if !f.quiet {
		f.mu.Lock()
		f.calls = append(f.calls, fmt.Sprintf(format, args...))
		f.mu.Unlock()
	}
}

func (f *logFramer) exit() { f.busy.Add(-1) }

func (f *logFramer) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *logFramer) Open(b []byte, name, prev string) []byte {
	f.enter("open %s prev=%s", name, prev)
	defer f.exit()
	if f.short {
		return append(b, "open\n"...)
	}
	return append(b, "open "+name+" prev="+prev+"\n"...)
}

func (f *logFramer) Close(b []byte, name, reason string) []byte {
	f.enter("close %s %s", name, reason)
	defer f.exit()
	return append(b, "close "+reason+"\n"...)
}

func (f *logFramer) Frame(b, rec []byte, arg any) []byte {
	f.enter("frame %s %v", rec, arg)
	defer f.exit()
	f.pending++
	b = strconv.AppendInt(b, int64(f.committed+f.pending), 10)
	b = append(b, ' ')
	b = append(b, rec...)
	return append(b, '\n')
}

func (f *logFramer) Len(rec []byte, _ any) int {
	if f.busy.Add(1) != 1 {
		f.t.Error("Framer called concurrently")
	}
	defer f.exit()
	return len(strconv.Itoa(f.committed+f.pending+1)) + 1 + len(rec) + 1
}

func (f *logFramer) Commit() {
	f.enter("commit")
	defer f.exit()
	f.committed += f.pending
	f.pending = 0
}

func (f *logFramer) Rollback() {
	f.enter("rollback")
	defer f.exit()
	f.pending = 0
}

// faultFS opens real files whose writes, syncs and truncations can be made
// to fail, and counts calls.
type faultFS struct {
	mu        sync.Mutex
	skip      int   // let this many writes through before failing
	writeErr  error // fail a write with this error, after writing writeN bytes
	writeN    int
	short     bool  // fail a write by writing only writeN bytes, with no error
	syncErr   error // fail the next Sync
	truncErr  error // fail the next Truncate
	openErr   error // fail the next OpenFile
	fakeSync  bool  // do not call fsync(2), but sleep syncDelay
	syncDelay time.Duration
	writes    int
	syncs     int
	opened    []string
	lines     int   // newlines written since the last Sync
	batches   []int // lines written before each Sync
}

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	fs.mu.Lock()
	err := fs.openErr
	fs.openErr = nil
	fs.mu.Unlock()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	fs.mu.Lock()
	fs.opened = append(fs.opened, filepath.Base(name))
	fs.mu.Unlock()
	return &faultFile{f, fs}, nil
}

// failWrite makes the write after the next skip writes fail after n bytes.
func (fs *faultFS) failWrite(skip, n int, err error) {
	fs.mu.Lock()
	fs.skip, fs.writeN, fs.writeErr = skip, n, err
	fs.short = err == nil
	fs.mu.Unlock()
}

// openedFiles returns the base names of the files opened so far.
func (fs *faultFS) openedFiles() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.opened...)
}

// syncBatches returns how many lines each Sync so far flushed.
func (fs *faultFS) syncBatches() []int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]int(nil), fs.batches...)
}

func (fs *faultFS) counts() (writes, syncs int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.writes, fs.syncs
}

type faultFile struct {
	*os.File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	fs := f.fs
	fs.mu.Lock()
	fs.writes++
	fail := (fs.writeErr != nil || fs.short) && fs.skip == 0
	if fs.writeErr != nil || fs.short {
		fs.skip--
	}
	err, n := fs.writeErr, fs.writeN
	if fail {
		fs.writeErr, fs.short = nil, false
	} else {
		fs.lines += bytes.Count(p, []byte("\n"))
	}
	fs.mu.Unlock()
	if !fail {
		return f.File.Write(p)
	}
	m, _ := f.File.Write(p[:min(n, len(p))])
	return m, err
}

func (f *faultFile) Sync() error {
	fs := f.fs
	fs.mu.Lock()
	fs.syncs++
	fs.batches = append(fs.batches, fs.lines)
	fs.lines = 0
	err := fs.syncErr
	fs.syncErr = nil
	fake, delay := fs.fakeSync, fs.syncDelay
	fs.mu.Unlock()
	if err != nil {
		return err
	}
	if fake {
		if delay > 0 {
			time.Sleep(delay) // stands for the disk
		}
		return nil
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	fs := f.fs
	fs.mu.Lock()
	err := fs.truncErr
	fs.truncErr = nil
	fs.mu.Unlock()
	if err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// collected gathers what a callback hears (OnError, OnLowSpace), from any
// goroutine.
type collected[T any] struct {
	mu  sync.Mutex
	got []T
}

func (c *collected[T]) add(v T) {
	c.mu.Lock()
	c.got = append(c.got, v)
	c.mu.Unlock()
}

func (c *collected[T]) get() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]T(nil), c.got...)
}
