package handler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/slogaudit/slogaudit/internal/jsonenc"
)

// encoder appends the members of an audit record's JSON object, following
// log/slog's JSON handler rule for rule (empty attrs and groups elided,
// groups with an empty key inlined, LogValuers resolved), so that an audit
// line reads like slog's own output. Unlike slog's, it writes every
// top-level key once (see claim), and it writes no control or invisible
// format character raw, in keys, strings or values marshaled with
// encoding/json (see jsonenc.String): the line decodes to what slog's
// decodes to.
type encoder struct {
	b     []byte
	sep   bool // a member precedes; the next one needs a comma
	depth int  // open groups

	// top holds the top-level keys written so far, as written; bloom
	// has a bit set for each, so that most keys are known to be new
	// without a comparison.
	top   []string
	bloom uint64
	// set and next, used only for records with many top-level keys or
	// many of one name (see claim), keep claim linear: set holds top
	// (while setOn), next the underscores the next key of a name starts
	// trying at. The maps are kept with a pooled buffer between records.
	set   map[string]struct{}
	setOn bool
	next  map[string]int

	// offs, when trackOffs, receives the offset of each top-level key's
	// opening quote (WithAttrs needs them, see appendPre).
	offs      []int
	trackOffs bool

	// alert, when not nil, receives the members alert rules read.
	alert *alertCapture
}

// preKey is a top-level key of a handler's pre-encoded attributes: as
// written, and the offset of its opening quote in pre.
type preKey struct {
	key string
	off int
}

// appendPre appends pre, whose top-level keys are keys, claiming each of
// them in turn; a key an earlier member already holds (a context
// attribute of the same name) gets its underscores inserted. preAlert
// holds what pre's members give the alert rules.
func (e *encoder) appendPre(pre []byte, keys []preKey, preAlert *alertCapture) {
	start := len(e.b)
	e.b = append(e.b, pre...)
	shift := 0
	for _, pk := range keys {
		n := len(e.claim(pk.key)) - len(pk.key)
		if n == 0 && e.alert != nil {
			e.alert.takeFrom(preAlert, pk.key)
		}
		if n > 0 {
			at := start + shift + pk.off + 1
			if n <= len(underscores) {
				e.b = slices.Insert(e.b, at, underscores[:n]...)
			} else {
				e.b = slices.Insert(e.b, at, []byte(strings.Repeat("_", n))...)
			}
			shift += n
		}
	}
}

var underscores = []byte(strings.Repeat("_", 64))

// reserved are the members the handler writes itself (the chain's and the
// record's time, level, message and trace ids); an attribute never takes
// their key at the top level.
func reserved(key string) bool {
	switch key {
	case "seq", "prev", "mac", "rec", "time", "level", "msg", "trace_id", "span_id":
		return true
	}
	return false
}

func bloomBit(k string) uint64 {
	if len(k) == 0 {
		return 1
	}
	return 1 << ((uint(len(k))*7 + uint(k[0])*3 + uint(k[len(k)-1])) & 63)
}

func (e *encoder) taken(k string) bool {
	if e.bloom&bloomBit(k) == 0 {
		return false
	}
	if len(e.top) > 32 {
		if !e.setOn {
			if e.set == nil {
				e.set = make(map[string]struct{}, 2*len(e.top))
			}
			for _, t := range e.top {
				e.set[t] = struct{}{}
			}
			e.setOn = true
		}
		_, ok := e.set[k]
		return ok
	}
	for _, t := range e.top {
		if t == k {
			return true
		}
	}
	return false
}

