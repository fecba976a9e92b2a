package handler

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/rotate"
)

// The benchmark record: a message and five attributes, logged with a context
// that carries a sampled span (the bench/ module compares it with peers).
func benchLog(b *testing.B, l *slog.Logger) {
	ctx, _ := spanCtx()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		l.LogAttrs(ctx, slog.LevelInfo, "credential accessed",
			slog.String("resource", "obsidian_api_key"),
			slog.Int("attempt", 3),
			slog.Bool("cached", false),
			slog.Duration("elapsed", 1500*time.Microsecond),
			slog.Group("client", slog.String("address", "127.0.0.1"), slog.Int("port", 53211)),
		)
	}
}

func benchAudit(b *testing.B, policy rotate.Policy) { benchAuditOpts(b, policy, false) }

func benchAuditOpts(b *testing.B, policy rotate.Policy, noRedaction bool) {
	h, err := New(Options{Dir: b.TempDir(), Key: testKey, App: slog.DiscardHandler, AuditOnlyToFile: true,
		Rotate: rotate.Options{Sync: policy, MaxBytes: 64 << 20}, NoRedaction: noRedaction})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	benchLog(b, Logger(slog.New(h)))
}

func BenchmarkAuditFileNone(b *testing.B)   { benchAudit(b, rotate.SyncNone) }
func BenchmarkAuditFileAlways(b *testing.B) { benchAudit(b, rotate.SyncAlways) }

// BenchmarkAuditFileNoneNoRedaction is AuditFileNone with redaction off:
// the two measure what redaction costs a clean record.
func BenchmarkAuditFileNoneNoRedaction(b *testing.B) { benchAuditOpts(b, rotate.SyncNone, true) }

func BenchmarkAppPassthrough(b *testing.B) {
	h, err := New(Options{Dir: b.TempDir(), Key: testKey, App: slog.NewJSONHandler(io.Discard, nil)})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	benchLog(b, slog.New(h))
}

// BenchmarkAppPassthroughNoRedaction is AppPassthrough with redaction off:
// the two measure what redaction costs a plain app record.
func BenchmarkAppPassthroughNoRedaction(b *testing.B) {
	h, err := New(Options{Dir: b.TempDir(), Key: testKey, App: slog.NewJSONHandler(io.Discard, nil), NoRedaction: true})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	benchLog(b, slog.New(h))
}

func BenchmarkPeerAppBare(b *testing.B) {
	benchLog(b, slog.New(slog.NewJSONHandler(io.Discard, nil)))
}

func BenchmarkAuditParallelAlways(b *testing.B) {
	h, err := New(Options{Dir: b.TempDir(), Key: testKey, App: slog.DiscardHandler, AuditOnlyToFile: true,
		Rotate: rotate.Options{Sync: rotate.SyncAlways, MaxBytes: 64 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	l := Logger(slog.New(h))
	ctx, _ := spanCtx()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.LogAttrs(ctx, slog.LevelInfo, "credential accessed", slog.String("resource", "obsidian_api_key"), slog.Int("attempt", 3))
		}
	})
}
