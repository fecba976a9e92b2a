package rotate

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	for _, tt := range []struct {
		s string
		p Policy
	}{
		{"none", SyncNone},
		{"interval", SyncInterval},
		{"always", SyncAlways},
	} {
		if got := tt.p.String(); got != tt.s {
			t.Errorf("%d.String() = %q, want %q", tt.p, got, tt.s)
		}
		for _, s := range []string{tt.s, strings.ToUpper(tt.s)} {
			if p, err := ParsePolicy(s); p != tt.p || err != nil {
				t.Errorf("ParsePolicy(%q) = %v, %v, want %v", s, p, err, tt.p)
			}
		}
	}
	for _, s := range []string{"", "fsync", "alway", "always "} {
		if _, err := ParsePolicy(s); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
			t.Errorf("ParsePolicy(%q) error = %v, want one naming the input", s, err)
		}
	}
	if got := Policy(7).String(); got != "Policy(7)" {
		t.Errorf("Policy(7).String() = %q", got)
	}
}

func TestNewOptions(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"no dir", Options{}},
		{"bad policy", Options{Dir: dir, Sync: 9}},
		{"negative MaxBytes", Options{Dir: dir, MaxBytes: -1}},
		{"separator in prefix", Options{Dir: dir, Prefix: "a/b"}},
		{"dir is a file", Options{Dir: filepath.Join(dir, "f")}},
	} {
		os.WriteFile(filepath.Join(dir, "f"), nil, 0o600)
		if w, err := New(tt.opts); err == nil {
			w.Close()
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
}

func TestSizeRotation(t *testing.T) {
	tests := []struct {
		name string
		max  int64
		recs []string
		want []string // file contents
	}{
		{"no limit", 0, []string{"aaaa", "bbbb", "cccc"}, []string{"aaaabbbbcccc"}},
		{"exact fit", 10, []string{"aaaa", "bbbb", "cc", "d"}, []string{"aaaabbbbcc", "d"}},
		{"one byte over", 10, []string{"aaaa", "bbbb", "ccc"}, []string{"aaaabbbb", "ccc"}},
		{"each exactly max", 3, []string{"aaa", "bbb", "ccc"}, []string{"aaa", "bbb", "ccc"}},
		{"big record alone", 10, []string{"a", "bbbbbbbbbbbb", "c"}, []string{"a", "bbbbbbbbbbbb", "c"}},
		{"big record first", 10, []string{"bbbbbbbbbbbb", "c"}, []string{"bbbbbbbbbbbb", "c"}},
	}
	for _, tt := range tests {
		for _, mode := range []string{"sequential", "one batch"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				dir := t.TempDir()
				w := open(t, Options{Dir: dir, MaxBytes: tt.max, Now: newClock(t0).Now})
				if mode == "sequential" {
					write(t, w, tt.recs...)
				} else {
					for i, err := range batch(t, w, tt.recs...) {
						if err != nil {
							t.Fatalf("record %d: %v", i, err)
						}
					}
				}
				closeW(t, w)
				names, data := contents(t, dir)
				if !slices.Equal(data, tt.want) {
					t.Errorf("files = %q, want %q", data, tt.want)
				}
				for i, name := range names {
					// Same clock reading: each name is bumped by 1ns.
					if want := fileName(t0.Add(time.Duration(i))); name != want {
						t.Errorf("file %d is %s, want %s", i, name, want)
					}
				}
			})
		}
	}
}

func TestTimeRotation(t *testing.T) {
	day := func(d, h, m, s int) time.Time { return time.Date(2024, 1, d, h, m, s, 0, time.UTC) }
	clk := newClock(day(1, 23, 59, 59))
	fr := &logFramer{t: t}
	var mu sync.Mutex
	var rotated []string
	dir := t.TempDir()
	w := open(t, Options{
		Dir: dir, Interval: 24 * time.Hour, Framer: fr, Now: clk.Now,
		OnRotate: func(p string) { mu.Lock(); rotated = append(rotated, p); mu.Unlock() },
	})
	write(t, w, "a")
	clk.Set(day(2, 0, 0, 0).Add(-1))
	write(t, w, "b")
	clk.Set(day(2, 0, 0, 0)) // a boundary belongs to the new day
	write(t, w, "c")
	clk.Set(day(2, 23, 0, 0))
	write(t, w, "d")
	clk.Set(day(3, 0, 0, 1))
	write(t, w, "e")
	closeW(t, w)

	f1, f2, f3 := fileName(day(1, 23, 59, 59)), fileName(day(2, 0, 0, 0)), fileName(day(3, 0, 0, 1))
	names, data := contents(t, dir)
	if want := []string{f1, f2, f3}; !slices.Equal(names, want) {
		t.Fatalf("files %q, want %q", names, want)
	}
	want := []string{
		"open " + f1 + " prev=\n1 a\n2 b\nclose time\n",
		"open " + f2 + " prev=" + f1 + "\n3 c\n4 d\nclose time\n",
		"open " + f3 + " prev=" + f2 + "\n5 e\nclose close\n",
	}
	if !slices.Equal(data, want) {
		t.Errorf("contents\n%q\nwant\n%q", data, want)
	}
	if want := []string{filepath.Join(dir, f1), filepath.Join(dir, f2)}; !slices.Equal(rotated, want) {
		t.Errorf("OnRotate got %q, want %q", rotated, want)
	}
}

func TestNextBoundary(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tt := range []struct {
		t    string
		iv   time.Duration
		want string
	}{
		{"2024-01-01T23:59:59Z", 24 * time.Hour, "2024-01-02T00:00:00Z"},
		{"2024-01-02T00:00:00Z", 24 * time.Hour, "2024-01-03T00:00:00Z"},
		{"2024-01-01T23:59:59+02:00", 24 * time.Hour, "2024-01-02T00:00:00Z"}, // UTC days
		{"2024-01-01T10:29:00Z", time.Hour, "2024-01-01T11:00:00Z"},
		{"2024-01-01T10:29:00Z", 15 * time.Minute, "2024-01-01T10:30:00Z"},
		{"1969-12-31T23:30:00Z", time.Hour, "1970-01-01T00:00:00Z"},
	} {
		if got := nextBoundary(at(tt.t), tt.iv); !got.Equal(at(tt.want)) {
			t.Errorf("nextBoundary(%s, %v) = %v, want %s", tt.t, tt.iv, got, tt.want)
		}
	}
}

