package otelbridge

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
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
// what pos would). The observed timestamp is the record's time, or
// observed for a record without one (see convertText).
//
// A line that is not valid JSON still yields a record, whose body is the raw
// text, so that it is exported rather than silently skipped; the error says
// what was wrong.
func convert(members []byte, pos chain.Position, observed time.Time) (log.Record, trace.SpanContext, error) {
	c := converterPool.Get().(*converter)
	var r log.Record
	sc, err := c.convert(members, pos, observed)
	f := c.fields()
	f.setLog(&r)
	r.AddAttributes(c.attrs...) // copies
	c.release()
	converterPool.Put(c)
	return r, sc, err
}

// converterPool holds converters with their buffers, so that converting a
// record allocates little besides the record's own strings.
var converterPool = sync.Pool{New: func() any { return new(converter) }}

// converter holds what decode found, and buffers reused across records. It
// is not safe for concurrent use.
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
	observed time.Time
	seq      uint64
	chain    string
	// seen holds a bit per member with a meaning of its own (headerBit)
	// that top consumed: the first one counts, a later one of the same
	// name is an attribute (see top).
	seen uint16

	// The minute of the last time parsed ("2026-11-27T08:08") and its Unix
	// time: see parseTime.
	minute     string
	minuteUnix int64

	// Reused across records.
	buf    []byte                     // members and the chain value's hex, copied into one string
	prefix []byte                     // the group prefix while flattening
	keys   map[string]string          // flattened keys
	index  map[attribute.Key]struct{} // unique's, for records with many attributes
	events map[string]string          // event → "audit." + event
}

// maxEvents bounds the converter's cache of event names.
const maxEvents = 256

// reset clears what decode found, keeping the buffers.
func (c *converter) reset() {
	clear(c.attrs)
	*c = converter{attrs: c.attrs[:0], buf: c.buf[:0], prefix: c.prefix[:0], keys: c.keys, events: c.events, index: c.index,
		minute: c.minute, minuteUnix: c.minuteUnix}
}

// release drops references to the last record's data.
func (c *converter) release() {
	c.reset()
	if cap(c.buf) > 64<<10 {
		c.buf = nil
	}
	if cap(c.attrs) > 1024 {
		c.attrs = nil
	}
}

// convert is the package-level convert leaving the record in c: its
// fields are c.fields(), its attributes c.attrs, both valid until
// c.release.
func (c *converter) convert(members []byte, pos chain.Position, observed time.Time) (trace.SpanContext, error) {
	c.reset()
	// Every string of the record that appears verbatim in members (keys and
	// values without escapes, numbers too big for int64), and the chain
	// value, is a substring of one copy: one allocation per record.
	c.buf = append(c.buf, members...)
	if pos.Seq != 0 {
		c.buf = hex.AppendEncode(c.buf, pos.Chain[:])
	}
	return c.convertText(members, string(c.buf), pos, observed)
}

// convertText is convert with the text the record's strings are cut from:
// s holds members and, if pos.Seq is not 0, pos.Chain in hex after them. s
// must stay unchanged as long as the record is used. c must be reset.
func (c *converter) convertText(members []byte, s string, pos chain.Position, observed time.Time) (trace.SpanContext, error) {
	c.seq = pos.Seq
	if pos.Seq != 0 {
		c.chain = s[len(members):]
	}
	err := c.decode(members, s[:len(members)])
	if err != nil {
		seq, chainHex := c.seq, c.chain
		c.reset()
		c.seq, c.chain = seq, chainHex
		if c.seq == 0 {
			if l, perr := chain.ParseLine(members); perr == nil {
				c.seq, c.chain = l.Seq, fmt.Sprintf("%x", l.MAC)
			}
		}
		c.body = attribute.StringValue(s[:len(members)])
		c.hasBody = true
		c.attrs = append(c.attrs, attribute.String("audit.error", err.Error()))
	}
	// The observed timestamp is the record's own time: when the record
	// entered the audit trail, which is where the bridge observes it (it
	// replays the trail; when it reads a record is an accident of
	// batching, outages and restarts). So a record sent twice (at least
	// once delivery) is the same record both times, byte for byte, and a
	// receiver may deduplicate by content as well as by audit.seq and
	// audit.chain. Only a line without a time (not valid JSON, say) gets
	// the time it was converted.
	c.observed = c.time
	if c.observed.IsZero() {
		c.observed = observed
	}

	// audit.seq and audit.chain come first: an attribute count limit
	// (OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT) keeps the first attributes,
	// and these are what a record is matched and deduplicated by; and an
	// attribute of the same name in the record gets the underscore.
	switch {
	case c.seq != 0 && c.chain != "":
		c.attrs = slices.Insert(c.attrs, 0, attribute.Int64(SeqKey, int64(c.seq)), attribute.String(ChainKey, c.chain))
	case c.seq != 0:
		c.attrs = slices.Insert(c.attrs, 0, attribute.Int64(SeqKey, int64(c.seq)))
	case c.chain != "":
		c.attrs = slices.Insert(c.attrs, 0, attribute.String(ChainKey, c.chain))
	}
	c.attrs = c.unique(c.attrs)
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: c.traceID, SpanID: c.spanID}), err
}

