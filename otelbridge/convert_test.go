package otelbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf16"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
)

// renderAttrs renders attributes as "key=TYPE:value" in order.
func renderAttrs(walk func(func(attribute.KeyValue) bool)) []string {
	var out []string
	walk(func(kv attribute.KeyValue) bool {
		out = append(out, string(kv.Key)+"="+renderValue(kv.Value))
		return true
	})
	return out
}

func renderValue(v attribute.Value) string {
	switch v.Type() {
	case attribute.MAP:
		var parts []string
		for _, kv := range v.AsMap() {
			parts = append(parts, string(kv.Key)+"="+renderValue(kv.Value))
		}
		return "MAP:{" + strings.Join(parts, ",") + "}"
	case attribute.SLICE:
		var parts []string
		for _, e := range v.AsSlice() {
			parts = append(parts, renderValue(e))
		}
		return "SLICE:[" + strings.Join(parts, ",") + "]"
	}
	return fmt.Sprintf("%s:%v", v.Type(), v.AsInterface())
}

func TestConvert(t *testing.T) {
	var mac [32]byte
	mac[0], mac[31] = 0xab, 0x01
	pos := chain.Position{Seq: 7, Chain: mac}
	macHex := pos.Hex()
	seqChain := []string{"audit.seq=INT64:7", "audit.chain=STRING:" + macHex}
	observed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	line := func(body string) string {
		return `{"seq":7,"prev":"` + strings.Repeat("0", 64) + `",` + body + `,"mac":"` + macHex + `"}`
	}

	type want struct {
		body      string
		sev       log.Severity
		sevText   string
		time      string
		event     string
		traceID   string
		spanID    string
		attrs     []string // without audit.seq/audit.chain
		wantError bool
	}
	tests := []struct {
		name    string
		members string
		pos     chain.Position // zero: members is a whole line
		want    want
	}{
		{"levels DEBUG", `"level":"DEBUG","msg":"m"`, pos, want{body: "m", sev: 5, sevText: "DEBUG"}},
		{"levels INFO", `"level":"INFO","msg":"m"`, pos, want{body: "m", sev: 9, sevText: "INFO"}},
		{"levels WARN", `"level":"WARN","msg":"m"`, pos, want{body: "m", sev: 13, sevText: "WARN"}},
		{"levels ERROR", `"level":"ERROR","msg":"m"`, pos, want{body: "m", sev: 17, sevText: "ERROR"}},
		{"level offset INFO+2", `"level":"INFO+2","msg":"m"`, pos, want{body: "m", sev: 11, sevText: "INFO+2"}},
		{"level offset DEBUG-2", `"level":"DEBUG-2","msg":"m"`, pos, want{body: "m", sev: 3, sevText: "DEBUG-2"}},
		{"level offset ERROR+4", `"level":"ERROR+4","msg":"m"`, pos, want{body: "m", sev: 21, sevText: "ERROR+4"}},
		{"level clamped high", `"level":"ERROR+40","msg":"m"`, pos, want{body: "m", sev: 24, sevText: "ERROR+40"}},
		{"level clamped low", `"level":"DEBUG-40","msg":"m"`, pos, want{body: "m", sev: 1, sevText: "DEBUG-40"}},
		{"level unknown", `"level":"LOUD","msg":"m"`, pos, want{body: "m", sev: 0, sevText: "LOUD"}},
		{"time", `"time":"2026-11-27T01:16:10.123456789Z","level":"INFO","msg":"m"`, pos,
			want{body: "m", sev: 9, sevText: "INFO", time: "2026-11-27T01:16:10.123456789Z"}},
		{"time unparsable stays an attribute", `"time":"yesterday","msg":"m"`, pos,
			want{body: "m", attrs: []string{"time=STRING:yesterday"}}},
		{"trace ids", `"msg":"m","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331"`, pos,
			want{body: "m", traceID: "0af7651916cd43dd8448eb211c80319c", spanID: "b7ad6b7169203331"}},
		{"bad trace id stays an attribute", `"msg":"m","trace_id":"xyz"`, pos,
			want{body: "m", attrs: []string{"trace_id=STRING:xyz"}}},
		{"groups flattened", `"msg":"m","g":{"a":1,"h":{"b":"x","c":false}},"z":2`, pos,
			want{body: "m", attrs: []string{"g.a=INT64:1", "g.h.b=STRING:x", "g.h.c=BOOL:false", "z=INT64:2"}}},
		{"numbers", `"msg":"m","i":-3,"f":1.5,"e":1e3,"big":18446744073709551615,"zero":0`, pos,
			want{body: "m", attrs: []string{"i=INT64:-3", "f=FLOAT64:1.5", "e=FLOAT64:1000", "big=STRING:18446744073709551615", "zero=INT64:0"}}},
		{"bools, strings, null", `"msg":"m","t":true,"s":"\u00e9\n","n":null`, pos,
			want{body: "m", attrs: []string{"t=BOOL:true", "s=STRING:é\n", "n=EMPTY:<nil>"}}},
		{"arrays", `"msg":"m","ss":["a","b"],"is":[1,2],"fs":[1,2.5],"bs":[true],"mixed":[1,"a",{"k":[null]}],"empty":[]`, pos,
			want{body: "m", attrs: []string{"ss=STRINGSLICE:[a b]", "is=INT64SLICE:[1 2]", "fs=FLOAT64SLICE:[1 2.5]", "bs=BOOLSLICE:[true]",
				"mixed=SLICE:[INT64:1,STRING:a,MAP:{k=SLICE:[EMPTY:<nil>]}]", "empty=SLICE:[]"}}},
		{"event", `"level":"INFO","msg":"start mcp_server x: success","event":"admin_action","action":"start"`, pos,
			want{body: "start mcp_server x: success", sev: 9, sevText: "INFO", event: "audit.admin_action",
				attrs: []string{"event=STRING:admin_action", "action=STRING:start"}}},
		{"repeated keys in an object in an array", `"msg":"m","items":[{"a":1,"b":2,"a":3}]`, pos,
			want{body: "m", attrs: []string{"items=SLICE:[MAP:{a=INT64:3,b=INT64:2}]"}}},
		{"repeated keys: the first keeps the key, later ones get underscores (the handler's rule)", `"msg":"m","a":1,"b":2,"g":{"x":1},"a":3,"g.x":"y"`, pos,
			want{body: "m", attrs: []string{"a=INT64:1", "b=INT64:2", "g.x=INT64:1", "_a=INT64:3", "_g.x=STRING:y"}}},
		{"renamed chain keys are ordinary", `"msg":"m","_seq":1,"_mac":"x"`, pos,
			want{body: "m", attrs: []string{"_seq=INT64:1", "_mac=STRING:x"}}},
		{"whole line", line(`"time":"2026-11-27T01:16:10Z","level":"WARN","msg":"m","a":1`), chain.Position{},
			want{body: "m", sev: 13, sevText: "WARN", time: "2026-11-27T01:16:10Z", attrs: []string{"a=INT64:1"}}},
		{"open record", line(`"rec":"open","time":"2026-11-27T01:16:10.123456789Z","v":1,"alg":"sha256","file":"audit-x.jsonl","prev_file":"","host":"h","pid":9`), chain.Position{},
			want{body: "audit file open", sev: 9, sevText: "INFO", time: "2026-11-27T01:16:10.123456789Z", event: EventFileOpen,
				attrs: []string{"v=INT64:1", "alg=STRING:sha256", "file=STRING:audit-x.jsonl", "prev_file=STRING:", "host=STRING:h", "pid=INT64:9"}}},
		{"close record", line(`"rec":"close","time":"2026-11-27T01:16:10Z","file":"audit-x.jsonl","reason":"size"`), chain.Position{},
			want{body: "audit file close", sev: 9, sevText: "INFO", time: "2026-11-27T01:16:10Z", event: EventFileClose,
				attrs: []string{"file=STRING:audit-x.jsonl", "reason=STRING:size"}}},
		{"malformed", `"msg":"m",`, pos, want{body: `"msg":"m",`, wantError: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, sc, err := convert([]byte(tt.members), tt.pos, observed)
			w := tt.want
			if (err != nil) != w.wantError {
				t.Fatalf("err = %v", err)
			}
			if got := r.Body().AsString(); got != w.body {
				t.Errorf("body %q, want %q", got, w.body)
			}
			if r.Severity() != w.sev || r.SeverityText() != w.sevText {
				t.Errorf("severity %d %q, want %d %q", r.Severity(), r.SeverityText(), w.sev, w.sevText)
			}
			var wantTime time.Time
			if w.time != "" {
				wantTime, _ = time.Parse(time.RFC3339Nano, w.time)
			}
			wantObserved := wantTime // the record's own time: duplicates are identical
			if wantTime.IsZero() {
				wantObserved = observed
			}
			if !r.Timestamp().Equal(wantTime) || !r.ObservedTimestamp().Equal(wantObserved) {
				t.Errorf("time %v observed %v", r.Timestamp(), r.ObservedTimestamp())
			}
			if r.EventName() != w.event {
				t.Errorf("event name %q, want %q", r.EventName(), w.event)
			}
			if got := idString(sc.HasTraceID(), sc.TraceID().String()); got != w.traceID {
				t.Errorf("trace id %q, want %q", got, w.traceID)
			}
			if got := idString(sc.HasSpanID(), sc.SpanID().String()); got != w.spanID {
				t.Errorf("span id %q, want %q", got, w.spanID)
			}
			got := renderAttrs(r.WalkAttributes)
			wantAttrs := append(append([]string{}, seqChain...), w.attrs...) // audit.seq and audit.chain first
			if w.wantError {
				got = slices.Delete(got, 2, 3) // audit.error
			}
			if !reflect.DeepEqual(got, wantAttrs) {
				t.Errorf("attributes\n got %q\nwant %q", got, wantAttrs)
			}
		})
	}
}

