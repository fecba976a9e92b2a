package redact

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"slices"
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
// per record (from the median block) and on/off, the median over rounds of
// the ratio of a round's two blocks (issue 3 asks for at most 1.10). Taken
// in the same process and interleaved, the two see the same load, which
// separate runs on a shared machine do not, and medians leave out the
// blocks during which another tenant had the CPU. ns/op is suppressed: one
// iteration is 128 records; allocs/op and B/op are per record, the mean of
// on and off.
func BenchmarkRedactPair(b *testing.B) {
	ls := [2]*slog.Logger{
		slog.New(Default().Handler(slog.NewJSONHandler(io.Discard, nil))),
		slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	ctx := context.Background()
	const block = 64
	var times [2][]float64
	var ratios []float64
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for b.Loop() {
		var d [2]float64
		for k := range 2 {
			i := (k + len(ratios)) & 1 // on first, then off first
			t0 := time.Now()
			for range block {
				ls[i].LogAttrs(ctx, slog.LevelInfo, "request handled", benchAttrs...)
			}
			d[i] = float64(time.Since(t0))
		}
		times[0], times[1] = append(times[0], d[0]), append(times[1], d[1])
		ratios = append(ratios, d[0]/d[1])
	}
	runtime.ReadMemStats(&m1)
	n := float64(b.N * block)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(times[0])/block, "on-ns/op")
	b.ReportMetric(median(times[1])/block, "off-ns/op")
	b.ReportMetric(median(ratios), "on/off")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/(2*n), "allocs/op")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/(2*n), "B/op")
}

func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
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

// BenchmarkStringShapes scans 64 KiB of text of one shape (heap text, so
// scanned every time): ordinary prose against runs built to make a matcher
// rescan what it has seen. Each should cost about as much per byte as
// prose (MB/s); a matcher that rescans shows as a shape orders of
// magnitude slower.
func BenchmarkStringShapes(b *testing.B) {
	const size = 64 << 10
	for _, sh := range []struct{ name, unit string }{
		{"prose", "The quick brown fox jumps over the lazy dog; user bob logged in at 10:42. "},
		{"encoded-equals", "%3D"},
		{"key-encoded-equals", "a%3D"},
		{"encoded-secret-empty", "password%3D%26"},
		{"encoded-key-bytes", "x%41="},
		{"start-tags", "<password><"},
		{"namespaced-tags", "<a:b:c:d>"},
		{"key-then-gt", "a>"},
		{"quoted-spaces", `"a b c": `},
		{"colons", "a:b: "},
		{"header-names", "token_type: a b\n"},
		{"at-signs", "a:b@"},
		{"flags", " -a --b "},
		{"sql-quotes", "ordered by 'x' "},
		{"rockets", "x => y, "},
	} {
		text := string(slices.Repeat([]byte(sh.unit), size/len(sh.unit)+1)[:size])
		r := Default()
		b.Run(sh.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				r.String(text)
			}
		})
	}
}

// BenchmarkCleanRecord: the check of the benchmark record, alone.
func BenchmarkCleanRecord(b *testing.B) {
	r := Default()
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "credential accessed", 0)
	rec.AddAttrs(
		slog.String("resource", "obsidian_api_key"),
		slog.Int("attempt", 3),
		slog.Bool("cached", false),
		slog.Duration("elapsed", 1500*time.Microsecond),
		slog.GroupAttrs("client", slog.String("address", "127.0.0.1"), slog.Int("port", 53211)),
	)
	for b.Loop() {
		if !r.CleanRecord(rec) {
			b.Fatal("dirty")
		}
	}
}