// fields are a converted record's fields but its attributes and trace ids.
type fields struct {
	event, severityText  string
	body                 attribute.Value
	severity             log.Severity
	time, observed       time.Time
	setBody, setSeverity bool
}

// fields returns the converted record's fields.
func (c *converter) fields() fields {
	f := fields{time: c.time, observed: c.observed}
	switch c.kind {
	case chain.RecOpen:
		f.event = EventFileOpen
	case chain.RecClose:
		f.event = EventFileClose
	default:
		if c.event != "" {
			f.event = c.eventName(c.event)
		}
	}
	if c.hasBody {
		f.body, f.setBody = c.body, true
	} else if c.kind != "" {
		f.setBody = true
		switch c.kind {
		case chain.RecOpen:
			f.body = attribute.StringValue(bodyOpen)
		case chain.RecClose:
			f.body = attribute.StringValue(bodyClose)
		default:
			f.body = attribute.StringValue("audit file " + c.kind)
		}
	}
	if c.hasLevel {
		f.severity, f.severityText, f.setSeverity = c.severity, c.level, true
	} else if c.kind != "" {
		f.severity, f.severityText, f.setSeverity = log.SeverityInfo, "INFO", true
	}
	return f
}

// setLog sets f on a log.Record. (The same lines for log.Record and the
// SDK's Record, rather than one function over an interface of their
// setters: a log.Record passed as an interface escapes, 500 bytes.)
func (f *fields) setLog(r *log.Record) {
	r.SetObservedTimestamp(f.observed)
	if f.event != "" {
		r.SetEventName(f.event)
	}
	if f.setBody {
		r.SetBody(f.body)
	}
	if f.setSeverity {
		r.SetSeverity(f.severity)
		r.SetSeverityText(f.severityText)
	}
	r.SetTimestamp(f.time)
}

// setSDK sets f on an SDK record made from the template (see ackProcessor).
func (f *fields) setSDK(r *sdklog.Record) {
	r.SetObservedTimestamp(f.observed)
	if f.event != "" {
		r.SetEventName(f.event)
	}
	if f.setBody {
		r.SetBody(f.body)
	}
	if f.setSeverity {
		r.SetSeverity(f.severity)
		r.SetSeverityText(f.severityText)
	}
	r.SetTimestamp(f.time)
}

// unique makes the attributes' keys unique, in place (claimKeys). OTLP
// wants each key once, and the bridge's provider skips the SDK's
// deduplication, which builds a map for every attribute it adds (a third
// of the exporter goroutine's time per record).
func (c *converter) unique(attrs []attribute.KeyValue) []attribute.KeyValue {
	if len(attrs) > maxQuadraticUnique && c.index == nil {
		c.index = make(map[attribute.Key]struct{})
	}
	return claimKeys(attrs, c.index)
}

// claimKeys renames, in place, each attribute whose key an earlier one
// has, to its key behind as many underscores as make it unique (at most
// 64, as the handler does; beyond that it keeps the key). It is the rule
// of the handler (handler/encode.go, claim), which writes every top-level
// key once since it applies it: the first member of a name is the one
// that counts. Files written before that may repeat a key, and flattening
// may make a key that another member has (a group "user" with a member
// "id" and a member "user.id"); neither replaces the earlier one. index is
// a scratch map for long lists.
func claimKeys(attrs []attribute.KeyValue, index map[attribute.Key]struct{}) []attribute.KeyValue {
	if len(attrs) <= maxQuadraticUnique {
		for i := 1; i < len(attrs); i++ {
			for j := range i {
				if attrs[j].Key == attrs[i].Key {
					attrs[i].Key = claimKey(attrs[i].Key, func(k attribute.Key) bool {
						for _, a := range attrs[:i] {
							if a.Key == k {
								return true
							}
						}
						return false
					})
					break
				}
			}
		}
		return attrs
	}
	defer clear(index)
	for i := range attrs {
		if _, ok := index[attrs[i].Key]; ok {
			attrs[i].Key = claimKey(attrs[i].Key, func(k attribute.Key) bool {
				_, ok := index[k]
				return ok
			})
		}
		index[attrs[i].Key] = struct{}{}
	}
	return attrs
}