func idString(ok bool, s string) string {
	if !ok {
		return ""
	}
	return s
}

// captureSink keeps copies of what the handler passes to its sinks.
type captureSink struct {
	mu   sync.Mutex
	recs map[uint64][]byte
	pos  map[uint64]chain.Position
}

func (c *captureSink) Audit(body []byte, pos chain.Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs[pos.Seq] = append([]byte(nil), body...)
	c.pos[pos.Seq] = pos
}

// capture is a Processor that keeps what is emitted.
type capture struct{ recs []sdklog.Record }

func (c *capture) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c *capture) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.recs = append(c.recs, r.Clone())
	return nil
}
func (c *capture) Shutdown(context.Context) error   { return nil }
func (c *capture) ForceFlush(context.Context) error { return nil }

// describe renders every field of an SDK record.
func describe(r sdklog.Record) string {
	return fmt.Sprintf("event=%q time=%v observed=%v sev=%d %q body=%s trace=%s span=%s flags=%v scope=%v res=%v attrs=%q dropped=%d",
		r.EventName(), r.Timestamp().UnixNano(), r.ObservedTimestamp().UnixNano(), r.Severity(), r.SeverityText(),
		renderValue(r.Body()), r.TraceID(), r.SpanID(), r.TraceFlags(), r.InstrumentationScope(), r.Resource().Attributes(),
		renderAttrs(r.WalkAttributes), r.DroppedAttributes())
}

