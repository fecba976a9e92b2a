package redact

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// benchAttrs is a typical record without secrets: the fast path.
var benchAttrs = []slog.Attr{
	slog.String("method", "GET"),
	slog.Int("status", 200),
	slog.Bool("cached", false),
	slog.Duration("elapsed", 1500*time.Millisecond),
	slog.Group("user", slog.String("id", "u-123"), slog.Int("age", 42)),
}

func benchLog(b *testing.B, h slog.Handler) {
	l := slog.New(h)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		l.LogAttrs(ctx, slog.LevelInfo, "request handled", benchAttrs...)
	}
}

// BenchmarkRedactOff is the bare JSON handler, the baseline for BenchmarkRedactOn.
func BenchmarkRedactOff(b *testing.B) {
	benchLog(b, slog.NewJSONHandler(io.Discard, nil))
}

// BenchmarkRedactOn is the same record through Redactor.Handler.
func BenchmarkRedactOn(b *testing.B) {
	benchLog(b, Default().Handler(slog.NewJSONHandler(io.Discard, nil)))
}

// BenchmarkAttrNoSecret is the redaction work alone for the record's attributes.
func BenchmarkAttrNoSecret(b *testing.B) {
	r := Default()
	b.ReportAllocs()
	for b.Loop() {
		for _, a := range benchAttrs {
			r.Attr(a)
		}
	}
}

// BenchmarkRedactSecret is the slow path: a record that loses a secret in an
// attribute and one in the message, through the same handlers.
func BenchmarkRedactSecret(b *testing.B) {
	attrs := append([]slog.Attr{slog.String("password", "hunter2")}, benchAttrs[1:]...)
	l := slog.New(Default().Handler(slog.NewJSONHandler(io.Discard, nil)))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		l.LogAttrs(ctx, slog.LevelInfo, "GET /cb?access_token=abc123", attrs...)
	}
}

// BenchmarkStringNoSecret is the scan of typical clean message text.
func BenchmarkStringNoSecret(b *testing.B) {
	r := Default()
	const msg = "GET /api/v1/users?page=2&limit=50 completed with status 200 in 3ms for user-123"
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		r.String(msg)
	}
}

// BenchmarkAttrStruct walks a struct passed through slog.Any that holds
// nothing to redact (strings are scanned, nothing is copied).
func BenchmarkAttrStruct(b *testing.B) {
	type user struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
		Age   int    `json:"age"`
	}
	r := Default()
	a := slog.Any("user", &user{"u-123", "Bob", "bob@example.com", 42})
	b.ReportAllocs()
	for b.Loop() {
		r.Attr(a)
	}
}