// claimKey returns k behind as many underscores (1 to 64) as make taken
// false, or k if none does.
func claimKey(k attribute.Key, taken func(attribute.Key) bool) attribute.Key {
	u := k
	for range 64 {
		u = "_" + u
		if !taken(u) {
			return u
		}
	}
	return k
}

// mergeKeys merges attributes with the same key, in place: the first
// one's position, the last one's value, as the SDK's own deduplication
// does; for an object's members inside an array (a map value). index is a
// scratch map for long lists (nil: made when needed).
func mergeKeys(attrs []attribute.KeyValue, index map[attribute.Key]int) []attribute.KeyValue {
	out := attrs[:0]
	if len(attrs) > maxQuadraticUnique {
		if index == nil {
			index = make(map[attribute.Key]int, len(attrs))
		}
		defer clear(index)
		for _, a := range attrs {
			if i, ok := index[a.Key]; ok {
				out[i] = a
				continue
			}
			index[a.Key] = len(out)
			out = append(out, a)
		}
		clear(attrs[len(out):])
		return out
	}
next:
	for _, a := range attrs {
		for i := range out {
			if out[i].Key == a.Key {
				out[i] = a
				continue next
			}
		}
		out = append(out, a)
	}
	clear(attrs[len(out):])
	return out
}

// maxQuadraticUnique is how many attributes unique compares pairwise
// before it uses a map.
const maxQuadraticUnique = 48

const (
	bodyOpen  = "audit file " + chain.RecOpen
	bodyClose = "audit file " + chain.RecClose
)

// eventName returns "audit." + event, from a small cache.
func (c *converter) eventName(event string) string {
	if n, ok := c.events[event]; ok {
		return n
	}
	n := "audit." + event
	if c.events == nil {
		c.events = make(map[string]string)
	}
	if len(c.events) >= maxEvents {
		clear(c.events)
	}
	// The key is a substring of n, not of the record's string, which the
	// cache must not keep alive.
	c.events[n[len("audit."):]] = n
	return n
}

// decode parses members (a JSON object, or its members without braces) with
// a small parser of its own: with encoding/json's token API (which keeps
// member order, unlike Unmarshal into a map) a typical record cost ~50 µs and
// ~190 allocations to convert and emit; with this one, which takes the
// strings from s (a copy of members, or the queue's chunk) and reuses the
// converter's buffers, ~0.5 µs and none, about a third of what the exporter
// goroutine spends per record (BenchmarkEmit), the SDK's SetAttributes
// another third.
func (c *converter) decode(members []byte, s string) error {
	p := parser{b: members, s: s}
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
			c.prefix = append(append(c.prefix[:0], key...), '.')
			if err := c.flatten(&p, 1); err != nil {
				return err
			}
			continue
		}
		var v attribute.Value
		if p.b[p.i] == '"' { // the common case, without value's checks
			s, err := p.str()
			if err != nil {
				return err
			}
			v = attribute.StringValue(s)
		} else if v, err = p.value(1); err != nil {
			return err
		}
		if !c.top(key, v) {
			if headerBit(key)&c.seen != 0 {
				// A second member with a meaning of its own (older files;
				// the handler writes an attribute of that name as "_"+key):
				// the first one counts, this one is an attribute as the
				// handler would name it.
				key = "_" + key
			}
			c.attrs = append(c.attrs, attribute.KeyValue{Key: attribute.Key(key), Value: v})
		}
	}
	return nil
}

// headerBit returns the bit of converter.seen for a member with a meaning
// of its own, 0 for any other key.
func headerBit(key string) uint16 {
	switch key {
	case "msg":
		return 1 << 0
	case "level":
		return 1 << 1
	case "time":
		return 1 << 2
	case "trace_id":
		return 1 << 3
	case "span_id":
		return 1 << 4
	case "seq":
		return 1 << 5
	case "prev":
		return 1 << 6
	case "mac":
		return 1 << 7
	case "rec":
		return 1 << 8
	}
	return 0
}

