package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// lockedBuffer lets concurrent app records land in one buffer.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestSpanAppIDs logs from many goroutines, each with its own span and
// ContextAttrs, through derived loggers (WithAttrs, WithGroup), so that
// spans share cache slots and replace each other's entries: every app
// record must carry its own span's IDs and who, top-level, and the
// logger's attributes and groups as before.
func TestSpanAppIDs(t *testing.T) {
	out := new(lockedBuffer)
	type who struct{}
	f := newFixture(t, Options{
		App: slog.NewJSONHandler(out, nil),
		ContextAttrs: func(ctx context.Context) []slog.Attr {
			as, _ := ctx.Value(who{}).([]slog.Attr)
			if len(as) > 1 {
				// A new slice with equal attributes every other call, and an
				// uncomparable value, which must not panic.
				as = append([]slog.Attr(nil), as...)
			}
			return as
		},
	})
	base := slog.New(f.h).With("svc", "x").WithGroup("req")
	const goroutines, records = 24, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			sc := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID:    trace.TraceID{byte(g + 1), 0xaa},
				SpanID:     trace.SpanID{0xbb, byte(g + 1), 0, 0, 0, 0, 0, byte(g % 3)}, // three slots
				TraceFlags: trace.FlagsSampled,
			})
			attrs := []slog.Attr{slog.String("user.id", fmt.Sprint("u", g))}
			if g%2 == 0 {
				attrs = append(attrs, slog.Any("roles", []string{"a", fmt.Sprint(g)}))
			}
			ctx := context.WithValue(trace.ContextWithSpanContext(context.Background(), sc), who{}, attrs)
			l := base
			if g%4 == 0 {
				l = base.With("k", g)
			}
			for i := range records {
				l.InfoContext(ctx, "plain", "g", g, "i", i)
			}
		})
	}
	wg.Wait()
	n := 0
	for line := range bytes.Lines(out.b.Bytes()) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		req := m["req"].(map[string]any)
		g := int(req["g"].(float64))
		wantTrace := trace.TraceID{byte(g + 1), 0xaa}.String()
		wantSpan := trace.SpanID{0xbb, byte(g + 1), 0, 0, 0, 0, 0, byte(g % 3)}.String()
		if m[TraceIDKey] != wantTrace || m[SpanIDKey] != wantSpan || m["user.id"] != fmt.Sprint("u", g) || m["svc"] != "x" {
			t.Fatalf("record of goroutine %d: %s", g, line)
		}
		if _, ok := req["k"]; ok != (g%4 == 0) {
			t.Fatalf("record of goroutine %d: logger attribute k: %s", g, line)
		}
		if roles, ok := m["roles"].([]any); ok != (g%2 == 0) || ok && roles[1] != fmt.Sprint(g) {
			t.Fatalf("record of goroutine %d: roles: %s", g, line)
		}
		n++
	}
	if n != goroutines*records {
		t.Fatalf("%d app records, want %d", n, goroutines*records)
	}
}

// TestSpanAppNoSpan: without a span, records carry no IDs, and ContextAttrs
// still reach the app leg.
func TestSpanAppNoSpan(t *testing.T) {
	f := newFixture(t, Options{ContextAttrs: func(ctx context.Context) []slog.Attr {
		if ctx.Value(whoKey{}) == nil {
			return nil
		}
		return []slog.Attr{slog.String("user.id", "bob")}
	}})
	l := slog.New(f.h)
	l.InfoContext(context.WithValue(context.Background(), whoKey{}, 1), "one")
	l.Info("two")
	app := f.appRecords(t)
	if len(app) != 2 || app[0]["user.id"] != "bob" || app[0][TraceIDKey] != nil || app[1]["user.id"] != nil {
		t.Fatalf("%v", app)
	}
}

func TestSameAttrs(t *testing.T) {
	g := slog.Group("g", "a", 1, "b", "x")
	for _, c := range []struct {
		a, b []slog.Attr
		want bool
	}{
		{nil, nil, true},
		{[]slog.Attr{slog.String("a", "x")}, []slog.Attr{slog.String("a", "x")}, true},
		{[]slog.Attr{slog.String("a", "x")}, []slog.Attr{slog.String("a", "y")}, false},
		{[]slog.Attr{slog.String("a", "x")}, []slog.Attr{slog.String("b", "x")}, false},
		{[]slog.Attr{slog.String("a", "1")}, []slog.Attr{slog.Int("a", 1)}, false},
		{[]slog.Attr{slog.String("a", "x")}, nil, false},
		{[]slog.Attr{g}, []slog.Attr{slog.Group("g", "a", 1, "b", "x")}, true},
		{[]slog.Attr{g}, []slog.Attr{slog.Group("g", "a", 1, "b", "y")}, false},
		{[]slog.Attr{slog.Any("s", []int{1})}, []slog.Attr{slog.Any("s", []int{1})}, false},
		{[]slog.Attr{slog.Group("g", slog.Any("s", []int{1}))}, []slog.Attr{slog.Group("g", slog.Any("s", []int{1}))}, false},
	} {
		if got := sameAttrs(c.a, c.b); got != c.want {
			t.Errorf("sameAttrs(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

type whoKey struct{}
