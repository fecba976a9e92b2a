package otelbridge

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/chain"
)

// Attribute keys the bridge adds to every record.
const (
	// SeqKey is the record's sequence number in the chain (int64).
	SeqKey = "audit.seq"
	// ChainKey is the record's chain value, its MAC, as 64 lower-case hex
	// digits: the "mac" member of its line.
	ChainKey = "audit.chain"
)

// Event names of open and close records; audit records with an "event"
// member get "audit." + event.
const (
	EventFileOpen  = "audit.file_open"
	EventFileClose = "audit.file_close"
)

// convert turns one record of the audit file into an OpenTelemetry log
// record and the span context to emit it with. members is either what the
// handler passes to a Sink (the object's members without braces and without
// the chain members, with pos giving seq and chain value) or a whole line as
// read from the file (with braces; its seq, prev, mac and rec members give
// what pos would). observed becomes the observed timestamp.
//
// A line that is not valid JSON still yields a record, whose body is the raw
// text, so that it is exported rather than silently skipped; the error says
// what was wrong.
func convert(members []byte, pos chain.Position, observed time.Time) (log.Record, trace.SpanContext, error) {
	var r log.Record
	r.SetObservedTimestamp(observed)
	c := converter{seq: pos.Seq}
	if pos.Seq != 0 {
		c.chain = pos.Hex()
	}
	err := c.decode(members)
	if err != nil {
		c = converter{seq: c.seq, chain: c.chain}
		if c.seq == 0 {
			if l, perr := chain.ParseLine(members); perr == nil {
				c.seq, c.chain = l.Seq, fmt.Sprintf("%x", l.MAC)
			}
		}
		c.body = attribute.StringValue(string(members))
		c.hasBody = true
		c.attrs = append(c.attrs, attribute.String("audit.error", err.Error()))
	}

	switch c.kind {
	case chain.RecOpen:
		r.SetEventName(EventFileOpen)
	case chain.RecClose:
		r.SetEventName(EventFileClose)
	default:
		if c.event != "" {
			r.SetEventName("audit." + c.event)
		}
	}
	if c.hasBody {
		r.SetBody(c.body)
	} else if c.kind != "" {
		r.SetBody(attribute.StringValue("audit file " + c.kind))
	}
	if c.hasLevel {
		r.SetSeverity(c.severity)
		r.SetSeverityText(c.level)
	} else if c.kind != "" {
		r.SetSeverity(log.SeverityInfo)
		r.SetSeverityText("INFO")
	}
	r.SetTimestamp(c.time)
	if c.seq != 0 {
		c.attrs = append(c.attrs, attribute.Int64(SeqKey, int64(c.seq)))
	}
	if c.chain != "" {
		c.attrs = append(c.attrs, attribute.String(ChainKey, c.chain))
	}
	r.AddAttributes(c.attrs...)
	return r, trace.NewSpanContext(trace.SpanContextConfig{TraceID: c.traceID, SpanID: c.spanID}), err
}

// converter holds what decode found.
type converter struct {
	attrs    []attribute.KeyValue
	body     attribute.Value
	hasBody  bool
	level    string
	severity log.Severity
	hasLevel bool
	time     time.Time
	traceID  trace.TraceID
	spanID   trace.SpanID
	event    string
	kind     string // "", chain.RecOpen or chain.RecClose
	seq      uint64
	chain    string
}

// decode parses members (a JSON object, or its members without braces) with
// a small parser of its own: with encoding/json's token API (which keeps
// member order, unlike Unmarshal into a map) a typical record cost ~50 µs and
// ~190 allocations to convert and emit; with this one ~15 µs and 41, most of
// them the SDK's (BenchmarkConvert).
func (c *converter) decode(members []byte) error {
	p := parser{b: members}
	p.ws()
	braces := p.i < len(p.b) && p.b[p.i] == '{'
	if braces {
		p.i++
	}
	first := true
	for {
		p.ws()
		if p.i == len(p.b) {
			if braces {
				return p.errorf("unexpected end")
			}
			break
		}
		if braces && p.b[p.i] == '}' {
			p.i++
			p.ws()
			if p.i != len(p.b) {
				return p.errorf("data after the object")
			}
			break
		}
		if !first {
			if p.b[p.i] != ',' {
				return p.errorf("want ','")
			}
			p.i++
			p.ws()
		}
		first = false
		key, err := p.str()
		if err != nil {
			return err
		}
		if err := p.colon(); err != nil {
			return err
		}
		if p.b[p.i] == '{' {
			p.i++
			if err := c.flatten(&p, key+".", 1); err != nil {
				return err
			}
			continue
		}
		v, err := p.value(1)
		if err != nil {
			return err
		}
		if !c.top(key, v) {
			c.attrs = append(c.attrs, attribute.KeyValue{Key: attribute.Key(key), Value: v})
		}
	}
	return nil
}