// top handles the members with a meaning of their own and reports whether
// it consumed v: only the first one of each name (the handler's own; see
// decode for later ones). A member of an unexpected type stays an
// attribute.
func (c *converter) top(key string, v attribute.Value) bool {
	bit := headerBit(key)
	if bit == 0 {
		if key == "event" && v.Type() == attribute.STRING && c.event == "" {
			c.event = v.AsString()
		}
		return false // event is kept as an attribute as well
	}
	if c.seen&bit != 0 || !c.header(key, v) {
		return false
	}
	c.seen |= bit
	return true
}

// header is top for a member with a meaning of its own.
func (c *converter) header(key string, v attribute.Value) bool {
	switch key {
	case "msg":
		c.body, c.hasBody = v, true
		return true
	case "level":
		if v.Type() != attribute.STRING {
			return false
		}
		s := v.AsString()
		c.level, c.hasLevel = s, true
		switch s {
		case "DEBUG":
			c.severity = log.SeverityDebug
		case "INFO":
			c.severity = log.SeverityInfo
		case "WARN":
			c.severity = log.SeverityWarn
		case "ERROR":
			c.severity = log.SeverityError
		default:
			var l slog.Level
			if l.UnmarshalText([]byte(s)) == nil {
				c.severity = log.Severity(min(max(int(l)+9, int(log.SeverityTrace1)), int(log.SeverityFatal4)))
			}
		}
		return true
	case "time":
		if v.Type() != attribute.STRING {
			return false
		}
		t, ok := c.parseTime(v.AsString())
		if !ok {
			return false
		}
		c.time = t
		return true
	case "trace_id":
		if v.Type() != attribute.STRING {
			return false
		}
		id, err := trace.TraceIDFromHex(v.AsString())
		if err != nil {
			return false
		}
		c.traceID = id
		return true
	case "span_id":
		if v.Type() != attribute.STRING {
			return false
		}
		id, err := trace.SpanIDFromHex(v.AsString())
		if err != nil {
			return false
		}
		c.spanID = id
		return true
	// The chain members; the handler renames attributes with these keys
	// (to _seq and so on), so at the top level they are the chain's.
	case "seq":
		if v.Type() != attribute.INT64 || v.AsInt64() <= 0 {
			return false
		}
		c.seq = uint64(v.AsInt64())
		return true
	case "prev":
		return v.Type() == attribute.STRING // the previous record's audit.chain: redundant
	case "mac":
		if v.Type() != attribute.STRING {
			return false
		}
		c.chain = v.AsString()
		return true
	case "rec":
		if v.Type() != attribute.STRING {
			return false
		}
		c.kind = v.AsString()
		return true
	}
	return false
}

