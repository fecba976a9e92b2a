package bench

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/rotate"
)

// Diagnostic benchmarks: they split the costs of the headline ones and are
// not part of the target ratios.

// nopHandler is enabled and does nothing, so that only building the record
// and slog.Logger's own work are measured.
type nopHandler struct{}

func (nopHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (nopHandler) Handle(context.Context, slog.Record) error { return nil }
func (h nopHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h nopHandler) WithGroup(string) slog.Handler           { return h }

// BenchmarkDiagRecordOnly is the floor of every slog contender: the
// caller's side of the benchmark record (slog.Group boxes its two Attrs into
// ...any and argsToAttrSlice builds a slice: 4 allocations, 224 B) and
// slog.Logger.LogAttrs.
func BenchmarkDiagRecordOnly(b *testing.B) {
	benchLog(b, slog.New(nopHandler{}))
}

// BenchmarkDiagAuditFileNoneNoRedaction is AuditFileNone without the
// default redaction pass.
func BenchmarkDiagAuditFileNoneNoRedaction(b *testing.B) {
	h, err := handler.New(handler.Options{
		Dir: b.TempDir(), Key: benchKey, App: slog.DiscardHandler, AuditOnlyToFile: true, NoRedaction: true,
		OnError: func(err error) { b.Error(err) },
		Rotate:  rotate.Options{Sync: rotate.SyncNone, MaxBytes: 64 << 20},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	benchLog(b, handler.Logger(slog.New(h)))
}

// BenchmarkDiagAppPassthroughNoSpan is AppPassthrough with a context that
// carries no span, so no trace_id/span_id are added to the app record.
func BenchmarkDiagAppPassthroughNoSpan(b *testing.B) {
	h, err := handler.New(handler.Options{Dir: b.TempDir(), Key: benchKey, App: slog.NewJSONHandler(io.Discard, nil)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	l := slog.New(h)
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		logRecord(ctx, l)
	}
}

// BenchmarkDiagAppPassthroughNoRedaction is AppPassthrough without the
// default redaction pass.
func BenchmarkDiagAppPassthroughNoRedaction(b *testing.B) {
	h, err := handler.New(handler.Options{Dir: b.TempDir(), Key: benchKey, App: slog.NewJSONHandler(io.Discard, nil), NoRedaction: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	benchLog(b, slog.New(h))
}

// BenchmarkDiagAuditFileNoneGroupAttrs is AuditFileNone with the group
// built by slog.GroupAttrs instead of slog.Group, which does not box its
// Attrs into ...any. One allocation stays, in any handler: the group's
// []Attr, which escapes with the record.
func BenchmarkDiagAuditFileNoneGroupAttrs(b *testing.B) {
	l := handler.Logger(slog.New(newAudit(b, rotate.SyncNone)))
	ctx := spanCtx()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		l.LogAttrs(ctx, slog.LevelInfo, "credential accessed",
			slog.String("resource", "obsidian_api_key"),
			slog.Int("attempt", 3),
			slog.Bool("cached", false),
			slog.Duration("elapsed", 1500*time.Microsecond),
			slog.GroupAttrs("client", slog.String("address", "127.0.0.1"), slog.Int("port", 53211)),
		)
	}
}

// traceHandler adds trace_id and span_id to each record as AppPassthrough
// does, the way a minimal OpenTelemetry-aware slog wrapper would.
type traceHandler struct{ next slog.Handler }

func (h traceHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }
func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String(handler.TraceIDKey, sc.TraceID().String()), slog.String(handler.SpanIDKey, sc.SpanID().String()))
	}
	return h.next.Handle(ctx, r)
}
func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.next.WithAttrs(as)}
}
func (h traceHandler) WithGroup(n string) slog.Handler { return traceHandler{h.next.WithGroup(n)} }

// BenchmarkDiagPeerAppBareTrace is PeerAppBare plus the same trace
// enrichment: the like-for-like peer of AppPassthrough, whose output has
// two more members than PeerAppBare's.
func BenchmarkDiagPeerAppBareTrace(b *testing.B) {
	benchLog(b, slog.New(traceHandler{slog.NewJSONHandler(io.Discard, nil)}))
}
