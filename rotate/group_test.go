package rotate

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// orderArg is the arg of a record written by writer g as its i-th record,
// after done records (of all writers) had been written.
type orderArg struct {
	g, i int
	done int64
	data *byte // the caller's record, to tell the fast path from the queue
}

// orderFramer checks, as records are framed, that each writer's records
// come in the order it wrote them, and that a record comes after every record
// whose WriteRecord had returned before it was written. It counts the records
// framed from the caller's slice (the fast path) and from the queue. It must
// not see a rollback.
type orderFramer struct {
	t          *testing.T
	busy       atomic.Int32
	next       []int // next record expected from each writer
	framed     int64
	fast, slow int
}

func (f *orderFramer) enter() {
	if f.busy.Add(1) != 1 {
		f.t.Error("Framer called concurrently")
	}
}

func (f *orderFramer) exit() { f.busy.Add(-1) }

func (f *orderFramer) Open(b []byte, name, _ string) []byte {
	f.enter()
	defer f.exit()
	return append(b, "open "+name+"\n"...)
}

func (f *orderFramer) Close(b []byte, _, reason string) []byte {
	f.enter()
	defer f.exit()
	return append(b, "close "+reason+"\n"...)
}

func (f *orderFramer) Frame(b, rec []byte, arg any) []byte {
	f.enter()
	defer f.exit()
	a := arg.(*orderArg)
	if want := fmt.Sprintf("%d-%d", a.g, a.i); string(rec) != want {
		f.t.Errorf("record %q, want %q", rec, want)
	}
	if a.i != f.next[a.g] {
		f.t.Errorf("record %d-%d framed when %d-%d was due", a.g, a.i, a.g, f.next[a.g])
	}
	f.next[a.g] = a.i + 1
	if f.framed < a.done {
		f.t.Errorf("record %d-%d framed after %d records, but was written after %d had been", a.g, a.i, f.framed, a.done)
	}
	f.framed++
	if unsafe.SliceData(rec) == a.data {
		f.fast++
	} else {
		f.slow++
	}
	return append(append(b, rec...), '\n')
}

func (f *orderFramer) Len(rec []byte, _ any) int { return len(rec) + 1 }
func (f *orderFramer) Commit()                   {}
func (f *orderFramer) Rollback()                 { f.t.Error("unexpected Rollback") }

// TestFastPathOrder mixes writes that find the Writer idle, and take the fast
// path, with writes that queue behind a leader, plus concurrent Sync and
// Rotate calls. Records must be framed in the order they were accepted: each
// writer's in its own order, and after every record that had been written
// before them. Run it with -race.
func TestFastPathOrder(t *testing.T) {
	for _, policy := range []Policy{SyncNone, SyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			const G, N = 6, 300
			dir := t.TempDir()
			fs := &faultFS{fakeSync: true, syncDelay: 20 * time.Microsecond}
			fr := &orderFramer{t: t, next: make([]int, G)}
			w := open(t, Options{Dir: dir, Sync: policy, MaxBytes: 4 << 10, Framer: fr, OpenFile: fs.OpenFile})
			var done atomic.Int64
			var solo sync.Mutex // held across a write to make it the only one
			var wg sync.WaitGroup
			for g := range G {
				wg.Go(func() {
					for i := range N {
						rec := []byte(fmt.Sprintf("%d-%d", g, i))
						a := &orderArg{g: g, i: i, done: done.Load(), data: &rec[0]}
						alone := (i/10+g)%3 == 0 // in runs, so that lone writes follow crowded ones
						if alone {
							solo.Lock()
						}
						err := w.WriteRecord(rec, a)
						done.Add(1)
						if alone {
							solo.Unlock()
						}
						if err != nil {
							t.Error(err)
							return
						}
						if i%50 == 0 {
							time.Sleep(100 * time.Microsecond)
						}
					}
				})
			}
			wg.Go(func() {
				for i := range 20 {
					var err error
					if i%2 == 0 {
						err = w.Sync()
					} else {
						err = w.Rotate()
					}
					if err != nil {
						t.Error(err)
					}
					time.Sleep(200 * time.Microsecond)
				}
			})
			wg.Wait()
			closeW(t, w)
			t.Logf("%d records framed from the caller's slice, %d from the queue", fr.fast, fr.slow)
			if fr.fast == 0 || fr.slow == 0 {
				t.Errorf("fast path taken %d times, queue %d times: want both", fr.fast, fr.slow)
			}

			// The files hold every record, each writer's in order.
			next := make([]int, G)
			_, data := contents(t, dir)
			for _, d := range data {
				for _, line := range strings.Split(strings.TrimSuffix(d, "\n"), "\n") {
					if strings.HasPrefix(line, "open ") || strings.HasPrefix(line, "close ") {
						continue
					}
					var g, i int
					if _, err := fmt.Sscanf(line, "%d-%d", &g, &i); err != nil || g >= G || i != next[g] {
						t.Fatalf("line %q out of order (want record %d of %d)", line, next[min(g, G-1)], g)
					}
					next[g]++
				}
			}
			for g, n := range next {
				if n != N {
					t.Errorf("writer %d: %d records in the files, want %d", g, n, N)
				}
			}
		})
	}
}