// TestRotate checks Rotate and Path. Without a Framer files are lazy: Rotate
// with no open file does nothing, and the next record starts the next file.
// With a Framer, New and Rotate start a file at once, with its Open frame.
func TestRotate(t *testing.T) {
	t.Run("lazy without a Framer", func(t *testing.T) {
		dir := t.TempDir()
		fs := &faultFS{}
		var mu sync.Mutex
		var rotated []string
		w := open(t, Options{
			Dir: dir, OpenFile: fs.OpenFile, Now: newClock(t0).Now,
			OnRotate: func(p string) { mu.Lock(); rotated = append(rotated, p); mu.Unlock() },
		})
		f1, f2 := fileName(t0), fileName(t0.Add(1))
		p1, p2 := filepath.Join(dir, f1), filepath.Join(dir, f2)
		if err := w.Rotate(); err != nil { // nothing open: nothing to do
			t.Fatal(err)
		}
		if got := w.Path(); got != "" {
			t.Errorf("Path before the first write = %q, want \"\"", got)
		}
		if got := fs.openedFiles(); len(got) != 0 {
			t.Errorf("files opened before the first write: %q", got)
		}
		write(t, w, "a")
		if got := w.Path(); got != p1 {
			t.Errorf("Path = %q, want %q", got, p1)
		}
		for range 2 { // the second Rotate finds no open file
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		if got := w.Path(); got != p1 {
			t.Errorf("Path after Rotate = %q, want %q", got, p1)
		}
		if got := names(t, dir); !slices.Equal(got, []string{f1}) {
			t.Errorf("files after Rotate %q, want only %q", got, f1)
		}
		write(t, w, "b")
		if got := w.Path(); got != p2 {
			t.Errorf("Path = %q, want %q", got, p2)
		}
		closeW(t, w)
		if got := w.Path(); got != p2 {
			t.Errorf("Path after Close = %q, want %q", got, p2)
		}

		names, data := contents(t, dir)
		if !slices.Equal(names, []string{f1, f2}) || !slices.Equal(data, []string{"a", "b"}) {
			t.Errorf("files %q %q, want %q %q", names, data, []string{f1, f2}, []string{"a", "b"})
		}
		if got := fs.openedFiles(); !slices.Equal(got, []string{f1, f2}) {
			t.Errorf("opened %q, want %q", got, []string{f1, f2})
		}
		if want := []string{p1}; !slices.Equal(rotated, want) {
			t.Errorf("OnRotate got %q, want %q", rotated, want)
		}
	})

	t.Run("eager with a Framer", func(t *testing.T) {
		dir := t.TempDir()
		fs := &faultFS{}
		fr := &logFramer{t: t}
		var mu sync.Mutex
		var rotated []string
		w := open(t, Options{
			Dir: dir, Framer: fr, OpenFile: fs.OpenFile, Now: newClock(t0).Now,
			OnRotate: func(p string) { mu.Lock(); rotated = append(rotated, p); mu.Unlock() },
		})
		f := make([]string, 4)
		p := make([]string, 4)
		for i := range f {
			f[i] = fileName(t0.Add(time.Duration(i)))
			p[i] = filepath.Join(dir, f[i])
		}
		open1 := "open " + f[0] + " prev=\n"
		open2 := "open " + f[1] + " prev=" + f[0] + "\n"

		// New has created the first file and written its Open frame.
		if got := w.Path(); got != p[0] {
			t.Errorf("Path after New = %q, want %q", got, p[0])
		}
		if names, data := contents(t, dir); !slices.Equal(names, f[:1]) || !slices.Equal(data, []string{open1}) {
			t.Errorf("after New: files %q %q, want %q %q", names, data, f[:1], []string{open1})
		}
		if writes, _ := fs.counts(); writes != 1 {
			t.Errorf("%d writes after New, want 1", writes)
		}
		wantLog := []string{"open " + f[0] + " prev=", "commit"}
		if got := fr.log(); !slices.Equal(got, wantLog) {
			t.Errorf("Framer calls after New\n%q\nwant\n%q", got, wantLog)
		}

		// Rotate closes it and starts the next one, in separate writes.
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		if got := w.Path(); got != p[1] {
			t.Errorf("Path after Rotate = %q, want %q", got, p[1])
		}
		want := []string{open1 + "close rotate\n", open2}
		if names, data := contents(t, dir); !slices.Equal(names, f[:2]) || !slices.Equal(data, want) {
			t.Errorf("after Rotate: files %q %q, want %q %q", names, data, f[:2], want)
		}
		if writes, _ := fs.counts(); writes != 3 {
			t.Errorf("%d writes after Rotate, want 3", writes)
		}
		wantLog = append(wantLog,
			"close "+f[0]+" rotate", "commit",
			"open "+f[1]+" prev="+f[0], "commit",
		)
		if got := fr.log(); !slices.Equal(got, wantLog) {
			t.Errorf("Framer calls after Rotate\n%q\nwant\n%q", got, wantLog)
		}

		write(t, w, "a")
		if got := w.Path(); got != p[1] {
			t.Errorf("Path = %q, want %q", got, p[1])
		}
		for range 2 { // each Rotate starts a file, records or not
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		if got := w.Path(); got != p[3] {
			t.Errorf("Path after two more Rotates = %q, want %q", got, p[3])
		}
		write(t, w, "b")
		if got := w.Path(); got != p[3] {
			t.Errorf("Path = %q, want %q", got, p[3])
		}
		closeW(t, w)
		if got := w.Path(); got != p[3] {
			t.Errorf("Path after Close = %q, want %q", got, p[3])
		}

		wantLog = append(wantLog,
			"frame a <nil>", "commit",
			"close "+f[1]+" rotate", "commit",
			"open "+f[2]+" prev="+f[1], "commit",
			"close "+f[2]+" rotate", "commit",
			"open "+f[3]+" prev="+f[2], "commit",
			"frame b <nil>", "commit",
			"close "+f[3]+" close", "commit",
		)
		if got := fr.log(); !slices.Equal(got, wantLog) {
			t.Errorf("Framer calls\n%q\nwant\n%q", got, wantLog)
		}
		names, data := contents(t, dir)
		want = []string{
			open1 + "close rotate\n",
			open2 + "1 a\nclose rotate\n",
			"open " + f[2] + " prev=" + f[1] + "\nclose rotate\n",
			"open " + f[3] + " prev=" + f[2] + "\n2 b\nclose close\n",
		}
		if !slices.Equal(names, f) || !slices.Equal(data, want) {
			t.Errorf("files %q\n%q\nwant %q\n%q", names, data, f, want)
		}
		if want := p[:3]; !slices.Equal(rotated, want) {
			t.Errorf("OnRotate got %q, want %q", rotated, want)
		}
	})
}

// TestEagerOpen checks the writes and fsyncs of the files a Writer with a
// Framer starts by itself, and that a Writer without one leaves no file
// behind when given no record.
func TestEagerOpen(t *testing.T) {
	for _, policy := range []Policy{SyncNone, SyncInterval, SyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			fs := &faultFS{fakeSync: true}
			fr := &logFramer{t: t, short: true}
			w := open(t, Options{Dir: dir, Sync: policy, SyncEvery: time.Hour, Framer: fr, OpenFile: fs.OpenFile, Now: newClock(t0).Now})
			f1, f2 := fileName(t0), fileName(t0.Add(1))
			sync := 0 // fsyncs per commit of a frame
			if policy != SyncNone {
				sync = 1
			}
			check := func(when string, wantNames, wantData []string, wantWrites, wantSyncs int) {
				t.Helper()
				if names, data := contents(t, dir); !slices.Equal(names, wantNames) || !slices.Equal(data, wantData) {
					t.Errorf("after %s: files %q %q, want %q %q", when, names, data, wantNames, wantData)
				}
				if writes, syncs := fs.counts(); writes != wantWrites || syncs != wantSyncs {
					t.Errorf("after %s: %d writes and %d fsyncs, want %d and %d", when, writes, syncs, wantWrites, wantSyncs)
				}
			}
			check("New", []string{f1}, []string{"open\n"}, 1, sync)
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
			check("Rotate", []string{f1, f2}, []string{"open\nclose rotate\n", "open\n"}, 3, 3*sync)
			closeW(t, w) // Close always fsyncs
			check("Close", []string{f1, f2}, []string{"open\nclose rotate\n", "open\nclose close\n"}, 4, 3*sync+1)
			want := []string{
				"open " + f1 + " prev=", "commit", "close " + f1 + " rotate", "commit",
				"open " + f2 + " prev=" + f1, "commit", "close " + f2 + " close", "commit",
			}
			if got := fr.log(); !slices.Equal(got, want) {
				t.Errorf("Framer calls\n%q\nwant\n%q", got, want)
			}
		})
	}
	t.Run("empty Open frame", func(t *testing.T) {
		// A Framer makes the Writer eager even if it frames nothing.
		dir := t.TempDir()
		fs := &faultFS{}
		w := open(t, Options{Dir: dir, Framer: lineFramer{}, OpenFile: fs.OpenFile, Now: newClock(t0).Now})
		if names, data := contents(t, dir); !slices.Equal(names, []string{fileName(t0)}) || !slices.Equal(data, []string{""}) {
			t.Errorf("after New: files %q %q, want one empty %s", names, data, fileName(t0))
		}
		if writes, _ := fs.counts(); writes != 0 {
			t.Errorf("%d writes of nothing", writes)
		}
		if got, want := w.Path(), filepath.Join(dir, fileName(t0)); got != want {
			t.Errorf("Path = %q, want %q", got, want)
		}
	})
	t.Run("no Framer", func(t *testing.T) {
		dir := t.TempDir()
		fs := &faultFS{}
		w := open(t, Options{Dir: dir, OpenFile: fs.OpenFile, Now: newClock(t0).Now})
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		if got := w.Path(); got != "" {
			t.Errorf("Path = %q, want \"\"", got)
		}
		closeW(t, w)
		if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
			t.Errorf("directory holds %v (%v), want nothing", ents, err)
		}
		if got := fs.openedFiles(); len(got) != 0 {
			t.Errorf("opened %q, want nothing", got)
		}
	})
}

