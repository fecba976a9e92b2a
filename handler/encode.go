package handler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/slogaudit/slogaudit/internal/jsonenc"
)

// encoder appends the members of an audit record's JSON object, following
// log/slog's JSON handler rule for rule (empty attrs and groups elided,
// groups with an empty key inlined, LogValuers resolved), so that an audit
// line reads like slog's own output.
type encoder struct {
	b     []byte
	sep   bool // a member precedes; the next one needs a comma
	depth int  // open groups
}

// reserved are the chain's own members; a top-level attribute with one of
// these keys is written with a leading underscore so that JSON readers that
// keep the last duplicate cannot be misled.
func reserved(key string) bool {
	switch key {
	case "seq", "prev", "mac", "rec":
		return true
	}
	return false
}

func (e *encoder) key(k string) {
	if e.sep {
		e.b = append(e.b, ',')
	}
	if e.depth == 0 && reserved(k) {
		e.b = append(e.b, `"_`...)
		e.b = append(e.b, k...)
		e.b = append(e.b, `":`...)
	} else {
		e.b = jsonenc.Key(e.b, k)
	}
	e.sep = true
}

func (e *encoder) openGroup(name string) {
	e.key(name)
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
	if a.Value.Kind() == slog.KindGroup {
		as := a.Value.Group()
		if len(as) == 0 {
			return false
		}
		pos, sep := len(e.b), e.sep
		if a.Key != "" {
			e.openGroup(a.Key)
		}
		if !e.attrs(as) {
			e.b, e.sep = e.b[:pos], sep
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
	e.key(a.Key)
	e.value(a.Value)
	return true
}

func (e *encoder) value(v slog.Value) {
	defer func() {
		if r := recover(); r != nil {
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
		e.b = append(e.b, '"')
		e.b = v.Time().AppendFormat(e.b, time.RFC3339Nano)
		e.b = append(e.b, '"')
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
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