// wireKey returns k as a JSON reader reads it back: jsonenc writes each
// byte that is not valid UTF-8 as U+FFFD, so "\xff" and "\xfe" are the
// same member name.
func wireKey(k string) string {
	if utf8.ValidString(k) {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); {
		r, n := utf8.DecodeRuneInString(k[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(k[i : i+n])
		}
		i += n
	}
	return b.String()
}

// claim returns the key a top-level attribute named k is written under:
// k itself, or k behind as many underscores as make it differ from the
// reserved members and from every top-level key written before it. The
// first member of a name is the one every reader finds, also a JSON
// reader that keeps the last of duplicates: what the handler and the
// context wrote (the time, the principal, the client address) cannot be
// overridden by an attribute of the same name logged after them.
//
// Keys are compared as a JSON reader reads them (see wireKey); the key
// returned is k as given behind its underscores, which jsonenc writes as
// it writes k.
func (e *encoder) claim(k string) string {
	w := wireKey(k)
	n := 0
	if reserved(w) || e.taken(w) {
		// The next of a name starts where the last one ended: a record
		// with many attributes of one name costs a try each, not one
		// per underscore.
		n = max(1, e.next[w])
		for u := strings.Repeat("_", n) + w; reserved(u) || e.taken(u); u = "_" + u {
			n++
		}
		if e.next == nil {
			e.next = make(map[string]int)
		}
		e.next[w] = n + 1
		w = strings.Repeat("_", n) + w
	}
	e.top = append(e.top, w)
	e.bloom |= bloomBit(w)
	if e.setOn {
		e.set[w] = struct{}{}
	}
	if n == 0 {
		return k
	}
	return strings.Repeat("_", n) + k
}

// reset empties set and next, keeping their memory.
func (e *encoder) reset() {
	if e.setOn {
		clear(e.set)
		e.setOn = false
	}
	if len(e.next) > 0 {
		clear(e.next)
	}
}

// encMark is the encoder's state at a point it may return to: what was
// written, the top-level names taken, and those the alert rules saw.
type encMark struct {
	b, top int
	sep    bool
	bloom  uint64
	seen   uint8
}

// mark remembers the state, for undo.
func (e *encoder) mark() encMark {
	m := encMark{b: len(e.b), top: len(e.top), sep: e.sep, bloom: e.bloom}
	if e.alert != nil {
		m.seen = e.alert.seen
	}
	return m
}

// undo returns to m: what was written since, and the names it took, are
// gone (a group that turned out empty).
func (e *encoder) undo(m encMark) {
	e.b, e.top, e.sep, e.bloom = e.b[:m.b], e.top[:m.top], m.sep, m.bloom
	e.reset() // rebuilt when needed
	if e.trackOffs {
		e.offs = e.offs[:m.top]
	}
	if e.alert != nil {
		e.alert.seen = m.seen
	}
}

// key writes k (claimed, at the top level) and reports whether it was
// written at the top level under its own name.
func (e *encoder) key(k string) bool {
	if e.sep {
		e.b = append(e.b, ',')
	}
	own := false
	if e.depth == 0 {
		if e.trackOffs {
			e.offs = append(e.offs, len(e.b))
		}
		c := e.claim(k)
		own = len(c) == len(k)
		k = c
	}
	e.b = jsonenc.Key(e.b, k)
	e.sep = true
	return own
}

func (e *encoder) openGroup(name string) {
	if e.key(name) && e.alert != nil {
		e.alert.take(slog.Attr{Key: name, Value: slog.GroupValue()}) // the name is taken, by no string
	}
	e.b = append(e.b, '{')
	e.sep = false
	e.depth++
}

func (e *encoder) closeGroup() {
	e.b = append(e.b, '}')
	e.sep = true
	e.depth--
}

// attrs appends as and reports whether anything was appended.
func (e *encoder) attrs(as []slog.Attr) bool {
	any := false
	for _, a := range as {
		if e.attr(a) {
			any = true
		}
	}
	return any
}

// attr appends a and reports whether anything was appended.
func (e *encoder) attr(a slog.Attr) bool {
	a.Value = a.Value.Resolve()
	if a.Key == "" && a.Value.Kind() == slog.KindAny && a.Value.Any() == nil {
		return false
	}
	if a.Value.Kind() == slog.KindAny {
		if src, ok := a.Value.Any().(*slog.Source); ok {
			// As slog's JSON handler: a source is the group of its
			// non-zero fields, and elided when it has none.
			if src == nil || *src == (slog.Source{}) {
				return false
			}
			a.Value = sourceGroup(src)
		}
	}
	if a.Value.Kind() == slog.KindGroup {
		as := a.Value.Group()
		if len(as) == 0 {
			return false
		}
		m := e.mark()
		if a.Key != "" {
			e.openGroup(a.Key)
		}
		if !e.attrs(as) {
			e.undo(m)
			if a.Key != "" {
				e.depth--
			}
			return false
		}
		if a.Key != "" {
			e.closeGroup()
		}
		return true
	}
	if e.key(a.Key) && e.alert != nil {
		e.alert.take(a)
	}
	e.value(a.Value)
	return true
}

// sourceGroup returns the non-zero fields of src as a group, as
// log/slog's JSON handler writes a *slog.Source.
func sourceGroup(src *slog.Source) slog.Value {
	as := make([]slog.Attr, 0, 3)
	if src.Function != "" {
		as = append(as, slog.String("function", src.Function))
	}
	if src.File != "" {
		as = append(as, slog.String("file", src.File))
	}
	if src.Line != 0 {
		as = append(as, slog.Int("line", src.Line))
	}
	return slog.GroupValue(as...)
}

func (e *encoder) value(v slog.Value) {
	defer func() {
		if r := recover(); r != nil {
			// As slog's handlers: a method that panics on a nil
			// receiver (an error or a marshaler that does not guard
			// against nil) writes <nil>.
			if rv := reflect.ValueOf(v.Any()); rv.Kind() == reflect.Pointer && rv.IsNil() {
				e.b = jsonenc.String(e.b, "<nil>")
				return
			}
			e.b = jsonenc.String(e.b, fmt.Sprintf("!PANIC: %v", r))
		}
	}()
	switch v.Kind() {
	case slog.KindString:
		e.b = jsonenc.String(e.b, v.String())
	case slog.KindInt64:
		e.b = strconv.AppendInt(e.b, v.Int64(), 10)
	case slog.KindUint64:
		e.b = strconv.AppendUint(e.b, v.Uint64(), 10)
	case slog.KindFloat64:
		e.b = appendFloat(e.b, v.Float64())
	case slog.KindBool:
		e.b = strconv.AppendBool(e.b, v.Bool())
	case slog.KindDuration:
		e.b = strconv.AppendInt(e.b, int64(v.Duration()), 10)
	case slog.KindTime:
		e.b = jsonenc.Time(e.b, v.Time()) // UTC, like the record's own time
	default: // KindAny
		x := v.Any()
		if err, ok := x.(error); ok {
			if _, jm := x.(json.Marshaler); !jm {
				e.b = jsonenc.String(e.b, err.Error())
				return
			}
		}
		e.b = appendJSONMarshal(e.b, x)
	}
}

// appendFloat writes f as encoding/json does; NaN and infinities, which JSON
// cannot hold, become strings.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return jsonenc.String(b, strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

var jsonBufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func appendJSONMarshal(b []byte, x any) []byte {
	buf := jsonBufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 16<<10 {
			buf.Reset()
			jsonBufPool.Put(buf)
		}
	}()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return jsonenc.String(b, "!ERROR:"+err.Error())
	}
	// The strings in it escaped as jsonenc.String escapes them: without
	// raw control or invisible format characters (a struct field, a
	// map key, a json.RawMessage from outside).
	return jsonenc.JSON(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