// top handles the members with a meaning of their own and reports whether
// it consumed v. A member of an unexpected type stays an attribute.
func (c *converter) top(key string, v attribute.Value) bool {
	s := v.AsString()
	isStr := v.Type() == attribute.STRING
	switch key {
	case "msg":
		c.body, c.hasBody = v, true
		return true
	case "level":
		if !isStr {
			return false
		}
		c.level, c.hasLevel = s, true
		var l slog.Level
		if l.UnmarshalText([]byte(s)) == nil {
			c.severity = log.Severity(min(max(int(l)+9, int(log.SeverityTrace1)), int(log.SeverityFatal4)))
		}
		return true
	case "time":
		if !isStr {
			return false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return false
		}
		c.time = t
		return true
	case "trace_id":
		id, err := trace.TraceIDFromHex(s)
		if !isStr || err != nil {
			return false
		}
		c.traceID = id
		return true
	case "span_id":
		id, err := trace.SpanIDFromHex(s)
		if !isStr || err != nil {
			return false
		}
		c.spanID = id
		return true
	case "event":
		if isStr {
			c.event = s
		}
		return false // kept as an attribute as well
	// The chain members; the handler renames attributes with these keys
	// (to _seq and so on), so at the top level they are the chain's.
	case "seq":
		if v.Type() != attribute.INT64 || v.AsInt64() <= 0 {
			return false
		}
		c.seq = uint64(v.AsInt64())
		return true
	case "prev":
		return isStr // the previous record's audit.chain: redundant
	case "mac":
		if !isStr {
			return false
		}
		c.chain = s
		return true
	case "rec":
		if !isStr {
			return false
		}
		c.kind = s
		return true
	}
	return false
}

// flatten adds the members of the object whose '{' was just read as
// attributes named prefix+key, recursively.
func (c *converter) flatten(p *parser, prefix string, depth int) error {
	if depth > maxDepth {
		return p.errorf("nested too deeply")
	}
	for first := true; ; first = false {
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return nil
		}
		if !first {
			if p.i == len(p.b) || p.b[p.i] != ',' {
				return p.errorf("want ',' or '}'")
			}
			p.i++
			p.ws()
		}
		k, err := p.str()
		if err != nil {
			return err
		}
		key := prefix + k
		if err := p.colon(); err != nil {
			return err
		}
		if p.b[p.i] == '{' {
			p.i++
			if err := c.flatten(p, key+".", depth+1); err != nil {
				return err
			}
			continue
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return err
		}
		c.attrs = append(c.attrs, attribute.KeyValue{Key: attribute.Key(key), Value: v})
	}
}

const maxDepth = 1000

