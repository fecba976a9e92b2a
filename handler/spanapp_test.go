package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
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
// record must carry its own span's IDs and who, where the logger's With
// would put them (here in group req), and the logger's own attributes.
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
		if req[TraceIDKey] != wantTrace || req[SpanIDKey] != wantSpan || req["user.id"] != fmt.Sprint("u", g) || m["svc"] != "x" {
			t.Fatalf("record of goroutine %d: %s", g, line)
		}
		if _, ok := req["k"]; ok != (g%4 == 0) {
			t.Fatalf("record of goroutine %d: logger attribute k: %s", g, line)
		}
		if roles, ok := req["roles"].([]any); ok != (g%2 == 0) || ok && roles[1] != fmt.Sprint(g) {
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

type countValuer struct{ n *atomic.Int64 }

func (c countValuer) LogValue() slog.Value { return slog.Int64Value(c.n.Add(1)) }

func spanCtxN(i byte) context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, i}, SpanID: trace.SpanID{2, i}, TraceFlags: trace.FlagsSampled})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// A LogValuer given to With is asked once: every record and both legs log
// that one value.
func TestWithLogValuerResolvedOnce(t *testing.T) {
	f := newFixture(t, Options{})
	var n atomic.Int64
	l := slog.New(f.h).With("v", countValuer{&n})
	l.Info("no span", Audit)
	l.InfoContext(spanCtxN(1), "span 1")
	l.InfoContext(spanCtxN(2), "span 2")
	app := f.appRecords(t)
	if len(app) != 3 || app[0]["v"] != 1.0 || app[1]["v"] != 1.0 || app[2]["v"] != 1.0 || n.Load() != 1 {
		t.Fatalf("With value asked %d times; app records %v", n.Load(), app)
	}
	if audit := f.records(t); audit[0]["v"] != 1.0 {
		t.Fatalf("audit record %v", audit[0])
	}
}

// secretLater is clean the first k times it is asked, then holds a secret.
type secretLater struct {
	n *atomic.Int64
	k int64
}

func (s secretLater) LogValue() slog.Value {
	if s.n.Add(1) <= s.k {
		return slog.GroupValue(slog.String("user", "bob"))
	}
	return slog.GroupValue(slog.String("password", "hunter2-very-secret"))
}

// What the redactor inspected at With is what every leg logs: a LogValuer
// that turns secret when asked again never gets the chance.
func TestWithLogValuerRedactedOnce(t *testing.T) {
	for k := range int64(4) {
		f := newFixture(t, Options{})
		var n atomic.Int64
		l := slog.New(f.h).With("cfg", secretLater{&n, k})
		l.InfoContext(spanCtxN(1), "span 1", Audit)
		l.InfoContext(spanCtxN(2), "span 2")
		audit := fmt.Sprint(f.records(t))
		if strings.Contains(f.app.String(), "hunter2") || strings.Contains(audit, "hunter2") {
			t.Fatalf("k=%d: the secret reached a leg:\napp %s\naudit %s", k, f.app.String(), audit)
		}
	}
}

type who struct{ name *atomic.Pointer[string] }

func (w who) LogValue() slog.Value { return slog.StringValue(*w.name.Load()) }

// ContextAttrs values that may render differently each time (a LogValuer)
// are asked for every record, not frozen at the span's first.
func TestContextAttrsLogValuerPerRecord(t *testing.T) {
	var name atomic.Pointer[string]
	anon, alice := "anonymous", "alice"
	name.Store(&anon)
	attrs := []slog.Attr{slog.Any("user.id", who{&name})}
	f := newFixture(t, Options{ContextAttrs: func(context.Context) []slog.Attr { return attrs }})
	l := slog.New(f.h)
	ctx := spanCtxN(1)
	l.InfoContext(ctx, "before auth")
	name.Store(&alice)
	l.InfoContext(ctx, "after auth")
	if app := f.appRecords(t); app[0]["user.id"] != "anonymous" || app[1]["user.id"] != "alice" {
		t.Fatalf("app records %v", app)
	}
}

// A ContextAttrs slice reused for the next request (same array, new
// contents) gives that request its own values.
func TestContextAttrsReusedSlice(t *testing.T) {
	type reqState struct{ attrs [1]slog.Attr }
	st := &reqState{} // as if a sync.Pool handed it to the next request
	type k struct{}
	f := newFixture(t, Options{ContextAttrs: func(ctx context.Context) []slog.Attr {
		return ctx.Value(k{}).(*reqState).attrs[:]
	}})
	l := slog.New(f.h)
	for _, ctx := range []context.Context{context.Background(), spanCtxN(3)} {
		st.attrs[0] = slog.String("user.id", "alice")
		l.InfoContext(context.WithValue(ctx, k{}, st), "request 1")
		st.attrs[0] = slog.String("user.id", "mallory")
		l.InfoContext(context.WithValue(ctx, k{}, st), "request 2")
	}
	app := f.appRecords(t)
	for i, want := range []string{"alice", "mallory", "alice", "mallory"} {
		if app[i]["user.id"] != want {
			t.Fatalf("record %d: %v, want user.id %s", i, app[i], want)
		}
	}
}