// TestNewFails checks that New with a Framer returns the error of starting
// the first file, leaving no file, no goroutine and no committed frame.
func TestNewFails(t *testing.T) {
	for _, tt := range []struct {
		name    string
		fault   func(*faultFS)
		opened  int      // files opened
		writes  int      // writes attempted
		wantLog []string // Framer calls
	}{
		{"OpenFile ENOSPC", func(fs *faultFS) { fs.openErr = syscall.ENOSPC }, 0, 0, nil},
		{"Open frame ENOSPC", func(fs *faultFS) { fs.failWrite(0, 3, syscall.ENOSPC) }, 1, 1,
			[]string{"open " + fileName(t0) + " prev=", "rollback"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := &faultFS{fakeSync: true}
			tt.fault(fs)
			fr := &logFramer{t: t}
			var mu sync.Mutex
			var rotated []string
			before := runtime.NumGoroutine()
			w, err := New(Options{
				Dir: dir, Sync: SyncInterval, SyncEvery: time.Millisecond, Framer: fr,
				OpenFile: fs.OpenFile, Now: newClock(t0).Now,
				OnRotate: func(p string) { mu.Lock(); rotated = append(rotated, p); mu.Unlock() },
			})
			if w != nil || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("New = %v, %v, want nil and ENOSPC", w, err)
			}
			waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
			if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
				t.Errorf("directory holds %v (%v), want nothing", ents, err)
			}
			if got := fs.openedFiles(); len(got) != tt.opened {
				t.Errorf("opened %q, want %d files", got, tt.opened)
			}
			if writes, _ := fs.counts(); writes != tt.writes {
				t.Errorf("%d writes, want %d", writes, tt.writes)
			}
			if got := fr.log(); !slices.Equal(got, tt.wantLog) {
				t.Errorf("Framer calls\n%q\nwant\n%q", got, tt.wantLog)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(rotated) != 0 {
				t.Errorf("OnRotate got %q, want nothing", rotated)
			}
		})
	}
	t.Run("lazy without a Framer", func(t *testing.T) {
		// Nothing is created before the first record, so New cannot fail
		// to create it; the first record does.
		dir := t.TempDir()
		fs := &faultFS{openErr: syscall.ENOSPC}
		w := open(t, Options{Dir: dir, OpenFile: fs.OpenFile, Now: newClock(t0).Now})
		if err := w.WriteRecord([]byte("a"), nil); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("WriteRecord = %v, want ENOSPC", err)
		}
		if got := w.Path(); got != "" {
			t.Errorf("Path = %q, want \"\"", got)
		}
		write(t, w, "b")
		closeW(t, w)
		// The failed attempt used up the first name.
		names, data := contents(t, dir)
		if want := []string{fileName(t0.Add(1))}; !slices.Equal(names, want) || !slices.Equal(data, []string{"b"}) {
			t.Errorf("files %q %q, want %q [\"b\"]", names, data, want)
		}
	})
}

