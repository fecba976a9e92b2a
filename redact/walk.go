package redact

import (
	"encoding/json"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// walker carries the state of one redaction: the count, and the pointers
// on the path from the root for cycle detection.
type walker struct {
	r     *Redactor
	n     int
	path  []uintptr
	pathp *[]uintptr // pooled backing of path; give it back with release
}

var pathPool = sync.Pool{New: func() any { p := make([]uintptr, 0, 16); return &p }}

// release returns the walker's pooled memory; call it when done.
func (w *walker) release() {
	if w.pathp != nil {
		*w.pathp = w.path[:0]
		pathPool.Put(w.pathp)
		w.pathp, w.path = nil, nil
	}
}

var redactedValue = slog.StringValue(Redacted)

// attr returns the redacted form of a, at nesting depth depth, and whether
// it differs from a. forced redacts the value whatever its key (it sits
// under a group whose name is a secret key).
func (w *walker) attr(a slog.Attr, depth int, forced bool) (slog.Attr, bool) {
	// Attribute keys are names chosen by the program, so they are not
	// scanned for value patterns (map keys, which are data, are).
	if forced || w.r.keys.secret(a.Key) {
		v, ch := w.secretValue(a.Value, depth)
		if ch {
			a.Value = v
		}
		return a, ch
	}
	v, ch := w.value(a.Value, depth)
	if ch {
		a.Value = v
	}
	return a, ch
}

// needs reports whether attr would change a, without building anything:
// the handler's check of a clean record. It may say true where attr then
// finds nothing (hasSecret is the looser test), never the reverse. It
// needs no walker for the common kinds, which keeps clean records cheap.
func (r *Redactor) needs(a slog.Attr, depth int, forced bool) bool {
	// keys.secret, with its first step inlined: most keys stop there.
	if forced || !r.keys.ruledOut(a.Key) && r.keys.secretRest(a.Key) {
		return needsSecret(a.Value)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		s := a.Value.String()
		return len(s) >= r.minText && r.hasSecret(s)
	case slog.KindGroup:
		return r.needsGroup(a.Value, depth)
	case slog.KindLogValuer:
		return true
	case slog.KindAny:
		return r.needsAny(a.Value, depth)
	}
	return false
}

// clean reports whether none of as would change at nesting depth depth
// (not forced): !needs for each of them.
func (r *Redactor) clean(as []slog.Attr, depth int) bool {
	for i := range as {
		if !r.cleanAttr(as[i], depth) {
			return false
		}
	}
	return true
}

// cleanAttr is !needs(a, depth, false), written out so that the check of
// a clean record makes one call per attribute: the key rules (their first
// step inlined), then a value of a kind that holds no text, text the scan
// finds nothing in, or a group of those. This is most of the check of a
// clean record.
func (r *Redactor) cleanAttr(a slog.Attr, depth int) bool {
	// keys.secret, with the four-letter step of ruledOut written out:
	// most keys stop there.
	var secret bool
	if k := a.Key; len(k) >= 4 && letters4(tail4(k)|0x20) {
		i := end4(tail4(k) & 0x1f1f1f1f)
		secret = r.keys.ends4[i/64]&(1<<(i%64)) != 0 && r.secretKeyRest(k)
	} else {
		secret = !r.keys.ruledOut3(k) && r.secretKeyRest(k)
	}
	if secret {
		return !needsSecret(a.Value)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		// hasSecret, with its first step written out.
		s := a.Value.String()
		if len(s) < r.minText {
			return true
		}
		e := r.lits.entry(s, litText)
		if r.lits.clean(e) {
			return true
		}
		i := next(s, 0)
		if i == len(s) && len(r.patterns) == 0 || !r.hasSecretFrom(s, i) {
			r.lits.keep(e)
			return true
		}
		return false
	case slog.KindGroup:
		g := a.Value.Group()
		return len(g) == 0 || depth < r.maxDepth && r.clean(g, depth+1)
	case slog.KindLogValuer:
		return false
	case slog.KindAny:
		return !r.needsAny(a.Value, depth)
	}
	return true // numbers, bools, durations, times
}

// secretKeyRest is keys.secretRest, remembered for literal keys.
func (r *Redactor) secretKeyRest(k string) bool {
	e := r.lits.entry(k, litKey)
	if r.lits.clean(e) {
		return false
	}
	if r.keys.secretRest(k) {
		return true
	}
	r.lits.keep(e)
	return false
}

func needsSecret(v slog.Value) bool {
	switch v.Kind() {
	case slog.KindString:
		s := v.String()
		return s != "" && !isPlaceholder(s)
	case slog.KindAny:
		return v.Any() != nil
	}
	return true
}

func (r *Redactor) needsGroup(v slog.Value, depth int) bool {
	as := v.Group()
	return len(as) > 0 && (depth >= r.maxDepth || !r.clean(as, depth+1))
}

func (r *Redactor) needsAny(v slog.Value, depth int) bool {
	w := walker{r: r}
	_, ch := w.anyValue(v, depth)
	w.release()
	return ch
}

// secretOut is what a secret string becomes.
func (w *walker) secretOut(s string) slog.Value {
	if w.r.mode != Fingerprint {
		return redactedValue
	}
	return slog.StringValue(w.r.replacement(s))
}

// logValuer resolves a LogValuer. done means out replaces it as it is: a
// Secret, or a value that failed to resolve (fail closed); otherwise rv is
// the resolved value, still to be walked.
func (w *walker) logValuer(v slog.Value) (rv, out slog.Value, done bool) {
	if s, ok := v.Any().(Secret); ok {
		w.n++
		return slog.Value{}, w.secretOut(string(s)), true
	}
	rv, ok := resolve(v)
	if !ok {
		w.n++
		return slog.Value{}, redactedValue, true
	}
	return rv, slog.Value{}, false
}

// secretValue replaces v, which sits under a secret key. A group keeps its
// keys and has each of its values replaced; anything else is replaced as a
// whole. Empty values and values that are already placeholders are kept and
// not counted: there is nothing to hide in them.
func (w *walker) secretValue(v slog.Value, depth int) (slog.Value, bool) {
	switch v.Kind() {
	case slog.KindString:
		s := v.String()
		if s == "" || isPlaceholder(s) {
			return v, false
		}
		w.n++
		return w.secretOut(s), true
	case slog.KindGroup:
		return w.group(v, depth, true)
	case slog.KindLogValuer:
		rv, out, done := w.logValuer(v)
		if done {
			return out, true
		}
		out, _ = w.secretValue(rv, depth)
		return out, true
	case slog.KindAny:
		if v.Any() == nil {
			return v, false
		}
	}
	w.n++
	if w.r.mode == Fingerprint {
		if s, ok := fingerprintText(v); ok {
			return w.secretOut(s), true
		}
	}
	return redactedValue, true
}

// fingerprintText returns the text a fingerprint of v is computed over:
// the content of strings and Secrets, the message of errors, the text form
// of scalars. Composite values have none; they become Redacted.
func fingerprintText(v slog.Value) (string, bool) {
	switch v.Kind() {
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration, slog.KindTime:
		return v.String(), true
	case slog.KindLogValuer, slog.KindAny:
		if s, ok := v.Any().(Secret); ok {
			return string(s), true
		}
		if v.Kind() == slog.KindLogValuer {
			rv, ok := resolve(v)
			if !ok {
				return "", false
			}
			return fingerprintText(rv)
		}
		switch x := v.Any().(type) {
		case []byte:
			return string(x), true
		case error:
			return safeError(x)
		}
		rv := reflect.ValueOf(v.Any())
		if rv.Kind() == reflect.String {
			return rv.String(), true
		}
		return numText(rv)
	}
	return "", false
}

// value returns the redacted form of v and whether it differs from v.
func (w *walker) value(v slog.Value, depth int) (slog.Value, bool) {
	switch v.Kind() {
	case slog.KindString:
		s, n := w.r.text(v.String())
		if n == 0 {
			return v, false
		}
		w.n += n
		return slog.StringValue(s), true
	case slog.KindGroup:
		return w.group(v, depth, false)
	case slog.KindLogValuer:
		// Resolved here rather than left to the handler: a LogValue that
		// returned something else the second time would reach the output
		// unseen.
		rv, out, done := w.logValuer(v)
		if done {
			return out, true
		}
		if out, ch := w.value(rv, depth); ch {
			return out, true
		}
		return rv, true
	case slog.KindAny:
		return w.anyValue(v, depth)
	}
	return v, false
}

// group redacts the attributes of group v; forced redacts all their values.
func (w *walker) group(v slog.Value, depth int, forced bool) (slog.Value, bool) {
	as := v.Group()
	if len(as) == 0 {
		return v, false
	}
	if depth >= w.r.maxDepth {
		w.n++
		return redactedValue, true
	}
	var out []slog.Attr // copy on write
	for i, a := range as {
		a2, ch := w.attr(a, depth+1, forced)
		if !ch {
			continue
		}
		if out == nil {
			out = make([]slog.Attr, len(as))
			copy(out, as)
		}
		out[i] = a2
	}
	if out == nil {
		return v, false
	}
	return slog.GroupValue(out...), true
}

// anyValue handles a KindAny value by reflection. Anything that panics on
// the way is redacted as a whole.
func (w *walker) anyValue(v slog.Value, depth int) (out slog.Value, changed bool) {
	switch x := v.Any().(type) {
	case nil:
		return v, false
	case Secret:
		w.n++
		return w.secretOut(string(x)), true
	case error:
		// A JSON handler calls Error on it and does not recover a panic
		// (a nil pointer, say): catch that here rather than crash the
		// program.
		if _, ok := safeError(x); !ok {
			w.n++
			return slog.AnyValue(redactedError(Redacted)), true
		}
	}
	defer func() {
		if p := recover(); p != nil {
			w.n++
			out, changed = redactedValue, true
		}
	}()
	if nv, ok := w.rvalue(reflect.ValueOf(v.Any()), depth); ok {
		return nv, true
	}
	return v, false
}

// rvalue returns the redacted form of v, or false if v needs no change.
func (w *walker) rvalue(v reflect.Value, depth int) (slog.Value, bool) {
	if !w.dirty(v, depth) {
		return slog.Value{}, false
	}
	return w.build(v, depth), true
}

// push records that the walk entered pointer p; false means a cycle.
func (w *walker) push(p uintptr) bool {
	if w.pathp == nil {
		w.pathp = pathPool.Get().(*[]uintptr)
		w.path = (*w.pathp)[:0]
	}
	for _, q := range w.path {
		if q == p {
			return false
		}
	}
	w.path = append(w.path, p)
	return true
}

func (w *walker) pop() { w.path = w.path[:len(w.path)-1] }

// methods returns v as an interface and the rendering methods it has, or
// 0 if none matter (nil, unexported, a number, ...).
func (w *walker) methods(v reflect.Value, ti *typeInfo) (any, uint8) {
	if ti.methods == 0 && ti.pmethods == 0 || !v.CanInterface() {
		return nil, 0
	}
	if ti.methods != 0 {
		return v.Interface(), ti.methods
	}
	if v.CanAddr() {
		// As encoding/json does for addressable values.
		return v.Addr().Interface(), ti.pmethods | ti.methods
	}
	return nil, 0
}

func isNil(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return v.IsNil()
	}
	return false
}

