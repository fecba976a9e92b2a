package rotate

import (
	"bytes"
	"testing"
)

// benchWrite measures WriteRecord of 128-byte records to real files.
func benchWrite(b *testing.B, policy Policy, parallelism int) {
	// Bound the disk space the benchmark takes.
	w, err := New(Options{Dir: b.TempDir(), Sync: policy, MaxBytes: 64 << 20, MaxBackups: 1})
	if err != nil {
		b.Fatal(err)
	}
	rec := append(bytes.Repeat([]byte("x"), 127), '\n')
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
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
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkWriteNone(b *testing.B)           { benchWrite(b, SyncNone, 0) }
func BenchmarkWriteAlways(b *testing.B)         { benchWrite(b, SyncAlways, 0) }
func BenchmarkWriteAlwaysParallel(b *testing.B) { benchWrite(b, SyncAlways, 16) }