// TestRotateStartFails fails the start of the file after a Rotate. The old
// file is closed all the same; the next record starts or finishes the new one.
func TestRotateStartFails(t *testing.T) {
	for _, tt := range []struct {
		name   string
		fault  func(*faultFS)
		path   int    // Path after the failed Rotate: file t0+path
		f2     int    // the second file: t0+f2
		empty  bool   // the second file exists, empty, after the failed Rotate
		failed string // Framer calls of the failed start
	}{
		{"OpenFile ENOSPC", func(fs *faultFS) { fs.openErr = syscall.ENOSPC }, 0, 2, false, ""},
		{"Open frame ENOSPC", func(fs *faultFS) { fs.failWrite(1, 3, syscall.ENOSPC) }, 1, 1, true,
			"open " + fileName(t0.Add(1)) + " prev=" + fileName(t0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := &faultFS{}
			fr := &logFramer{t: t}
			var mu sync.Mutex
			var rotated []string
			w := open(t, Options{
				Dir: dir, Framer: fr, OpenFile: fs.OpenFile, Now: newClock(t0).Now,
				OnRotate: func(p string) { mu.Lock(); rotated = append(rotated, p); mu.Unlock() },
			})
			f1, f2 := fileName(t0), fileName(t0.Add(time.Duration(tt.f2)))
			write(t, w, "a")
			tt.fault(fs)
			if err := w.Rotate(); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Rotate = %v, want ENOSPC", err)
			}
			if got, want := w.Path(), filepath.Join(dir, fileName(t0.Add(time.Duration(tt.path)))); got != want {
				t.Errorf("Path after the failed Rotate = %q, want %q", got, want)
			}
			closed1 := "open " + f1 + " prev=\n1 a\nclose rotate\n"
			wantNames, wantData := []string{f1}, []string{closed1}
			if tt.empty {
				wantNames, wantData = []string{f1, f2}, []string{closed1, ""}
			}
			if names, data := contents(t, dir); !slices.Equal(names, wantNames) || !slices.Equal(data, wantData) {
				t.Errorf("after the failed Rotate: files %q %q, want %q %q", names, data, wantNames, wantData)
			}
			w0, _ := fs.counts()
			write(t, w, "b")
			if w1, _ := fs.counts(); w1-w0 != 1 {
				t.Errorf("%d writes for the record and the Open frame, want 1", w1-w0)
			}
			if got, want := w.Path(), filepath.Join(dir, f2); got != want {
				t.Errorf("Path = %q, want %q", got, want)
			}
			closeW(t, w)

			names, data := contents(t, dir)
			want := []string{closed1, "open " + f2 + " prev=" + f1 + "\n2 b\nclose close\n"}
			if !slices.Equal(names, []string{f1, f2}) || !slices.Equal(data, want) {
				t.Errorf("files %q\n%q\nwant %q\n%q", names, data, []string{f1, f2}, want)
			}
			wantLog := []string{
				"open " + f1 + " prev=", "commit", "frame a <nil>", "commit",
				"close " + f1 + " rotate", "commit",
			}
			if tt.failed != "" {
				wantLog = append(wantLog, tt.failed, "rollback")
			}
			wantLog = append(wantLog,
				"open "+f2+" prev="+f1, "frame b <nil>", "commit",
				"close "+f2+" close", "commit",
			)
			if got := fr.log(); !slices.Equal(got, wantLog) {
				t.Errorf("Framer calls\n%q\nwant\n%q", got, wantLog)
			}
			if want := []string{filepath.Join(dir, f1)}; !slices.Equal(rotated, want) {
				t.Errorf("OnRotate got %q, want %q", rotated, want)
			}
		})
	}
}

// TestFramerBatch rotates in the middle of one batch: the records before
// the rotation point go to the old file with its Close frame in one write,
// the rest to the new file, with its Open frame, in another. The first
// file's Open frame was written by New, on its own.
func TestFramerBatch(t *testing.T) {
	dir := t.TempDir()
	fr := &logFramer{t: t, short: true}
	fs := &faultFS{}
	f1, f2 := fileName(t0), fileName(t0.Add(1))
	max := len("open\n") + 3*len("1 rN\n")
	w := open(t, Options{Dir: dir, MaxBytes: int64(max), Framer: fr, OpenFile: fs.OpenFile, Now: newClock(t0).Now})
	if writes, _ := fs.counts(); writes != 1 {
		t.Errorf("%d writes by New, want 1", writes)
	}
	for i, err := range batch(t, w, "r1", "r2", "r3", "r4", "r5") {
		if err != nil {
			t.Errorf("record %d: %v", i, err)
		}
	}
	if writes, _ := fs.counts(); writes != 3 {
		t.Errorf("%d writes for a batch spanning two files, want 2", writes-1)
	}
	closeW(t, w)

	want := []string{
		"open " + f1 + " prev=", "commit",
		"frame r1 0", "frame r2 1", "frame r3 2", "close " + f1 + " size", "commit",
		"open " + f2 + " prev=" + f1, "frame r4 3", "frame r5 4", "commit",
		"close " + f2 + " close", "commit",
	}
	if got := fr.log(); !slices.Equal(got, want) {
		t.Errorf("Framer calls\n%q\nwant\n%q", got, want)
	}
	_, data := contents(t, dir)
	wantData := []string{
		"open\n1 r1\n2 r2\n3 r3\nclose size\n",
		"open\n4 r4\n5 r5\nclose close\n",
	}
	if !slices.Equal(data, wantData) {
		t.Errorf("contents\n%q\nwant\n%q", data, wantData)
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		first  bool // fail the first batch of records: the Open frame, written by New, stays
		fault  func(*faultFS)
		want   error
	}{
		{"ENOSPC", SyncNone, false, func(fs *faultFS) { fs.failWrite(0, 3, syscall.ENOSPC) }, syscall.ENOSPC},
		{"EIO", SyncAlways, false, func(fs *faultFS) { fs.failWrite(0, 1, syscall.EIO) }, syscall.EIO},
		{"short write", SyncInterval, false, func(fs *faultFS) { fs.failWrite(0, 2, nil) }, io.ErrShortWrite},
		{"fsync EIO", SyncAlways, false, func(fs *faultFS) { fs.syncErr = syscall.EIO }, syscall.EIO},
		{"ENOSPC in first batch", SyncAlways, true, func(fs *faultFS) { fs.failWrite(0, 10, syscall.ENOSPC) }, syscall.ENOSPC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := &faultFS{fakeSync: true}
			fr := &logFramer{t: t}
			w := open(t, Options{Dir: dir, Sync: tt.policy, SyncEvery: time.Hour, Framer: fr, OpenFile: fs.OpenFile, Now: newClock(t0).Now})
			f1 := fileName(t0)
			path := filepath.Join(dir, f1)
			before := "open " + f1 + " prev=\n"
			wantLog := []string{"open " + f1 + " prev=", "commit"}
			if !tt.first {
				write(t, w, "a")
				before += "1 a\n"
				wantLog = append(wantLog, "frame a <nil>", "commit")
			}
			tt.fault(fs)
			err := w.WriteRecord([]byte("b"), nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("WriteRecord = %v, want %v", err, tt.want)
			}
			if got := readFile(t, path); got != before {
				t.Errorf("after the failure the file holds %q, want %q", got, before)
			}
			wantLog = append(wantLog, "frame b <nil>", "rollback")
			if got := fr.log(); !slices.Equal(got, wantLog) {
				t.Errorf("Framer calls after the failure\n%q\nwant\n%q", got, wantLog)
			}
			write(t, w, "c")
			closeW(t, w)
			// The committed Open frame is not written again.
			wantLog = append(wantLog, "frame c <nil>", "commit", "close "+f1+" close", "commit")
			if got := fr.log(); !slices.Equal(got, wantLog) {
				t.Errorf("Framer calls\n%q\nwant\n%q", got, wantLog)
			}
			names, data := contents(t, dir)
			want := []string{before + "1 c\nclose close\n"}
			if !tt.first {
				want = []string{before + "2 c\nclose close\n"}
			}
			if !slices.Equal(names, []string{f1}) || !slices.Equal(data, want) {
				t.Errorf("files %q\n%q\nwant %q", names, data, want)
			}
		})
	}
}