// dirty reports whether v holds anything to redact, or anything it cannot
// vouch for. It allocates nothing for clean values of method-less types.
//
// It looks at everything a handler may print: encoding/json's view
// (exported fields, MarshalJSON, MarshalText) and fmt's (all fields, also
// unexported ones, Error, String, Format).
func (w *walker) dirty(v reflect.Value, depth int) bool {
	if !v.IsValid() || isNil(v) {
		return false
	}
	ti := w.r.info(v.Type())
	if !ti.dirty {
		return false
	}
	if v.Kind() != reflect.Interface {
		if x, m := w.methods(v, ti); m != 0 {
			return w.dirtyMethods(x, m, v, depth)
		}
	}
	return w.dirtyKind(v, ti, depth)
}

func (w *walker) dirtyMethods(x any, m uint8, v reflect.Value, depth int) bool {
	var text string
	var ok bool
	switch {
	case m&(mSecret|mSlogValue|mLogValuer|mJSON) != 0:
		// Always rebuilt: a Secret is counted, a LogValuer resolved, and
		// MarshalJSON output is only inspectable by decoding it.
		return true
	case m&mError != 0:
		if m&(mText|mFormatter) != 0 {
			return true // its text rendering would not be its message
		}
		text, ok = safeError(x.(error))
	case m&mText != 0:
		text, ok = safeText(x)
	default: // mStringer, mFormatter
		text, ok = safeString(x, m)
	}
	if !ok || w.r.hasSecret(text) {
		return true
	}
	// Its fields must be clean too: encoding/json renders them when the
	// value is nested, and the text may print them without their keys.
	return w.dirtyKind(v, w.r.info(v.Type()), depth)
}

