package rotate

import (
	"bytes"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// benchWrite measures WriteRecord of 128-byte records to real files. Under
// SyncAlways it also reports the records per fsync (recs/sync) and the mean
// fsync time (µs/sync), measured by a File wrapped around the default one.
// It reports cpu-ns/op, the process's user+system CPU time per record, which
// moves less than the wall time on a busy machine.
func benchWrite(b *testing.B, policy Policy, parallelism int) {
	var syncs, syncNs atomic.Int64
	opts := Options{Dir: b.TempDir(), Sync: policy, MaxBytes: 64 << 20, MaxBackups: 1} // bound the disk space
	if policy == SyncAlways {
		opts.OpenFile = func(name string, flag int, perm os.FileMode) (File, error) {
			f, err := openOSFile(name, flag, perm)
			if err != nil {
				return nil, err
			}
			return &syncCounter{f, &syncs, &syncNs}, nil
		}
	}
	w, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	rec := append(bytes.Repeat([]byte("x"), 127), '\n')
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	cpu0 := cpuTime()
	s0, ns0 := syncs.Load(), syncNs.Load()
	if parallelism > 0 {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := w.WriteRecord(rec, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for b.Loop() {
			if err := w.WriteRecord(rec, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	if n := syncs.Load() - s0; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "recs/sync")
		b.ReportMetric(float64(syncNs.Load()-ns0)/float64(n)/1e3, "µs/sync")
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// syncCounter counts the Sync calls of a File and the time they take.
type syncCounter struct {
	File
	n, ns *atomic.Int64
}

func (f *syncCounter) Sync() error {
	t := time.Now()
	err := f.File.Sync()
	f.ns.Add(int64(time.Since(t)))
	f.n.Add(1)
	return err
}

// benchOverhead measures WriteRecord to a File that discards the bytes and
// syncs in no time: the Writer's own cost per record, without the write(2)
// and the fsync.
func benchOverhead(b *testing.B, policy Policy) {
	w, err := New(Options{Dir: b.TempDir(), Sync: policy, OpenFile: func(string, int, os.FileMode) (File, error) { return discard{}, nil }})
	if err != nil {
		b.Fatal(err)
	}
	rec := append(bytes.Repeat([]byte("x"), 127), '\n')
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if err := w.WriteRecord(rec, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// discard is a File that accepts every write and keeps nothing.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Sync() error                 { return nil }
func (discard) Truncate(int64) error        { return nil }
func (discard) Close() error                { return nil }

func BenchmarkWriteOverhead(b *testing.B)       { benchOverhead(b, SyncNone) }
func BenchmarkWriteOverheadAlways(b *testing.B) { benchOverhead(b, SyncAlways) }
func BenchmarkWriteNone(b *testing.B)           { benchWrite(b, SyncNone, 0) }
func BenchmarkWriteNoneParallel(b *testing.B)   { benchWrite(b, SyncNone, 16) }
func BenchmarkWriteAlways(b *testing.B)         { benchWrite(b, SyncAlways, 0) }
func BenchmarkWriteAlwaysParallel(b *testing.B) { benchWrite(b, SyncAlways, 16) }