func TestTruncateFails(t *testing.T) {
	dir := t.TempDir()
	fs := &faultFS{}
	fr := &logFramer{t: t}
	var mu sync.Mutex
	var rotated []string
	w := open(t, Options{
		Dir: dir, Framer: fr, OpenFile: fs.OpenFile, Now: newClock(t0).Now,
		OnRotate: func(p string) { mu.Lock(); rotated = append(rotated, p); mu.Unlock() },
	})
	f1, f2 := fileName(t0), fileName(t0.Add(1))
	write(t, w, "a")
	fs.failWrite(0, 3, syscall.ENOSPC)
	fs.truncErr = syscall.EIO
	err := w.WriteRecord([]byte("b"), nil)
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("WriteRecord = %v, want ENOSPC and EIO", err)
	}
	// Even with a Framer, the next file waits for the next record.
	if got := names(t, dir); !slices.Equal(got, []string{f1}) {
		t.Errorf("files after abandoning %q, want %q", got, []string{f1})
	}
	if got, want := w.Path(), filepath.Join(dir, f1); got != want {
		t.Errorf("Path after abandoning = %q, want %q", got, want)
	}
	write(t, w, "c")
	closeW(t, w)

	names, data := contents(t, dir)
	if want := []string{f1, f2}; !slices.Equal(names, want) {
		t.Fatalf("files %q, want %q", names, want)
	}
	want := []string{
		"open " + f1 + " prev=\n1 a\n2 b", // abandoned with the partial record
		"open " + f2 + " prev=" + f1 + "\n2 c\nclose close\n",
	}
	if !slices.Equal(data, want) {
		t.Errorf("contents\n%q\nwant\n%q", data, want)
	}
	wantLog := []string{
		"open " + f1 + " prev=", "commit", "frame a <nil>", "commit",
		"frame b <nil>", "rollback",
		"open " + f2 + " prev=" + f1, "frame c <nil>", "commit",
		"close " + f2 + " close", "commit",
	}
	if got := fr.log(); !slices.Equal(got, wantLog) {
		t.Errorf("Framer calls\n%q\nwant\n%q", got, wantLog)
	}
	if want := []string{filepath.Join(dir, f1)}; !slices.Equal(rotated, want) {
		t.Errorf("OnRotate got %q, want %q", rotated, want)
	}
}

// TestErrorMidBatch fails the second file's part of a batch: only the
// records in that part get the error, and the next batch rewrites the
// new file's Open frame.
func TestErrorMidBatch(t *testing.T) {
	dir := t.TempDir()
	fs := &faultFS{}
	fr := &logFramer{t: t, short: true}
	f1, f2 := fileName(t0), fileName(t0.Add(1))
	max := len("open\n") + 2*len("1 rN\n")
	w := open(t, Options{Dir: dir, MaxBytes: int64(max), Framer: fr, OpenFile: fs.OpenFile, Now: newClock(t0).Now})
	fs.failWrite(1, 4, syscall.ENOSPC)
	errs := batch(t, w, "r1", "r2", "r3", "r4")
	for i, err := range errs {
		if ok := err == nil; ok != (i < 2) {
			t.Errorf("record %d: error %v", i, err)
		} else if !ok && !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("record %d: error %v, want ENOSPC", i, err)
		}
	}
	write(t, w, "r5")
	closeW(t, w)

	_, data := contents(t, dir)
	want := []string{
		"open\n1 r1\n2 r2\nclose size\n",
		"open\n3 r5\nclose close\n",
	}
	if !slices.Equal(data, want) {
		t.Errorf("contents\n%q\nwant\n%q", data, want)
	}
	wantLog := []string{
		"open " + f1 + " prev=", "commit",
		"frame r1 0", "frame r2 1", "close " + f1 + " size", "commit",
		"open " + f2 + " prev=" + f1, "frame r3 2", "frame r4 3", "rollback",
		"open " + f2 + " prev=" + f1, "frame r5 <nil>", "commit",
		"close " + f2 + " close", "commit",
	}
	if got := fr.log(); !slices.Equal(got, wantLog) {
		t.Errorf("Framer calls\n%q\nwant\n%q", got, wantLog)
	}
}