func (w *walker) dirtyKind(v reflect.Value, ti *typeInfo, depth int) bool {
	switch v.Kind() {
	case reflect.String:
		return w.r.hasSecret(v.String())
	case reflect.Interface:
		return w.dirty(v.Elem(), depth)
	case reflect.Pointer:
		if !w.push(v.Pointer()) {
			return true
		}
		defer w.pop()
		return w.dirty(v.Elem(), depth)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return w.r.hasSecret(bytesString(v.Bytes()))
		}
		if !w.push(v.Pointer()) {
			return true
		}
		defer w.pop()
		fallthrough
	case reflect.Array:
		if v.Len() == 0 {
			return false
		}
		if depth >= w.r.maxDepth {
			return true
		}
		for i := range v.Len() {
			if w.dirty(v.Index(i), depth+1) {
				return true
			}
		}
	case reflect.Map:
		if v.Len() == 0 {
			return false
		}
		if depth >= w.r.maxDepth || !w.push(v.Pointer()) {
			return true
		}
		defer w.pop()
		it := v.MapRange()
		for it.Next() {
			k, e := keyValue(it.Key()), it.Value()
			if k.Kind() == reflect.String {
				ks := k.String()
				if secretKey(k) || w.r.keys.secret(ks) && !noContent(e) || w.r.hasSecret(ks) {
					return true
				}
			} else if w.dirty(k, depth+1) {
				return true
			}
			if w.dirty(e, depth+1) {
				return true
			}
		}
	case reflect.Struct:
		if depth >= w.r.maxDepth {
			return true
		}
		for i, secret := range ti.direct {
			f := v.Field(i)
			if secret && !noContent(f) || w.dirty(f, depth+1) {
				return true
			}
		}
	}
	return false
}