// Converting a record from the Sink path and the same record read back from
// the file gives identical OTel records, down to the SDK record that the
// exporter sees.
func TestSinkPathEqualsFilePath(t *testing.T) {
	dir := t.TempDir()
	sink := &captureSink{recs: map[uint64][]byte{}, pos: map[uint64]chain.Position{}}
	h := newTestHandler(t, dir, sink)
	l := slog.New(h)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	l.InfoContext(ctx, "one", handler.Audit, "event", "admin_action", "n", 1, "f", 2.25, slog.Group("g", "a", "b", slog.Group("h", "x", []int{1, 2})))
	l.Log(ctx, slog.LevelWarn+1, "two", handler.Audit, "seq", 99, "mac", "not mine", "rec", "open", "any", map[string]any{"k": []any{1, "x"}})
	l.ErrorContext(context.Background(), "three \"quoted\" \u2028", handler.Audit, "err", fmt.Errorf("boom"), "nil", nil)
	l.Info("plain", "not", "audited")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	proc := &capture{}
	p := sdklog.NewLoggerProvider(sdklog.WithProcessor(proc), sdklog.WithAttributeCountLimit(-1))
	logger := p.Logger(scopeName)
	emit := func(members []byte, pos chain.Position) sdklog.Record {
		rec, sc, err := convert(members, pos, time.Unix(1, 2))
		if err != nil {
			t.Fatalf("convert %s: %v", members, err)
		}
		proc.recs = nil
		logger.Emit(trace.ContextWithSpanContext(context.Background(), sc), rec)
		return proc.recs[0]
	}
	compared := 0
	for _, ln := range fileLines(t, dir) {
		if ln.Kind != "" {
			continue
		}
		body, ok := sink.recs[ln.Seq]
		if !ok {
			t.Fatalf("seq %d not passed to the sink", ln.Seq)
		}
		fromSink := describe(emit(body, sink.pos[ln.Seq]))
		fromFile := describe(emit(ln.Raw, chain.Position{}))
		if fromSink != fromFile {
			t.Errorf("seq %d differs:\nsink %s\nfile %s", ln.Seq, fromSink, fromFile)
		}
		compared++
		t.Log(fromFile)
	}
	if compared != 3 {
		t.Fatalf("compared %d records, want 3", compared)
	}
}

// TestUniqueMany: records with more attributes than unique compares
// pairwise give repeated keys underscores the same way: the first of a
// name keeps it, the n-th gets n-1 underscores.
func TestUniqueMany(t *testing.T) {
	for _, n := range []int{maxQuadraticUnique - 1, maxQuadraticUnique, maxQuadraticUnique + 1, 3 * maxQuadraticUnique} {
		var c converter
		var attrs []attribute.KeyValue
		m := n/2 + 1
		for i := range n {
			attrs = append(attrs, attribute.Int(fmt.Sprint("k", i%m), i))
		}
		got := c.unique(attrs)
		if len(got) != n {
			t.Fatalf("n=%d: %d attributes, want %d", n, len(got), n)
		}
		for i, a := range got {
			want := strings.Repeat("_", i/m) + fmt.Sprint("k", i%m)
			if string(a.Key) != want || a.Value.AsInt64() != int64(i) {
				t.Fatalf("n=%d: attribute %d is %v, want %s=%d", n, i, a, want, i)
			}
		}
	}
}

