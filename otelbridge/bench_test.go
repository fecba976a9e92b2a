package otelbridge

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/chain"
)

type discardExporter struct{}

func (discardExporter) Export(context.Context, []sdklog.Record) error { return nil }
func (discardExporter) Shutdown(context.Context) error                { return nil }
func (discardExporter) ForceFlush(context.Context) error              { return nil }

// A typical audit record body as the handler passes it (about 330 bytes).
var benchBody = []byte(`"time":"2026-11-27T01:16:10.123456789Z","level":"INFO","msg":"get credential obsidian_api_key: success",` +
	`"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","principal":"alice",` +
	`"client_addr":"10.0.0.7","event":"credential_access","action":"get","resource_type":"credential",` +
	`"resource":"obsidian_api_key","status":"success"`)

// BenchmarkSinkAudit measures what Audit costs the logging goroutine.
//
//   - caller: the copy into the queue alone (no exporter goroutine; the
//     queue is emptied every 4096 records with the timer stopped);
//   - caller-parallel: the same from GOMAXPROCS goroutines (lock contention);
//   - with-exporter: a running Bridge whose goroutine converts and exports
//     (to a discarding exporter) concurrently, sharing the CPUs; the timer
//     stops every 4096 records until it has caught up, so nothing is
//     dropped. Allocations here are mostly the exporter goroutine's;
//   - full: the queue is full and the record is counted as dropped.
func BenchmarkSinkAudit(b *testing.B) {
	callerOnly := func() *Bridge {
		in, _ := newInstruments(noop.NewMeterProvider())
		return &Bridge{cfg: newConfig([]Option{WithQueueSize(64 << 20)}), inst: in, wake: make(chan struct{}, 1)}
	}
	empty := func(br *Bridge) {
		br.mu.Lock()
		br.q.ents, br.q.data, br.qBytes = br.q.ents[:0], br.q.data[:0], 0
		br.mu.Unlock()
		select {
		case <-br.wake:
		default:
		}
	}
	b.Run("caller", func(b *testing.B) {
		br := callerOnly()
		b.ReportAllocs()
		b.SetBytes(int64(len(benchBody)))
		seq := uint64(0)
		for b.Loop() {
			seq++
			br.Audit(benchBody, chain.Position{Seq: seq})
			if seq%4096 == 0 {
				b.StopTimer()
				empty(br)
				b.StartTimer()
			}
		}
	})
	b.Run("caller-parallel", func(b *testing.B) {
		br := callerOnly()
		b.ReportAllocs()
		b.SetBytes(int64(len(benchBody)))
		var seq atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if s := seq.Add(1); s%4096 == 0 {
					empty(br) // timed, but rare
				} else {
					br.Audit(benchBody, chain.Position{Seq: s})
				}
			}
		})
	})
	b.Run("with-exporter", func(b *testing.B) {
		br, err := New(discardExporter{}, WithDir(b.TempDir()), WithBatch(512, time.Millisecond), WithQueueSize(64<<20))
		if err != nil {
			b.Fatal(err)
		}
		defer func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			br.Shutdown(ctx) // no flush
		}()
		b.ReportAllocs()
		b.SetBytes(int64(len(benchBody)))
		seq := uint64(0)
		for b.Loop() {
			seq++
			br.Audit(benchBody, chain.Position{Seq: seq})
			if seq%4096 == 0 {
				b.StopTimer()
				for deadline := time.Now().Add(10 * time.Second); ; {
					br.mu.Lock()
					n := br.qBytes
					br.mu.Unlock()
					if n == 0 {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("queue not drained: %d bytes", n)
					}
					time.Sleep(100 * time.Microsecond)
				}
				b.StartTimer()
			}
		}
		b.StopTimer()
		if d := br.Stats().Dropped; d != 0 {
			b.Fatalf("dropped %d", d)
		}
	})
	b.Run("full", func(b *testing.B) {
		br := callerOnly()
		br.cfg.queueBytes = 1
		b.ReportAllocs()
		seq := uint64(0)
		for b.Loop() {
			seq++
			br.Audit(benchBody, chain.Position{Seq: seq})
		}
	})
}

// BenchmarkConvert is the plain way to turn a record into an SDK record:
// convert, the log.Record to Logger.Emit with the trace ids in a context,
// Clone in the processor; what the exporter goroutine does instead is
// BenchmarkEmit (TestEmitEqualsPlainPath: same records).
func BenchmarkConvert(b *testing.B) {
	proc := &ackProcessor{exp: discardExporter{}}
	p := sdklog.NewLoggerProvider(sdklog.WithProcessor(proc), sdklog.WithAllowKeyDuplication())
	logger := p.Logger(scopeName)
	b.ReportAllocs()
	now := time.Now()
	for b.Loop() {
		rec, sc, err := convert(benchBody, chain.Position{Seq: 1}, now)
		if err != nil {
			b.Fatal(err)
		}
		logger.Emit(trace.ContextWithSpanContext(context.Background(), sc), rec)
		if len(proc.batch) == 512 {
			proc.reset()
		}
	}
}

// BenchmarkEmit is what the exporter goroutine does per record of a batch
// taken from the queue: exporter.emitPending (convert, Emit, the
// processor), the batch handed to a discarding exporter every 512 records.
func BenchmarkEmit(b *testing.B) {
	used := 0
	benchEmit(b, func(e *exporter, seq uint64, now time.Time) {
		if used == len(e.pending) {
			e.pending, used = e.pending[:0], 0 // as build leaves it
			// What take makes of 512 queued records.
			e.b.q.data = append(e.b.q.data[:0], benchBody...)
			for i := range 512 {
				e.b.q.ents = append(e.b.q.ents, qent{seq: seq + uint64(i), off: 0, n: len(benchBody)})
			}
			e.b.qBytes += 512 * (len(benchBody) + entOverhead)
			e.take()
		}
		e.emitPending(e.pending[used], now)
		used++
	})
}

// BenchmarkEmitFile is BenchmarkEmit for records read back from the files
// (exporter.emit, which copies the line).
func BenchmarkEmitFile(b *testing.B) {
	body := append([]byte(nil), benchBody...)
	benchEmit(b, func(e *exporter, seq uint64, now time.Time) {
		e.emit(body, chain.Position{Seq: seq}, now)
	})
}

func benchEmit(b *testing.B, emit func(e *exporter, seq uint64, now time.Time)) {
	br, err := newBridge(discardExporter{}, nil, newConfig([]Option{WithDir(b.TempDir())}))
	if err != nil {
		b.Fatal(err)
	}
	e := &exporter{b: br}
	now := time.Now()
	b.ReportAllocs()
	t0, ok := cpuTime()
	seq := uint64(0)
	for b.Loop() {
		seq++
		emit(e, seq, now)
		if len(br.proc.batch) == 512 {
			br.proc.export(context.Background(), len(br.proc.batch))
			br.proc.reset()
			e.bn, e.bBytes, e.bEnts = 0, 0, e.bEnts[:0]
		}
	}
	if t1, ok2 := cpuTime(); ok && ok2 {
		b.ReportMetric(float64(t1-t0)/float64(b.N), "cpu-ns/op")
	}
}