// build returns the redacted form of v, which dirty reported. Structs and
// maps become groups (keys as encoding/json names them, maps sorted by key)
// and slices become []any, so that a JSON handler renders the same shape.
func (w *walker) build(v reflect.Value, depth int) slog.Value {
	if !v.IsValid() || isNil(v) {
		return slog.AnyValue(nil)
	}
	ti := w.r.info(v.Type())
	if v.Kind() != reflect.Interface {
		if x, m := w.methods(v, ti); m != 0 {
			return w.buildMethods(x, m, v, depth)
		}
	}
	switch v.Kind() {
	case reflect.String:
		s, n := w.r.text(v.String())
		w.n += n
		return slog.StringValue(s)
	case reflect.Interface:
		return w.build(v.Elem(), depth)
	case reflect.Pointer:
		if !w.push(v.Pointer()) {
			w.n++
			return redactedValue
		}
		defer w.pop()
		return w.build(v.Elem(), depth)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			s, n := w.r.text(bytesString(v.Bytes()))
			if n == 0 {
				s = string(v.Bytes()) // not a view of the caller's bytes
			}
			w.n += n
			return slog.StringValue(s)
		}
		if !w.push(v.Pointer()) {
			w.n++
			return redactedValue
		}
		defer w.pop()
		fallthrough
	case reflect.Array:
		if v.Len() > 0 && depth >= w.r.maxDepth {
			w.n++
			return redactedValue
		}
		out := make([]any, v.Len())
		for i := range out {
			e := v.Index(i)
			if nv, ok := w.rvalue(e, depth+1); ok {
				out[i] = plain(nv)
			} else {
				out[i] = plain(w.orig(e, depth+1))
			}
		}
		return slog.AnyValue(out)
	case reflect.Map:
		return w.buildMap(v, depth)
	case reflect.Struct:
		return w.buildStruct(v, ti, depth)
	}
	return w.orig(v, depth)
}