// The converter's time and integer fast paths give what time.Parse and
// strconv.ParseInt give, whatever came before (parseTime remembers the last
// minute).
func TestParseFastPaths(t *testing.T) {
	var c converter
	for _, s := range []string{
		"2026-11-27T01:16:10.123456789Z", "2026-11-27T01:16:59Z", "2026-11-27T01:16:00.5Z",
		"2026-11-27T01:17:00.000000001Z", "2026-11-27T01:16:10Z", "2026-11-28T01:16:10.1Z",
		"2026-11-28T01:16:10.1+02:00", "2026-11-28T01:16:61Z", "2026-11-28T01:16:1xZ",
		"2026-11-28T01:16:10.Z", "2026-11-28T01:16:10.1234567890Z", "2026-02-29T01:16:10Z",
		"2028-02-29T01:16:10Z", "2028-02-29T01:16:10.25Z", "2026-11-28T01:16:10,5Z",
	} {
		want, werr := time.Parse(time.RFC3339Nano, s)
		got, ok := c.parseTime(s)
		if ok != (werr == nil) || ok && (!got.Equal(want) || got.Location() != want.Location()) {
			t.Errorf("parseTime(%q) = %v, %v; time.Parse: %v, %v", s, got, ok, want, werr)
		}
	}
	for _, s := range []string{"0", "-0", "7", "-7", "123456789012345678", "-123456789012345678",
		"9223372036854775807", "-9223372036854775808", "9223372036854775808", "1234567890123456789", "12.5", "1e2", "-1E-2"} {
		p := parser{b: []byte(s), s: s}
		v, err := p.number()
		if err != nil {
			t.Fatalf("number(%q): %v", s, err)
		}
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			if v.Type() != attribute.INT64 || v.AsInt64() != i {
				t.Errorf("number(%q) = %v, want int64 %d", s, v.String(), i)
			}
		} else if v.Type() == attribute.INT64 {
			t.Errorf("number(%q) = int64 %d", s, v.AsInt64())
		}
	}
}

// The handler writes control and invisible format characters as \u escapes
// (a surrogate pair above U+FFFF); older writers wrote them raw. Both
// spellings of a line convert to the same record, whose body, attribute
// names and values hold the characters themselves, as encoding/json
// decodes them.
func TestConvertEscapedControlAndFormatCharacters(t *testing.T) {
	const s = "evil\u202etxt.exe\u009b31m\u0085\x7f|\u00ad\u061c\u200b\u2066\ufeff\U0001d173\U000e0041|end"
	dir := t.TempDir()
	h := newTestHandler(t, dir)
	slog.New(h).Warn(s, handler.Audit, "k"+s, s, slog.Group("g"+s, s, []string{s, "x"}))
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	var escaped []byte
	for _, ln := range fileLines(t, dir) {
		if ln.Kind == "" {
			escaped = ln.Raw
		}
	}
	// The same line as an older writer wrote it.
	raw := escaped
	for _, r := range s {
		var esc string
		if r1, r2 := utf16.EncodeRune(r); r1 != unicode.ReplacementChar {
			esc = fmt.Sprintf(`\u%04x\u%04x`, r1, r2)
		} else if r < 0x20 || r >= 0x7f {
			esc = fmt.Sprintf(`\u%04x`, r)
		} else {
			continue
		}
		if !bytes.Contains(escaped, []byte(esc)) || bytes.ContainsRune(escaped, r) {
			t.Fatalf("the handler wrote %U raw or not as %s:\n%s", r, esc, escaped)
		}
		raw = bytes.ReplaceAll(raw, []byte(esc), []byte(string(r)))
	}
	var m map[string]any
	if err := json.Unmarshal(escaped, &m); err != nil || m["msg"] != s || m["k"+s] != s {
		t.Fatalf("encoding/json decodes %s to %+q, %v", escaped, m, err)
	}
	want := []string{"k" + s + "=STRING:" + s, "g" + s + "." + s + "=STRINGSLICE:[" + s + " x]"}
	for name, line := range map[string][]byte{"escaped": escaped, "raw": raw} {
		r, _, err := convert(line, chain.Position{}, time.Unix(1, 2))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := r.Body().AsString(); got != s {
			t.Errorf("%s: body %+q, want %+q", name, got, s)
		}
		got := renderAttrs(r.WalkAttributes)[2:] // after audit.seq, audit.chain
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: attributes\n got %+q\nwant %+q", name, got, want)
		}
	}
}