// parseTime parses an RFC 3339 time as time.Parse(time.RFC3339Nano, s)
// does, with a fast path for UTC times ("Z") with up to nine fractional
// digits, the handler's layout, and a faster one for a time in the same
// minute as the last one (consecutive records mostly are): only the seconds
// are parsed then, not the date (time.Date was most of parseUTC's cost).
func (c *converter) parseTime(s string) (time.Time, bool) {
	if len(s) >= 20 && len(s) <= 30 && s[len(s)-1] == 'Z' && c.minute != "" && s[:16] == c.minute && s[16] == ':' {
		if sec, nsec, ok := parseSeconds(s[17 : len(s)-1]); ok {
			return time.Unix(c.minuteUnix+int64(sec), int64(nsec)).UTC(), true
		}
	}
	if t, ok := parseUTC(s); ok {
		// A copy: s may be part of a record's text, which the cache must
		// not keep alive.
		c.minute, c.minuteUnix = strings.Clone(s[:16]), t.Unix()-int64(t.Second())
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// parseUTC parses YYYY-MM-DDTHH:MM:SS[.fraction]Z with a day of at most 28
// (so that every day is valid in every month); anything else is left to
// time.Parse.
func parseUTC(s string) (time.Time, bool) {
	if len(s) < 20 || len(s) > 30 || s[len(s)-1] != 'Z' ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := decimal(s[0:4])
	month, ok2 := decimal(s[5:7])
	day, ok3 := decimal(s[8:10])
	hour, ok4 := decimal(s[11:13])
	minute, ok5 := decimal(s[14:16])
	sec, nsec, ok6 := parseSeconds(s[17 : len(s)-1])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > 28 || hour > 23 || minute > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// parseSeconds parses SS[.fraction] (up to nine digits; s is at most 12
// bytes long) into seconds (0-59) and nanoseconds.
func parseSeconds(s string) (sec, nsec int, ok bool) {
	if len(s) < 2 {
		return 0, 0, false
	}
	if sec, ok = decimal(s[:2]); !ok || sec > 59 {
		return 0, 0, false
	}
	if frac := s[2:]; frac != "" {
		if frac[0] != '.' || len(frac) == 1 {
			return 0, 0, false
		}
		n, ok := decimal(frac[1:])
		if !ok {
			return 0, 0, false
		}
		for i := len(frac) - 1; i < 9; i++ {
			n *= 10
		}
		nsec = n
	}
	return sec, nsec, true
}

// decimal parses a string of ASCII digits (short enough not to overflow).
func decimal(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + int(d)
	}
	return n, true
}

// flatten adds the members of the object whose '{' was just read as
// attributes named c.prefix+key, recursively.
func (c *converter) flatten(p *parser, depth int) error {
	if depth > maxDepth {
		return p.errorf("nested too deeply")
	}
	n := len(c.prefix)
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
		c.prefix = append(c.prefix[:n], k...)
		if err := p.colon(); err != nil {
			return err
		}
		if p.b[p.i] == '{' {
			p.i++
			c.prefix = append(c.prefix, '.')
			if err := c.flatten(p, depth+1); err != nil {
				return err
			}
			continue
		}
		key := c.key(c.prefix)
		v, err := p.value(depth + 1)
		if err != nil {
			return err
		}
		c.attrs = append(c.attrs, attribute.KeyValue{Key: attribute.Key(key), Value: v})
	}
}

// maxKeys bounds the converter's cache of flattened keys.
const maxKeys = 1024

// key returns string(b), from a small cache.
func (c *converter) key(b []byte) string {
	if k, ok := c.keys[string(b)]; ok {
		return k
	}
	k := string(b)
	if c.keys == nil {
		c.keys = make(map[string]string)
	}
	if len(c.keys) >= maxKeys {
		clear(c.keys)
	}
	c.keys[k] = k
	return k
}

const maxDepth = 1000

// parser reads JSON values from b. s holds the same bytes as b: the
// strings it returns are substrings of s where they can be.
type parser struct {
	b []byte
	s string
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
				return attribute.MapValue(mergeKeys(kvs, nil)...), nil
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
	neg := p.b[p.i] == '-'
	if neg {
		p.i++
	}
	intStart := p.i
	var u uint64 // the integer part, if it has at most 18 digits
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		u = u*10 + uint64(p.b[p.i]-'0')
		p.i++
	}
	if n := p.i - intStart; n == 0 || n > 1 && p.b[intStart] == '0' {
		return attribute.Value{}, p.errorf("bad number")
	}
	if p.i-intStart <= 18 && (p.i == len(p.b) || p.b[p.i] != '.' && p.b[p.i] != 'e' && p.b[p.i] != 'E') {
		// An integer that fits: what ParseInt below would return.
		if neg {
			return attribute.Int64Value(-int64(u)), nil
		}
		return attribute.Int64Value(int64(u)), nil
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
	s := p.s[start:p.i]
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
	ascii := true
	b := p.b
	i := p.i
	for {
		for i+4 <= len(b) && strClass[b[i]]|strClass[b[i+1]]|strClass[b[i+2]]|strClass[b[i+3]] == 0 {
			i += 4
		}
		for i < len(b) && strClass[b[i]] == 0 {
			i++
		}
		if i == len(b) {
			p.i = i
			return "", p.errorf("unterminated string")
		}
		c := b[i]
		if c >= utf8.RuneSelf {
			ascii = false
			i++
			continue
		}
		p.i = i
		switch {
		case c == '"':
			raw := p.s[start:i]
			p.i++
			if ascii || utf8.ValidString(raw) {
				return raw, nil
			}
			return strings.ToValidUTF8(raw, "\uFFFD"), nil
		case c == '\\':
			return p.escaped(start)
		default:
			return "", p.errorf("control character in string")
		}
	}
}

// strClass is 0 for the bytes that need no attention in a string.
var strClass = func() (t [256]byte) {
	for c := range t {
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			t[c] = 1
		}
	}
	return t
}()

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