// orig returns the slog form of v, which needs no redaction.
func (w *walker) orig(v reflect.Value, depth int) slog.Value {
	if v.CanInterface() {
		return slog.AnyValue(v.Interface())
	}
	// Reached only through unexported data, which build does not follow;
	// kept for safety.
	switch v.Kind() {
	case reflect.Bool:
		return slog.BoolValue(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return slog.Int64Value(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return slog.Uint64Value(v.Uint())
	case reflect.Float32, reflect.Float64:
		return slog.Float64Value(v.Float())
	}
	return w.build(v, depth)
}

// plain converts v to a value that encoding/json renders as a JSON handler
// renders v, for use inside slices where slog has no kind for elements.
func plain(v slog.Value) any {
	if v.Kind() == slog.KindGroup {
		as := v.Group()
		m := make(map[string]any, len(as))
		for _, a := range as {
			m[a.Key] = plain(a.Value)
		}
		return m
	}
	return v.Any()
}

func (w *walker) buildMethods(x any, m uint8, v reflect.Value, depth int) slog.Value {
	switch {
	case m&mSecret != 0:
		w.n++
		return w.secretOut(reflect.Indirect(v).String())
	case m&mSlogValue != 0:
		sv := x.(slog.Value)
		if out, ch := w.value(sv, depth); ch {
			return out
		}
		return sv
	case m&mLogValuer != 0:
		lv, ok := resolve(slog.AnyValue(x))
		if !ok {
			w.n++
			return redactedValue
		}
		if out, ch := w.value(lv, depth); ch {
			return out
		}
		return lv
	case m&mError != 0:
		msg, ok := safeError(x.(error))
		if !ok {
			w.n++
			return slog.AnyValue(redactedError(Redacted))
		}
		s, n := w.methodText(msg, v, depth)
		if n == 0 && m&(mText|mFormatter) == 0 {
			n = 1 // the message was clean, so the secret was in the fields
		}
		w.n += n
		return slog.AnyValue(redactedError(s))
	case m&mJSON != 0:
		return w.buildJSON(x, v, depth)
	case m&mText != 0:
		t, ok := safeText(x)
		if !ok {
			w.n++
			return redactedValue
		}
		s, n := w.methodText(t, v, depth)
		w.n += n
		return slog.StringValue(s)
	default: // mStringer, mFormatter
		// Rendered as its text, not field by field: the type chose what to
		// show.
		t, ok := safeString(x, m)
		if !ok {
			w.n++
			return redactedValue
		}
		s, n := w.methodText(t, v, depth)
		if n == 0 {
			n = 1 // the text was clean, so the secret was in the fields
		}
		w.n += n
		return slog.StringValue(s)
	}
}

// methodText redacts text that a method of v produced. Besides the value
// patterns, it removes the taints of v: values that sat under secret keys
// in v's fields, which the text may print without their keys (as fmt's
// %v does).
func (w *walker) methodText(text string, v reflect.Value, depth int) (string, int) {
	text, n := w.stripTaints(text, v, depth, false)
	s, k := w.r.text(text)
	return s, n + k
}

// minTaint is the shortest tainted value removed from text where it
// occurs; text holding a shorter one is replaced as a whole, as removing
// every occurrence of, say, "ab" would leave nothing readable anyway.
const minTaint = 4

// stripTaints removes the taints of v from text. jsonEscaped says text is
// JSON, where taints appear escaped.
func (w *walker) stripTaints(text string, v reflect.Value, depth int, jsonEscaped bool) (string, int) {
	var ts []string
	if w.taints(v, depth, false, &ts) {
		return w.r.replacement(text), 1
	}
	// Longest first, so that a taint is not left half replaced by a shorter
	// one it contains.
	slices.SortFunc(ts, func(a, b string) int { return len(b) - len(a) })
	n := 0
	for _, t := range ts {
		if jsonEscaped {
			b, _ := json.Marshal(t)
			t = string(b[1 : len(b)-1])
		}
		if !strings.Contains(text, t) {
			continue
		}
		if len(t) < minTaint {
			return w.r.replacement(text), 1
		}
		text = strings.ReplaceAll(text, t, w.r.replacement(t))
		n++
	}
	return text, n
}

// taints appends to ts the text of the values in v that are secret by key
// or by type: strings and numbers under secret keys, Secrets. It reads
// fields and entries without calling methods. It reports true if v holds
// something it cannot vouch for (a cycle, nesting beyond MaxDepth).
func (w *walker) taints(v reflect.Value, depth int, under bool, ts *[]string) bool {
	if !v.IsValid() || isNil(v) {
		return false
	}
	if depth > w.r.maxDepth {
		return true
	}
	t := v.Type()
	if !under && !w.r.info(t).dirty {
		return false
	}
	switch k := v.Kind(); {
	case t == secretType:
		if v.Len() > 0 {
			*ts = append(*ts, v.String())
		}
	case k == reflect.String:
		if under && !noContent(v) {
			*ts = append(*ts, v.String())
		}
	case k == reflect.Bool:
		// A bool cannot carry a credential.
	case numeric(k):
		if under {
			t, _ := numText(v)
			*ts = append(*ts, t)
		}
	case k == reflect.Interface:
		return w.taints(v.Elem(), depth, under, ts)
	case k == reflect.Pointer:
		if !w.push(v.Pointer()) {
			return true
		}
		defer w.pop()
		return w.taints(v.Elem(), depth, under, ts)
	case k == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		if under && v.Len() > 0 {
			*ts = append(*ts, string(v.Bytes()))
		}
	case k == reflect.Slice, k == reflect.Array:
		if k == reflect.Slice {
			if !w.push(v.Pointer()) {
				return true
			}
			defer w.pop()
		}
		for i := range v.Len() {
			if w.taints(v.Index(i), depth+1, under, ts) {
				return true
			}
		}
	case k == reflect.Map:
		if !w.push(v.Pointer()) {
			return true
		}
		defer w.pop()
		it := v.MapRange()
		for it.Next() {
			key := keyValue(it.Key())
			if secretKey(key) {
				*ts = append(*ts, key.String())
			}
			u := under || key.Kind() == reflect.String && w.r.keys.secret(key.String())
			if w.taints(it.Value(), depth+1, u, ts) {
				return true
			}
		}
	case k == reflect.Struct:
		ti := w.r.info(t)
		for i, secret := range ti.direct {
			if w.taints(v.Field(i), depth+1, under || secret, ts) {
				return true
			}
		}
	}
	return false
}