// parser reads JSON values from b.
type parser struct {
	b []byte
	i int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// colon reads ':' and the white space around it, and makes sure a value
// follows.
func (p *parser) colon() error {
	p.ws()
	if p.i == len(p.b) || p.b[p.i] != ':' {
		return p.errorf("want ':'")
	}
	p.i++
	p.ws()
	if p.i == len(p.b) {
		return p.errorf("unexpected end")
	}
	return nil
}

// value reads a value. Objects here (inside arrays) become maps.
func (p *parser) value(depth int) (attribute.Value, error) {
	if depth > maxDepth {
		return attribute.Value{}, p.errorf("nested too deeply")
	}
	p.ws()
	if p.i == len(p.b) {
		return attribute.Value{}, p.errorf("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '"':
		s, err := p.str()
		return attribute.StringValue(s), err
	case c == '{':
		p.i++
		var kvs []attribute.KeyValue
		for first := true; ; first = false {
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == '}' {
				p.i++
				return attribute.MapValue(kvs...), nil
			}
			if !first {
				if p.i == len(p.b) || p.b[p.i] != ',' {
					return attribute.Value{}, p.errorf("want ',' or '}'")
				}
				p.i++
				p.ws()
			}
			k, err := p.str()
			if err != nil {
				return attribute.Value{}, err
			}
			if err := p.colon(); err != nil {
				return attribute.Value{}, err
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return attribute.Value{}, err
			}
			kvs = append(kvs, attribute.KeyValue{Key: attribute.Key(k), Value: v})
		}
	case c == '[':
		p.i++
		var vals []attribute.Value
		for first := true; ; first = false {
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				return array(vals), nil
			}
			if !first {
				if p.i == len(p.b) || p.b[p.i] != ',' {
					return attribute.Value{}, p.errorf("want ',' or ']'")
				}
				p.i++
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return attribute.Value{}, err
			}
			vals = append(vals, v)
		}
	case c == 't' && bytes.HasPrefix(p.b[p.i:], []byte("true")):
		p.i += 4
		return attribute.BoolValue(true), nil
	case c == 'f' && bytes.HasPrefix(p.b[p.i:], []byte("false")):
		p.i += 5
		return attribute.BoolValue(false), nil
	case c == 'n' && bytes.HasPrefix(p.b[p.i:], []byte("null")):
		p.i += 4
		return attribute.Value{}, nil
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	return attribute.Value{}, p.errorf("unexpected %q", p.b[p.i])
}

// number reads a JSON number: int64 for an integer literal that fits, the
// decimal string for one that does not (float64 would change it), float64
// otherwise.
func (p *parser) number() (attribute.Value, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	intStart := p.i
	if n := digits(); n == 0 || n > 1 && p.b[intStart] == '0' {
		return attribute.Value{}, p.errorf("bad number")
	}
	integer := true
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		integer = false
		if digits() == 0 {
			return attribute.Value{}, p.errorf("bad number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		integer = false
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return attribute.Value{}, p.errorf("bad number")
		}
	}
	s := string(p.b[start:p.i])
	if integer {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return attribute.Int64Value(i), nil
		}
		return attribute.StringValue(s), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil { // out of range
		return attribute.StringValue(s), nil
	}
	return attribute.Float64Value(f), nil
}

// str reads a string. Invalid UTF-8 becomes U+FFFD, as in encoding/json.
func (p *parser) str() (string, error) {
	if p.i == len(p.b) || p.b[p.i] != '"' {
		return "", p.errorf("want a string")
	}
	p.i++
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			raw := p.b[start:p.i]
			p.i++
			if utf8.Valid(raw) {
				return string(raw), nil
			}
			return strings.ToValidUTF8(string(raw), "\uFFFD"), nil
		}
		if c == '\\' {
			return p.escaped(start)
		}
		if c < 0x20 {
			return "", p.errorf("control character in string")
		}
		p.i++
	}
	return "", p.errorf("unterminated string")
}

// escaped finishes a string that has escapes, from its first byte at start.
func (p *parser) escaped(start int) (string, error) {
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if utf8.Valid(buf) {
				return string(buf), nil
			}
			return strings.ToValidUTF8(string(buf), "\uFFFD"), nil
		case c < 0x20:
			return "", p.errorf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			break
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.errorf("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := unicode.ReplacementChar
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					if lo, ok := p.hex4(); ok && utf16.DecodeRune(r, lo) != unicode.ReplacementChar {
						r2 = utf16.DecodeRune(r, lo)
					} else {
						p.i = save
					}
				}
				r = r2
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.errorf("bad escape")
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, true
}

// array makes the value of an array: a typed slice when the elements are
// all strings, bools, integers or numbers, else a slice of values.
func array(vals []attribute.Value) attribute.Value {
	if len(vals) == 0 {
		return attribute.SliceValue()
	}
	all := func(types ...attribute.Type) bool {
		for _, v := range vals {
			if !slices.Contains(types, v.Type()) {
				return false
			}
		}
		return true
	}
	switch {
	case all(attribute.STRING):
		ss := make([]string, len(vals))
		for i, v := range vals {
			ss[i] = v.AsString()
		}
		return attribute.StringSliceValue(ss)
	case all(attribute.BOOL):
		bs := make([]bool, len(vals))
		for i, v := range vals {
			bs[i] = v.AsBool()
		}
		return attribute.BoolSliceValue(bs)
	case all(attribute.INT64):
		is := make([]int64, len(vals))
		for i, v := range vals {
			is[i] = v.AsInt64()
		}
		return attribute.Int64SliceValue(is)
	case all(attribute.INT64, attribute.FLOAT64):
		fs := make([]float64, len(vals))
		for i, v := range vals {
			if v.Type() == attribute.INT64 {
				fs[i] = float64(v.AsInt64())
			} else {
				fs[i] = v.AsFloat64()
			}
		}
		return attribute.Float64SliceValue(fs)
	}
	return attribute.SliceValue(vals...)
}
