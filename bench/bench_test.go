// Package bench compares slogaudit with its peers on one record.
//
// It is a separate module (see go.mod) so that the peers' dependencies
// (zap, lumberjack, the OpenTelemetry SDK, masq, x/perf) never enter the
// root module. Run everything with ./run.sh (usage in its header); what
// the results say is in PROFILE.md.
package bench

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/otelbridge"
	"github.com/slogaudit/slogaudit/rotate"
)

// benchKey is the 32-byte MAC key of every audit benchmark.
var benchKey = func() []byte {
	k := make([]byte, chain.KeySize)
	for i := range k {
		k[i] = 0x42
	}
	return k
}()

// spanCtx carries a sampled span, as in handler/bench_test.go.
func spanCtx() context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// logRecord logs the benchmark record of handler/bench_test.go (benchLog):
// a message and five attributes, one of them a group of two.
func logRecord(ctx context.Context, l *slog.Logger) {
	l.LogAttrs(ctx, slog.LevelInfo, "credential accessed",
		slog.String("resource", "obsidian_api_key"),
		slog.Int("attempt", 3),
		slog.Bool("cached", false),
		slog.Duration("elapsed", 1500*time.Microsecond),
		clientGroup,
	)
}

// clientGroup is the record's nested group of two, built once, as a caller
// that cares about allocations builds it (slog.Group boxes its arguments and
// allocates its slice on every call): what is measured is the logging, for
// every contender alike.
var clientGroup = slog.GroupAttrs("client", slog.String("address", "127.0.0.1"), slog.Int("port", 53211))

// benchLog logs the record b.N times through l.
func benchLog(b *testing.B, l *slog.Logger) {
	ctx := spanCtx()
	b.ReportAllocs()
	// The loop's goroutine keeps its thread, whose CPU time is the caller's
	// own cost (caller-cpu-ns/op), apart from background goroutines.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	defer reportCPU(b)()
	t0, ok := threadCPUTime()
	for b.Loop() {
		logRecord(ctx, l)
	}
	if t1, ok2 := threadCPUTime(); ok && ok2 && b.N > 0 {
		b.ReportMetric(float64(t1-t0)/float64(b.N), "caller-cpu-ns/op")
	}
}

// reportCPU, deferred with its result, reports the process's CPU time per
// op (cpu-ns/op) from then to the end of the benchmark function.
func reportCPU(b *testing.B) func() {
	start, ok := cpuTime()
	return func() {
		end, ok2 := cpuTime()
		if ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// newAudit returns our handler writing to a fresh directory, every record
// of whose logger is an audit record kept out of the app handler.
func newAudit(b *testing.B, policy rotate.Policy) *handler.Handler {
	b.Helper()
	dir := b.TempDir()
	h, err := handler.New(handler.Options{
		Dir: dir, Key: benchKey, App: slog.DiscardHandler, AuditOnlyToFile: true,
		OnError: func(err error) { b.Error(err) },
		Rotate:  rotate.Options{Sync: policy, MaxBytes: 64 << 20},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := h.Close(); err != nil {
			b.Error(err)
		}
		verifyOutput(b, dir)
	})
	return h
}

// verifyOutput checks the chain a benchmark wrote: speed must not cost
// integrity (issue 7: verify on benchmark output passes).
func verifyOutput(b *testing.B, dir string) {
	b.Helper()
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: benchKey})
	if err != nil {
		b.Fatal(err)
	}
	if !rep.Intact || len(rep.Problems()) > 0 {
		b.Fatalf("benchmark output in %s does not verify: %+v", dir, rep.Problems())
	}
}

func newLumberjack(b *testing.B) *lumberjack.Logger {
	lj := &lumberjack.Logger{Filename: filepath.Join(b.TempDir(), "peer.log"), MaxSize: 64}
	b.Cleanup(func() { lj.Close() })
	return lj
}

// ---- single writer, file ----

func BenchmarkPeerSlogJSONLumberjack(b *testing.B) {
	benchLog(b, slog.New(slog.NewJSONHandler(newLumberjack(b), nil)))
}

func BenchmarkPeerSlogJSONFile(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "peer.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	benchLog(b, slog.New(slog.NewJSONHandler(f, nil)))
}

// BenchmarkPeerZapLumberjack logs the same fields with zap's own API, the
// way a zap user would; durations and times are encoded as slog does.
func BenchmarkPeerZapLumberjack(b *testing.B) {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	ec.EncodeDuration = zapcore.NanosDurationEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.AddSync(newLumberjack(b)), zapcore.InfoLevel)
	l := zap.New(core)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		l.Info("credential accessed",
			zap.String("resource", "obsidian_api_key"),
			zap.Int("attempt", 3),
			zap.Bool("cached", false),
			zap.Duration("elapsed", 1500*time.Microsecond),
			zap.Dict("client", zap.String("address", "127.0.0.1"), zap.Int("port", 53211)),
		)
	}
}

// discardExporter is an sdk/log exporter that drops every batch.
type discardExporter struct{}

func (discardExporter) Export(context.Context, []sdklog.Record) error { return nil }
func (discardExporter) Shutdown(context.Context) error                { return nil }
func (discardExporter) ForceFlush(context.Context) error              { return nil }

// BenchmarkPeerOtelslogBatch is the OpenTelemetry path with the network
// taken out: the bridge converts the record, the BatchProcessor queues it
// (default queue and batch sizes) and a goroutine hands batches to an
// exporter that discards them.
func BenchmarkPeerOtelslogBatch(b *testing.B) {
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(discardExporter{})))
	b.Cleanup(func() { lp.Shutdown(context.Background()) })
	benchLog(b, otelslog.NewLogger("slogaudit/bench", otelslog.WithLoggerProvider(lp)))
}