// TestLoneWriterFastPath checks that a lone writer always takes the fast
// path, under every policy: its records are framed from its own slice, and
// under SyncAlways it never waits to gather other writers' records.
func TestLoneWriterFastPath(t *testing.T) {
	for _, policy := range []Policy{SyncNone, SyncInterval, SyncAlways} {
		fs := &faultFS{fakeSync: true, syncDelay: time.Millisecond}
		fr := &orderFramer{t: t, next: make([]int, 1)}
		w := open(t, Options{Dir: t.TempDir(), Sync: policy, SyncEvery: time.Hour, Framer: fr, OpenFile: fs.OpenFile})
		const N = 20
		for i := range N {
			rec := []byte(fmt.Sprintf("0-%d", i))
			if err := w.WriteRecord(rec, &orderArg{i: i, done: int64(i), data: &rec[0]}); err != nil {
				t.Fatal(err)
			}
		}
		if fr.fast != N {
			t.Errorf("%v: %d of %d records took the fast path", policy, fr.fast, N)
		}
		closeW(t, w)
	}
}

// TestGatherBatches has N writers write records in a loop under SyncAlways,
// with an fsync that takes 2 ms. Without a gather window they would split
// into two cohorts that take turns, about N/2 records per fsync; with it,
// once the Writer has seen them all, every fsync carries all N.
func TestGatherBatches(t *testing.T) {
	const N, K = 8, 25
	fs := &faultFS{fakeSync: true, syncDelay: 2 * time.Millisecond}
	w := open(t, Options{Dir: t.TempDir(), Sync: SyncAlways, OpenFile: fs.OpenFile})
	var wg sync.WaitGroup
	for g := range N {
		wg.Go(func() {
			for i := range K {
				if _, err := fmt.Fprintf(w, "%d-%d\n", g, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	closeW(t, w)
	batches := fs.syncBatches()
	t.Logf("%d records, %d fsyncs: %v", N*K, len(batches), batches)
	if len(batches) < 4 {
		t.Fatalf("%d fsyncs", len(batches))
	}
	// The first fsyncs learn how many writers there are, and the last ones
	// see them finish.
	steady := batches[2 : len(batches)-2]
	full := 0
	for _, n := range steady {
		if n > N {
			t.Errorf("an fsync carried %d records from %d writers", n, N)
		}
		if n == N {
			full++
		}
	}
	t.Logf("%d of %d fsyncs in the steady state carried all %d writers' records", full, len(steady), N)
	if raceEnabled {
		// The race detector slows the writers down so much that they often
		// miss the gather window.
		return
	}
	sorted := slices.Sorted(slices.Values(steady))
	if median := sorted[len(sorted)/2]; median < N {
		t.Errorf("median %d records per fsync, want %d", median, N)
	}
	if full < len(steady)*3/4 {
		t.Errorf("only %d of %d fsyncs carried all %d writers' records", full, len(steady), N)
	}
}

// TestZeroAllocsContended checks that writes that queue behind a leader, and
// a leader that gathers, do not allocate either.
func TestZeroAllocsContended(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, policy := range []Policy{SyncNone, SyncAlways} {
		fs := &faultFS{fakeSync: true, syncDelay: 50 * time.Microsecond}
		w := open(t, Options{Dir: t.TempDir(), Sync: policy, Framer: lineFramer{}, OpenFile: fs.OpenFile})
		rec := []byte("a record")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := w.WriteRecord(rec, nil); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		for range 200 { // let the queues grow to their working size
			w.WriteRecord(rec, nil)
		}
		n := testing.AllocsPerRun(200, func() { w.WriteRecord(rec, nil) })
		close(stop)
		wg.Wait()
		if n != 0 {
			t.Errorf("%v: %v allocations per contended WriteRecord, want 0", policy, n)
		}
	}
}
