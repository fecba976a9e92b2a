package redact

import (
	"context"
	"io"
	"log/slog"
	"runtime"
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

// BenchmarkRedactPair logs the record through RedactOn's and RedactOff's
// handlers alternately, 64 records at a time, and reports each one's time
// per record and their ratio (on/off; issue 3 asks for at most 1.10). Taken
// in the same process and interleaved, the two see the same load, which
// separate runs on a shared machine do not. ns/op is suppressed: one
// iteration is 128 records; allocs/op and B/op are per record, the mean of
// on and off.
func BenchmarkRedactPair(b *testing.B) {
	ls := [2]*slog.Logger{
		slog.New(Default().Handler(slog.NewJSONHandler(io.Discard, nil))),
		slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	ctx := context.Background()
	const block = 64
	var sum [2]time.Duration
	round := 0
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for b.Loop() {
		for k := range 2 {
			i := (k + round) & 1 // on first, then off first
			t0 := time.Now()
			for range block {
				ls[i].LogAttrs(ctx, slog.LevelInfo, "request handled", benchAttrs...)
			}
			sum[i] += time.Since(t0)
		}
		round++
	}
	n := float64(b.N * block)
	runtime.ReadMemStats(&m1)
	// Per record, the mean of on and off (-benchmem would report them per
	// iteration).
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/(2*n), "allocs/op")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/(2*n), "B/op")
	b.ReportMetric(float64(sum[0])/n, "on-ns/op")
	b.ReportMetric(float64(sum[1])/n, "off-ns/op")
	b.ReportMetric(float64(sum[0])/float64(sum[1]), "on/off")
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