// ---- ours, single writer ----

func BenchmarkAuditFileNone(b *testing.B) {
	benchLog(b, handler.Logger(slog.New(newAudit(b, rotate.SyncNone))))
}

func BenchmarkAuditFileInterval(b *testing.B) {
	benchLog(b, handler.Logger(slog.New(newAudit(b, rotate.SyncInterval))))
}

func BenchmarkAuditFileAlways(b *testing.B) {
	benchLog(b, handler.Logger(slog.New(newAudit(b, rotate.SyncAlways))))
}

// BenchmarkAuditFileOTLP is AuditFileNone plus the OTLP leg (otelbridge)
// to an exporter that discards; its peer is BenchmarkPeerOtelslogBatch.
// Conversion and export run on the bridge's goroutine, as they do in use.
func BenchmarkAuditFileOTLP(b *testing.B) {
	dir := b.TempDir()
	bridge, err := otelbridge.New(discardExporter{}, otelbridge.WithDir(dir))
	if err != nil {
		b.Fatal(err)
	}
	h, err := handler.New(handler.Options{
		Dir: dir, Key: benchKey, App: slog.DiscardHandler, AuditOnlyToFile: true,
		OnError: func(err error) { b.Error(err) },
		Rotate:  rotate.Options{Sync: rotate.SyncNone, MaxBytes: 64 << 20},
		Sinks:   []handler.Sink{bridge},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := h.Close(); err != nil {
			b.Error(err)
		}
		bridge.Shutdown(context.Background())
		verifyOutput(b, dir)
	})
	benchLog(b, handler.Logger(slog.New(h)))
}

// ---- non-audit records ----

func BenchmarkAppPassthrough(b *testing.B) {
	h, err := handler.New(handler.Options{Dir: b.TempDir(), Key: benchKey, App: slog.NewJSONHandler(io.Discard, nil)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	benchLog(b, slog.New(h))
}

func BenchmarkPeerAppBare(b *testing.B) {
	benchLog(b, slog.New(slog.NewJSONHandler(io.Discard, nil)))
}

// ---- many writers, durable ----

const parallelism = 16 // goroutines per GOMAXPROCS

func benchParallel(b *testing.B, l *slog.Logger) {
	ctx := spanCtx()
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			logRecord(ctx, l)
		}
	})
}

func BenchmarkAuditParallelAlways(b *testing.B) {
	benchParallel(b, handler.Logger(slog.New(newAudit(b, rotate.SyncAlways))))
}

// fsyncFile is the naive durable writer: one write(2) and one fsync per
// record, under a mutex.
type fsyncFile struct {
	mu sync.Mutex
	f  *os.File
}

func (w *fsyncFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.f.Write(p)
	if err != nil {
		return n, err
	}
	return n, w.f.Sync()
}

func BenchmarkNaiveParallelFsync(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "naive.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	benchParallel(b, slog.New(slog.NewJSONHandler(&fsyncFile{f: f}, nil)))
}

// ---- verification ----

// verifyLog is a ~64 MiB chain of benchmark records in files of at most
// 16 MiB, written once per process and shared by BenchmarkVerify and
// BenchmarkSHA256Raw.
var verifyLog struct {
	once  sync.Once
	dir   string
	files []string
	bytes int64
	err   error
}

const verifyTarget = 64 << 20

func verifyDir(b *testing.B) (dir string, files []string, total int64) {
	v := &verifyLog
	v.once.Do(func() {
		v.dir, v.err = os.MkdirTemp("", "slogaudit-bench-verify-")
		if v.err != nil {
			return
		}
		h, err := handler.New(handler.Options{
			Dir: v.dir, Key: benchKey, App: slog.DiscardHandler, AuditOnlyToFile: true,
			Rotate: rotate.Options{Sync: rotate.SyncNone, MaxBytes: 16 << 20},
		})
		if err != nil {
			v.err = err
			return
		}
		l, ctx := handler.Logger(slog.New(h)), spanCtx()
		for i := 0; ; i++ {
			logRecord(ctx, l)
			if i%4096 == 0 && size(v.dir) >= verifyTarget {
				break
			}
		}
		if v.err = h.Close(); v.err != nil {
			return
		}
		v.files, v.err = rotate.List(v.dir, chain.DefaultPrefix, chain.DefaultExt)
		v.bytes = size(v.dir)
	})
	if v.err != nil {
		b.Fatal(v.err)
	}
	return v.dir, v.files, v.bytes
}

// size returns the bytes in the regular files of dir.
func size(dir string) int64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

func BenchmarkVerify(b *testing.B) {
	dir, _, total := verifyDir(b)
	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for b.Loop() {
		rep, err := chain.Verify(dir, chain.VerifyOptions{Key: benchKey})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Intact {
			b.Fatalf("verify log is not intact: %+v", rep.Problems())
		}
	}
}

// BenchmarkSHA256Raw reads the same files and hashes their bytes once, with
// a 64 KiB buffer: the floor that Verify's I/O and hashing are measured
// against.
func BenchmarkSHA256Raw(b *testing.B) {
	_, files, total := verifyDir(b)
	buf := make([]byte, 64<<10)
	h := sha256.New()
	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for b.Loop() {
		h.Reset()
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				b.Fatal(err)
			}
			_, err = io.CopyBuffer(struct{ io.Writer }{h}, struct{ io.Reader }{f}, buf)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		h.Sum(nil)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if verifyLog.dir != "" {
		os.RemoveAll(verifyLog.dir)
	}
	os.Exit(code)
}