// TestGroupCommit shows that records enqueued while a leader works share
// the next write and fsync.
func TestGroupCommit(t *testing.T) {
	fs := &faultFS{fakeSync: true}
	w := open(t, Options{Dir: t.TempDir(), Sync: SyncAlways, OpenFile: fs.OpenFile})
	write(t, w, "first\n")
	w0, s0 := fs.counts()
	recs := make([]string, 10)
	for i := range recs {
		recs[i] = fmt.Sprintf("r%d\n", i)
	}
	for i, err := range batch(t, w, recs...) {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	w1, s1 := fs.counts()
	if w1-w0 != 1 || s1-s0 != 1 {
		t.Errorf("%d records took %d writes and %d fsyncs, want 1 and 1", len(recs), w1-w0, s1-s0)
	}
}

func TestConcurrentWriters(t *testing.T) {
	const G, N = 16, 500
	dir := t.TempDir()
	// A fake fsync with a disk's latency keeps the test fast on real disks.
	fs := &faultFS{fakeSync: true, syncDelay: 50 * time.Microsecond}
	fr := &logFramer{t: t, quiet: true}
	w := open(t, Options{Dir: dir, Sync: SyncAlways, MaxBytes: 16 << 10, Framer: fr, OpenFile: fs.OpenFile})
	var wg sync.WaitGroup
	for g := range G {
		wg.Go(func() {
			for i := range N {
				if _, err := fmt.Fprintf(w, "g%02d-%04d", g, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	closeW(t, w)
	_, syncs := fs.counts()

	names, data := contents(t, dir)
	if len(names) < 2 {
		t.Errorf("%d files, want rotations", len(names))
	}
	next := make([]int, G) // next record expected from each goroutine
	seq := 0
	for f, d := range data {
		lines := strings.Split(strings.TrimSuffix(d, "\n"), "\n")
		if !strings.HasPrefix(lines[0], "open ") || lines[len(lines)-1] != "close "+map[bool]string{true: "close", false: "size"}[f == len(data)-1] {
			t.Errorf("%s: does not begin with open and end with close: %q ... %q", names[f], lines[0], lines[len(lines)-1])
		}
		for _, line := range lines[1 : len(lines)-1] {
			var n, g, i int
			if _, err := fmt.Sscanf(line, "%d g%02d-%04d", &n, &g, &i); err != nil || fmt.Sprintf("%d g%02d-%04d", n, g, i) != line {
				t.Fatalf("%s: bad line %q", names[f], line)
			}
			if seq++; n != seq || g >= G || i != next[g] {
				t.Fatalf("%s: line %q, want number %d and record %d of g%02d", names[f], line, seq, next[g], g)
			}
			next[g]++
		}
	}
	if seq != G*N {
		t.Errorf("%d records, want %d", seq, G*N)
	}
	if syncs > G*N/4 {
		t.Errorf("%d fsyncs for %d records: no group commit", syncs, G*N)
	}
	t.Logf("%d records, %d fsyncs, %d files", G*N, syncs, len(names))
}

func TestRetentionCount(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprint("compress=", compress), func(t *testing.T) {
			dir := t.TempDir()
			w := open(t, Options{Dir: dir, MaxBackups: 2, Compress: compress, Now: newClock(t0).Now})
			for i := range 5 {
				write(t, w, fmt.Sprint(i))
				if err := w.Rotate(); err != nil {
					t.Fatal(err)
				}
			}
			write(t, w, "5")
			closeW(t, w)
			gz := map[bool]string{true: ".gz"}[compress]
			want := []string{fileName(t0.Add(3)) + gz, fileName(t0.Add(4)) + gz, fileName(t0.Add(5))}
			names, data := contents(t, dir)
			if !slices.Equal(names, want) || !slices.Equal(data, []string{"3", "4", "5"}) {
				t.Errorf("files %q %q, want %q", names, data, want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != len(want) {
				t.Errorf("%d directory entries, want %d", len(ents), len(want))
			}
		})
	}
}

// useMono makes the Writers that New creates from now on take MaxAge's
// monotonic time from mono.
func useMono(t *testing.T, mono func() time.Time) {
	old := monoNow
	monoNow = mono
	t.Cleanup(func() { monoNow = old })
}

func TestRetentionAge(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(t0)
	useMono(t, clk.Now) // a clock that moves as monotonic time does
	w := open(t, Options{Dir: dir, MaxAge: time.Hour, Now: clk.Now})
	step := func(d time.Duration, rec string, rotate bool) {
		t.Helper()
		clk.Set(t0.Add(d))
		write(t, w, rec)
		if rotate {
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	step(0, "1", true)
	step(30*time.Minute, "2", true)
	step(2*time.Hour, "3", true)
	step(2*time.Hour+time.Minute, "4", false)
	f2, f3, f4 := fileName(t0.Add(30*time.Minute)), fileName(t0.Add(2*time.Hour)), fileName(t0.Add(2*time.Hour+time.Minute))
	// File 1 ends before file 2 starts, more than an hour ago; file 2 does not.
	waitFor(t, "file 1 to expire", func() bool {
		return slices.Equal(names(t, dir), []string{f2, f3, f4})
	})
	clk.Set(t0.Add(3*time.Hour + 2*time.Minute))
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	// Files 2 and 3 have now expired; file 4 is the newest and has no end.
	waitFor(t, "files 2 and 3 to expire", func() bool {
		return slices.Equal(names(t, dir), []string{f4})
	})
	closeW(t, w)
}

// A clock that jumps forward while the Writer runs (by 400 days) does not
// age files: retention's time never runs ahead of the monotonic time
// elapsed since New. Once that much time has really passed, they go.
func TestRetentionAgeClockJump(t *testing.T) {
	dir := t.TempDir()
	clk, mono := newClock(t0), newClock(t0)
	useMono(t, mono.Now)
	w := open(t, Options{Dir: dir, MaxAge: time.Hour, Now: clk.Now})
	var want []string
	for i := range 4 {
		clk.Set(t0.Add(time.Duration(i) * time.Second))
		mono.Set(t0.Add(time.Duration(i) * time.Second))
		write(t, w, fmt.Sprint(i))
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		want = append(want, fileName(t0.Add(time.Duration(i)*time.Second)))
	}
	jump := t0.Add(400 * 24 * time.Hour)
	clk.Set(jump)
	write(t, w, "after the jump")
	want = append(want, fileName(jump))
	w.Retain()
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Fatalf("after the clock jumped 400 days: files %q, want all of %q", got, want)
	}
	// Two hours later by the monotonic clock every file but the open one
	// is older than an hour: their successors were created by this Writer
	// over an hour before, whatever their names say.
	mono.Set(t0.Add(2 * time.Hour))
	w.Retain()
	if got := names(t, dir); !slices.Equal(got, want[4:]) {
		t.Fatalf("two hours later: files %q, want %q", got, want[4:])
	}
	closeW(t, w)
}

// The same with the process's monotonic clock: Now jumps 400 days ahead
// of time.Now while the Writer runs, and retention removes nothing.
func TestRetentionAgeClockJumpMonotonic(t *testing.T) {
	dir := t.TempDir()
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	w := open(t, Options{Dir: dir, MaxAge: time.Hour, Now: now})
	for i := range 3 {
		write(t, w, fmt.Sprint(i))
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	before := names(t, dir)
	offset.Store(int64(400 * 24 * time.Hour))
	write(t, w, "after the jump")
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	w.Retain()
	closeW(t, w) // waits for the rotation's retention
	if got := names(t, dir); len(got) != len(before)+1 || !slices.Equal(got[:len(before)], before) {
		t.Fatalf("after the clock jumped 400 days: files %q, want %q and one more", got, before)
	}
}

// A Writer that starts with a clock that is wrong (400 days ahead) counts
// age from when the newest file was last written, not from its clock: it
// removes nothing. After a real downtime (3 hours) it does not count the
// downtime either, but removes files once their age, counted so, exceeds
// MaxAge.
func TestRetentionAgeRestartClock(t *testing.T) {
	dir := t.TempDir()
	clk, mono := newClock(t0), newClock(t0)
	useMono(t, mono.Now)
	w := open(t, Options{Dir: dir, Now: clk.Now})
	var all []string
	for i := range 4 {
		clk.Set(t0.Add(time.Duration(i) * time.Second))
		write(t, w, fmt.Sprint(i))
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		all = append(all, fileName(t0.Add(time.Duration(i)*time.Second)))
	}
	closeW(t, w)
	last := t0.Add(3 * time.Second) // when the newest file was last written
	if err := os.Chtimes(filepath.Join(dir, all[3]), last, last); err != nil {
		t.Fatal(err)
	}
	restart := func(now time.Time) *Writer {
		t.Helper()
		clk.Set(now)
		w := open(t, Options{Dir: dir, MaxAge: time.Hour, Now: clk.Now})
		w.Retain()
		return w
	}

	w = restart(t0.Add(400 * 24 * time.Hour))
	if got := names(t, dir); !slices.Equal(got, all) {
		t.Fatalf("restarted 400 days ahead: files %q, want all of %q", got, all)
	}
	closeW(t, w)

	w = restart(t0.Add(3 * time.Hour))
	if got := names(t, dir); !slices.Equal(got, all) {
		t.Fatalf("restarted 3 hours later: files %q, want all of %q (the downtime does not count)", got, all)
	}
	mono.Set(mono.Now().Add(2 * time.Hour))
	w.Retain()
	if got := names(t, dir); !slices.Equal(got, all[3:]) {
		t.Fatalf("2 hours after the restart: files %q, want %q", got, all[3:])
	}
	closeW(t, w)
}

func TestCompress(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(t0)
	var mu sync.Mutex
	var rotated []string
	w := open(t, Options{
		Dir: dir, Compress: true, Now: clk.Now,
		OnRotate: func(p string) {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("OnRotate(%s) after compression: %v", p, err)
			}
			mu.Lock()
			rotated = append(rotated, p)
			mu.Unlock()
		},
	})
	f1, f2, f3 := fileName(t0), fileName(t0.Add(1)), fileName(t0.Add(2))
	write(t, w, "a\n")
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	write(t, w, "b\n")
	closeW(t, w)

	names, data := contents(t, dir)
	if want := []string{f1 + ".gz", f2}; !slices.Equal(names, want) || !slices.Equal(data, []string{"a\n", "b\n"}) {
		t.Fatalf("files %q %q, want %q", names, data, want)
	}
	if _, err := os.Stat(filepath.Join(dir, f1)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("original still there: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, f1+".gz")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf(".gz mode: %v %v, want 0600", fi.Mode(), err)
	}
	if want := []string{filepath.Join(dir, f1)}; !slices.Equal(rotated, want) {
		t.Errorf("OnRotate got %q, want %q", rotated, want)
	}

	// A new Writer compresses the files it finds and removes leftovers of
	// an interrupted compression.
	stale := filepath.Join(dir, f2+".gz.tmp")
	if err := os.WriteFile(stale, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	w = open(t, Options{Dir: dir, Compress: true, Now: clk.Now})
	write(t, w, "c\n")
	closeW(t, w)
	names, data = contents(t, dir)
	if want := []string{f1 + ".gz", f2 + ".gz", f3}; !slices.Equal(names, want) || !slices.Equal(data, []string{"a\n", "b\n", "c\n"}) {
		t.Errorf("files %q %q, want %q", names, data, want)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("%d directory entries, want 3", len(ents))
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	ts := func(i int) string { return t0.Add(time.Duration(i) * time.Second).Format(timeLayout) }
	name := func(i int) string { return "audit-" + ts(i) + ".jsonl" }
	for _, f := range []string{
		name(2) + ".gz",
		name(1), name(1) + ".gz", // interrupted compression: the plain file wins
		name(0),
		name(3) + ".gz.tmp",
		name(4) + ".tmp",
		"other-" + ts(5) + ".jsonl",
		"audit-" + ts(6) + ".log",
		"audit-20240102T030405Z.jsonl",
		"audit-" + ts(7) + ".jsonl.bak",
		"README",
	} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, name(8)), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		prefix, ext string
		want        []string
	}{
		{"audit", ".jsonl", []string{name(0), name(1), name(2) + ".gz"}},
		{"", "", []string{name(0), name(1), name(2) + ".gz"}},
		{"other", ".jsonl", []string{"other-" + ts(5) + ".jsonl"}},
		{"audit", ".log", []string{"audit-" + ts(6) + ".log"}},
		{"nobody", ".jsonl", nil},
	} {
		got, err := List(dir, tt.prefix, tt.ext)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, f := range tt.want {
			want = append(want, filepath.Join(dir, f))
		}
		if !slices.Equal(got, want) {
			t.Errorf("List(%q, %q) = %q, want %q", tt.prefix, tt.ext, got, want)
		}
	}
	if _, err := List(filepath.Join(dir, "missing"), "", ""); err == nil {
		t.Error("List of a missing directory succeeded")
	}
}

// TestNewNeverAppends starts a Writer in a directory whose newest file is
// from the future (clock skew) and compressed.
func TestNewNeverAppends(t *testing.T) {
	dir := t.TempDir()
	old, future := fileName(t0.Add(-time.Hour)), fileName(t0.Add(time.Hour))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("old"))
	zw.Close()
	for f, b := range map[string][]byte{old: []byte("old"), future + ".gz": gz.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fr := &logFramer{t: t}
	w := open(t, Options{Dir: dir, Framer: fr, Now: newClock(t0).Now})
	write(t, w, "a")
	closeW(t, w)
	f := fileName(t0.Add(time.Hour + 1))
	names, data := contents(t, dir)
	if want := []string{old, future + ".gz", f}; !slices.Equal(names, want) {
		t.Fatalf("files %q, want %q", names, want)
	}
	if data[0] != "old" || !strings.HasPrefix(data[2], "open "+f+" prev="+future+"\n") {
		t.Errorf("contents %q", data)
	}
}

func TestModes(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "a", "b")
	w := open(t, Options{Dir: dir, Compress: true})
	write(t, w, "x")
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	write(t, w, "y")
	closeW(t, w)
	for _, d := range []string{filepath.Join(parent, "a"), dir} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want 0700", d, fi.Mode(), err)
		}
	}
	paths, err := List(dir, "", "")
	if err != nil || len(paths) != 2 || !strings.HasSuffix(paths[0], ".gz") {
		t.Fatalf("List = %q, %v", paths, err)
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want 0600", p, fi.Mode(), err)
		}
	}
}

func TestSyncPolicies(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		fs := &faultFS{}
		w := open(t, Options{Dir: t.TempDir(), OpenFile: fs.OpenFile})
		write(t, w, "a")
		// The record reached the OS before WriteRecord returned.
		if got := readFile(t, w.Path()); got != "a" {
			t.Errorf("file holds %q after the write, want %q", got, "a")
		}
		if _, syncs := fs.counts(); syncs != 0 {
			t.Errorf("%d fsyncs after a write, want 0", syncs)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil { // nothing new to sync
			t.Fatal(err)
		}
		if _, syncs := fs.counts(); syncs != 1 {
			t.Errorf("%d fsyncs after Sync, want 1", syncs)
		}
		write(t, w, "b")
		closeW(t, w)
		if _, syncs := fs.counts(); syncs != 2 {
			t.Errorf("%d fsyncs after Close, want 2", syncs)
		}
	})
	t.Run("always", func(t *testing.T) {
		fs := &faultFS{}
		w := open(t, Options{Dir: t.TempDir(), Sync: SyncAlways, OpenFile: fs.OpenFile})
		write(t, w, "a", "b")
		if _, syncs := fs.counts(); syncs != 2 {
			t.Errorf("%d fsyncs after 2 writes, want 2", syncs)
		}
	})
	t.Run("interval", func(t *testing.T) {
		fs := &faultFS{}
		w := open(t, Options{Dir: t.TempDir(), Sync: SyncInterval, SyncEvery: time.Millisecond, OpenFile: fs.OpenFile})
		write(t, w, "a")
		waitFor(t, "the ticker to fsync", func() bool { _, syncs := fs.counts(); return syncs >= 1 })
		closeW(t, w)
	})
	t.Run("interval without ticks", func(t *testing.T) {
		fs := &faultFS{}
		w := open(t, Options{Dir: t.TempDir(), Sync: SyncInterval, SyncEvery: time.Hour, OpenFile: fs.OpenFile})
		write(t, w, "a")
		if _, syncs := fs.counts(); syncs != 0 {
			t.Errorf("%d fsyncs after a write, want 0", syncs)
		}
		closeW(t, w)
		if _, syncs := fs.counts(); syncs != 1 {
			t.Errorf("%d fsyncs after Close, want 1", syncs)
		}
	})
}

func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	w, err := New(Options{Dir: t.TempDir(), Sync: SyncInterval, SyncEvery: time.Millisecond, Compress: true, MaxBackups: 1})
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, "a")
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	write(t, w, "b")
	closeW(t, w)
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := w.Write([]byte("c")); err != ErrClosed {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	for name, f := range map[string]func() error{
		"WriteRecord": func() error { return w.WriteRecord(nil, nil) },
		"Rotate":      w.Rotate,
		"Sync":        w.Sync,
	} {
		if err := f(); err != ErrClosed {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

// TestCloseWhileWriting checks that a record is in the file exactly when its
// write succeeded, however writes and Close interleave.
func TestCloseWhileWriting(t *testing.T) {
	dir := t.TempDir()
	fs := &faultFS{fakeSync: true}
	w := open(t, Options{Dir: dir, Sync: SyncAlways, OpenFile: fs.OpenFile})
	var mu sync.Mutex
	var ok []string
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				rec := fmt.Sprintf("%d-%d\n", g, i)
				err := w.WriteRecord([]byte(rec), nil)
				if err != nil {
					if err != ErrClosed {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				ok = append(ok, rec)
				mu.Unlock()
			}
		})
	}
	waitFor(t, "some writes", func() bool { mu.Lock(); defer mu.Unlock(); return len(ok) >= 100 })
	var closers sync.WaitGroup
	for range 2 {
		closers.Go(func() {
			if err := w.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	closers.Wait()
	wg.Wait()
	_, data := contents(t, dir)
	got := strings.SplitAfter(strings.Join(data, ""), "\n")
	got = got[:len(got)-1]
	slices.Sort(got)
	slices.Sort(ok)
	if !slices.Equal(got, ok) {
		t.Errorf("file holds %d records, %d writes succeeded", len(got), len(ok))
	}
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, tt := range []struct {
		name   string
		policy Policy
		framer Framer
	}{
		{"none", SyncNone, nil},
		{"always", SyncAlways, nil},
		{"always with framer", SyncAlways, lineFramer{}},
	} {
		fs := &faultFS{fakeSync: true}
		w := open(t, Options{Dir: t.TempDir(), Sync: tt.policy, Framer: tt.framer, OpenFile: fs.OpenFile})
		rec := []byte("a record")
		write(t, w, "warm up")
		if n := testing.AllocsPerRun(100, func() { w.WriteRecord(rec, nil) }); n != 0 {
			t.Errorf("%s: %v allocations per WriteRecord, want 0", tt.name, n)
		}
	}
}

// lineFramer ends each record with a newline.
type lineFramer struct{}

func (lineFramer) Open(b []byte, _, _ string) []byte  { return b }
func (lineFramer) Close(b []byte, _, _ string) []byte { return b }
func (lineFramer) Frame(b, rec []byte, _ any) []byte  { return append(append(b, rec...), '\n') }
func (lineFramer) Len(rec []byte, _ any) int          { return len(rec) + 1 }
func (lineFramer) Commit()                            {}
func (lineFramer) Rollback()                          {}

// TestOpenCompressedSinceListed: Open reads a plain file, a .gz, and a
// plain file that was replaced by its .gz after it was listed.
func TestOpenCompressedSinceListed(t *testing.T) {
	dir := t.TempDir()
	plain, gz := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl.gz")
	if err := os.WriteFile(plain, []byte("plain\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("compressed\n"))
	zw.Close()
	if err := os.WriteFile(gz, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		plain:                         "plain\n",
		gz:                            "compressed\n",
		strings.TrimSuffix(gz, ".gz"): "compressed\n", // listed plain, compressed since
	} {
		rc, err := Open(path)
		if err != nil {
			t.Fatalf("Open(%s): %v", filepath.Base(path), err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != want {
			t.Errorf("Open(%s) read %q, %v; want %q", filepath.Base(path), got, err, want)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing.jsonl")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing file: %v", err)
	}
}

// A clock that is behind when the Writer starts (30 days) and set right
// while it runs does not stop retention: the files this Writer created
// age by the monotonic time since it created them (the review's probe: all
// seven files stayed).
func TestRetentionAgeClockCorrectedForward(t *testing.T) {
	dir := t.TempDir()
	behind := t0.Add(-30 * 24 * time.Hour)
	clk, mono := newClock(behind), newClock(t0)
	useMono(t, mono.Now)
	w := open(t, Options{Dir: dir, MaxAge: time.Hour, Now: clk.Now})
	write(t, w, "while behind")
	clk.Set(t0) // NTP sets it right
	for i := 1; i <= 6; i++ {
		at := t0.Add(time.Duration(i) * time.Hour)
		clk.Set(at)
		mono.Set(at)
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		write(t, w, fmt.Sprint(i))
	}
	w.Retain()
	closeW(t, w)
	// Six hours: the open file, the one before it (its successor was
	// created just now) and the one before that (its successor exactly an
	// hour ago: not more than MaxAge) stay; the four before those go.
	if got := names(t, dir); len(got) != 3 || got[2] != fileName(t0.Add(6*time.Hour)) {
		t.Fatalf("files %q, want the last 3 of 7", got)
	}
}
