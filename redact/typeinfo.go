package redact

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Rendering methods, in the order a walk honours them.
const (
	mSecret    uint8 = 1 << iota // redact.Secret
	mSlogValue                   // slog.Value nested in a value
	mLogValuer                   // slog.LogValuer
	mError                       // error
	mJSON                        // json.Marshaler
	mText                        // encoding.TextMarshaler
	mStringer                    // fmt.Stringer
	mFormatter                   // fmt.Formatter
)

var (
	secretType        = reflect.TypeFor[Secret]()
	secretPtrType     = reflect.TypeFor[*Secret]()
	slogValueType     = reflect.TypeFor[slog.Value]()
	timeType          = reflect.TypeFor[time.Time]()
	locationType      = reflect.TypeFor[time.Location]()
	locationPtrType   = reflect.TypeFor[*time.Location]()
	logValuerType     = reflect.TypeFor[slog.LogValuer]()
	errorType         = reflect.TypeFor[error]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	stringerType      = reflect.TypeFor[fmt.Stringer]()
	formatterType     = reflect.TypeFor[fmt.Formatter]()
)

// typeInfo is what a Redactor knows about a type, computed once.
type typeInfo struct {
	// dirty is false when no value of the type can need redaction: no
	// strings, interfaces, rendering methods or secret field names anywhere
	// in it. Such values are passed through without being walked.
	dirty    bool
	methods  uint8   // of the type
	pmethods uint8   // of its pointer type only (used on addressable values)
	direct   []bool  // struct: the name of field i is a secret key
	hidden   []int   // struct: fields encoding/json does not render
	fields   []field // struct: fields as encoding/json renders them
}

// field is a struct field as encoding/json sees it.
type field struct {
	name      string
	tagged    bool
	index     []int
	omitEmpty bool
	omitZero  bool
	quoted    bool // ",string"
	secret    bool // its JSON or Go name is a secret key
}

func (r *Redactor) info(t reflect.Type) *typeInfo {
	if ti, ok := r.types.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{methods: methodsOf(t)}
	if k := t.Kind(); k != reflect.Pointer && k != reflect.Interface {
		ti.pmethods = methodsOf(reflect.PointerTo(t)) &^ ti.methods
	}
	ti.dirty = r.typeDirty(t, map[reflect.Type]bool{})
	if t.Kind() == reflect.Struct {
		ti.direct = make([]bool, t.NumField())
		for i := range t.NumField() {
			sf := t.Field(i)
			ti.direct[i] = r.fieldNameSecret(sf)
			tag := sf.Tag.Get("json")
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if tag == "-" || !sf.IsExported() && (!sf.Anonymous || et.Kind() != reflect.Struct) {
				ti.hidden = append(ti.hidden, i)
			}
		}
		ti.fields = r.jsonFields(t)
	}
	actual, _ := r.types.LoadOrStore(t, ti)
	return actual.(*typeInfo)
}

func numeric(k reflect.Kind) bool {
	switch k {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	}
	return false
}

// methodsOf returns the rendering methods of t that a walk must honour.
func methodsOf(t reflect.Type) uint8 {
	switch {
	case t == secretType || t == secretPtrType:
		return mSecret
	case t == slogValueType:
		return mSlogValue
	case t.Kind() == reflect.Interface, numeric(t.Kind()):
		// Interfaces are walked through to their dynamic value. Numbers
		// cannot carry a credential, whatever their String method says;
		// treating them as clean keeps enums and levels fast.
		return 0
	case t == timeType || t == locationType || t == locationPtrType:
		return 0
	}
	var m uint8
	if t.Implements(logValuerType) {
		m |= mLogValuer
	}
	if t.Implements(errorType) {
		m |= mError
	}
	if t.Implements(jsonMarshalerType) {
		m |= mJSON
	}
	if t.Implements(textMarshalerType) {
		m |= mText
	}
	if t.Implements(stringerType) {
		m |= mStringer
	}
	if t.Implements(formatterType) {
		m |= mFormatter
	}
	return m
}

func (r *Redactor) typeDirty(t reflect.Type, visiting map[reflect.Type]bool) bool {
	k := t.Kind()
	switch {
	case numeric(k), k == reflect.Func, k == reflect.Chan, k == reflect.UnsafePointer:
		return false
	case k == reflect.String, k == reflect.Interface:
		return true
	case t == timeType || t == locationType || t == locationPtrType:
		return false
	case methodsOf(t) != 0 || methodsOf(reflect.PointerTo(t)) != 0:
		return true
	case visiting[t]:
		// Recursive type: assume the worst; the walk detects cycles.
		return true
	}
	visiting[t] = true
	defer delete(visiting, t)
	switch k {
	case reflect.Slice:
		// []byte is text to both fmt and the walk.
		return t.Elem().Kind() == reflect.Uint8 || r.typeDirty(t.Elem(), visiting)
	case reflect.Pointer, reflect.Array:
		return r.typeDirty(t.Elem(), visiting)
	case reflect.Map:
		return r.typeDirty(t.Key(), visiting) || r.typeDirty(t.Elem(), visiting)
	case reflect.Struct:
		for i := range t.NumField() {
			sf := t.Field(i)
			if r.fieldNameSecret(sf) || r.typeDirty(sf.Type, visiting) {
				return true
			}
		}
	}
	return false
}

// fieldNameSecret reports whether a field's Go name (which fmt prints) or
// JSON name (which encoding/json prints) is a secret key.
func (r *Redactor) fieldNameSecret(sf reflect.StructField) bool {
	name, _ := parseTag(sf.Tag.Get("json"))
	if sf.Anonymous && name == "" {
		return false
	}
	return r.keys.secret(sf.Name) || name != "" && name != "-" && r.keys.secret(name)
}

func parseTag(tag string) (name, opts string) {
	name, opts, _ = strings.Cut(tag, ",")
	return name, opts
}

func hasOpt(opts, o string) bool {
	for opts != "" {
		var s string
		s, opts, _ = strings.Cut(opts, ",")
		if s == o {
			return true
		}
	}
	return false
}

func validTagName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80):
			return false
		}
	}
	return true
}

// jsonFields returns the fields of struct type t that encoding/json
// renders, with its rules for tags, embedding and name conflicts.
func (r *Redactor) jsonFields(t reflect.Type) []field {
	type item struct {
		typ   reflect.Type
		index []int
	}
	var current []item
	next := []item{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	var fields []field
	for len(next) > 0 {
		current, next = next, current[:0]
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, f := range current {
			if visited[f.typ] {
				continue
			}
			visited[f.typ] = true
			for i := range f.typ.NumField() {
				sf := f.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts := parseTag(tag)
				if !validTagName(name) {
					name = ""
				}
				index := append(slices.Clip(f.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					fl := field{
						name:      name,
						tagged:    name != "",
						index:     index,
						omitEmpty: hasOpt(opts, "omitempty"),
						omitZero:  hasOpt(opts, "omitzero"),
					}
					if fl.name == "" {
						fl.name = sf.Name
					}
					switch ft.Kind() {
					case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
						reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
						reflect.Float32, reflect.Float64, reflect.String:
						fl.quoted = hasOpt(opts, "string")
					}
					fl.secret = r.keys.secret(fl.name) || r.keys.secret(sf.Name)
					fields = append(fields, fl)
					if count[f.typ] > 1 {
						// Embedded more than once at this depth: the
						// duplicate annihilates both below.
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, item{typ: ft, index: index})
				}
			}
		}
	}
	slices.SortFunc(fields, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	out := fields[:0]
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		// The first of a name wins unless the next is as shallow and as
		// tagged, in which case neither is rendered.
		if j-i == 1 || len(fields[i].index) != len(fields[i+1].index) || fields[i].tagged != fields[i+1].tagged {
			out = append(out, fields[i])
		}
		i = j
	}
	slices.SortFunc(out, func(a, b field) int { return slices.Compare(a.index, b.index) })
	return out
}

func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

// isEmptyValue is encoding/json's notion of empty, for omitempty.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return numeric(v.Kind()) && v.IsZero()
}

// noContent reports whether v, under a secret key, has nothing to hide:
// it is empty or already a placeholder. A zero number is still a value (a
// PIN may be 0000).
func noContent(v reflect.Value) bool {
	for range 8 { // bounded: a pointer type may point to itself
		switch v.Kind() {
		case reflect.String:
			return v.Len() == 0 || isPlaceholder(v.String())
		case reflect.Array, reflect.Map, reflect.Slice:
			return v.Len() == 0
		case reflect.Interface, reflect.Pointer:
			if v.IsNil() {
				return true
			}
			v = v.Elem()
			continue
		}
		return false
	}
	return false
}

func isZeroValue(v reflect.Value) (zero bool) {
	if v.CanInterface() {
		if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
			if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
				return true
			}
			defer func() {
				if recover() != nil {
					zero = false
				}
			}()
			return z.IsZero()
		}
	}
	return v.IsZero()
}

// bytesString views b as a string for scanning; the result must not be
// kept.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Calls of methods of the caller's types, which may panic. A panic means
// the value cannot be inspected, so it is redacted (ok false).

func resolve(v slog.Value) (out slog.Value, ok bool) {
	defer func() {
		if recover() != nil {
			out, ok = slog.Value{}, false
		}
	}()
	for range 100 { // as slog.Value.Resolve
		if v.Kind() != slog.KindLogValuer {
			return v, true
		}
		if _, ok := v.Any().(Secret); ok {
			return v, true // left for the caller to count and fingerprint
		}
		v = v.LogValuer().LogValue()
	}
	return slog.Value{}, false
}

func safeError(e error) (s string, ok bool) {
	defer func() {
		if recover() != nil {
			s, ok = "", false
		}
	}()
	return e.Error(), true
}

func safeText(x any) (s string, ok bool) {
	defer func() {
		if recover() != nil {
			s, ok = "", false
		}
	}()
	b, err := x.(encoding.TextMarshaler).MarshalText()
	if err != nil {
		return "", false
	}
	return string(b), true
}

// safeString returns what fmt's %+v prints for x: Format's output for a
// fmt.Formatter, else String's.
func safeString(x any, m uint8) (s string, ok bool) {
	if m&mFormatter != 0 {
		s = fmt.Sprintf("%+v", x)
		// fmt recovers panics itself and prints the panic value, which may
		// quote the secret.
		return s, !strings.Contains(s, "(PANIC=")
	}
	defer func() {
		if recover() != nil {
			s, ok = "", false
		}
	}()
	return x.(fmt.Stringer).String(), true
}

func safeJSON(x any) (b []byte, ok bool) {
	defer func() {
		if recover() != nil {
			b, ok = nil, false
		}
	}()
	b, err := x.(json.Marshaler).MarshalJSON()
	return b, err == nil
}

func safeSprint(x any) string {
	s := fmt.Sprint(x)
	if strings.Contains(s, "(PANIC=") {
		return Redacted
	}
	return s
}

func (w *walker) buildStruct(v reflect.Value, ti *typeInfo, depth int) slog.Value {
	if depth >= w.r.maxDepth {
		w.n++
		return redactedValue
	}
	attrs := make([]slog.Attr, 0, len(ti.fields))
	for i := range ti.fields {
		f := &ti.fields[i]
		fv, ok := fieldByIndex(v, f.index)
		if !ok || f.omitEmpty && isEmptyValue(fv) || f.omitZero && isZeroValue(fv) {
			continue
		}
		switch fv.Kind() {
		case reflect.Func, reflect.Chan, reflect.UnsafePointer:
			continue // encoding/json cannot render them
		}
		var val slog.Value
		if f.secret && !noContent(fv) {
			w.n++
			val = w.secretReflect(fv)
		} else if nv, ok := w.rvalue(fv, depth+1); ok {
			val = nv
		} else {
			val = w.orig(fv, depth+1)
		}
		if f.quoted {
			val = quoteValue(val)
		}
		attrs = append(attrs, slog.Attr{Key: f.name, Value: val})
	}
	// Fields JSON does not render are dropped; count those that held a
	// secret, since fmt would have printed them.
	for _, i := range ti.hidden {
		f := v.Field(i)
		if ti.direct[i] && !noContent(f) || w.dirty(f, depth+1) {
			w.n++
		}
	}
	return groupOrEmpty(attrs)
}

func groupOrEmpty(attrs []slog.Attr) slog.Value {
	if len(attrs) == 0 {
		// An empty group would vanish from the output; JSON has {}.
		return slog.AnyValue(struct{}{})
	}
	return slog.GroupValue(attrs...)
}

func quoteValue(v slog.Value) slog.Value {
	switch v.Kind() {
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool:
		return slog.StringValue(v.String())
	case slog.KindString:
		b, _ := json.Marshal(v.String())
		return slog.StringValue(string(b))
	}
	return v
}

// secretReflect replaces v, which sits under a secret key.
func (w *walker) secretReflect(v reflect.Value) slog.Value {
	if w.r.mode != Fingerprint {
		return redactedValue
	}
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return redactedValue
		}
		v = v.Elem()
	}
	switch {
	case v.Kind() == reflect.String:
		return w.secretOut(v.String())
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		return w.secretOut(string(v.Bytes()))
	case numeric(v.Kind()):
		t, _ := numText(v)
		return w.secretOut(t)
	case v.CanInterface():
		if s, ok := fingerprintText(slog.AnyValue(v.Interface())); ok {
			return w.secretOut(s)
		}
	}
	return redactedValue
}

func (w *walker) buildMap(v reflect.Value, depth int) slog.Value {
	if v.Len() == 0 {
		return w.orig(v, depth)
	}
	if depth >= w.r.maxDepth || !w.push(v.Pointer()) {
		w.n++
		return redactedValue
	}
	defer w.pop()
	type entry struct {
		key string
		v   reflect.Value
	}
	es := make([]entry, 0, v.Len())
	it := v.MapRange()
	for it.Next() {
		k := keyValue(it.Key())
		ks, ok := mapKey(k)
		if !ok {
			w.n++
			continue
		}
		if secretKey(k) {
			// Fingerprints keep the keys apart; replaced by one
			// placeholder they would be members of the same name, so
			// the map goes as a whole.
			w.n++
			if w.r.mode != Fingerprint {
				return redactedValue
			}
			ks = w.r.replacement(ks)
		}
		es = append(es, entry{ks, it.Value()})
	}
	// Sorted as encoding/json sorts, and so that equal maps log equal lines.
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	attrs := make([]slog.Attr, 0, len(es))
	for _, e := range es {
		key, n := w.r.text(e.key)
		w.n += n
		var val slog.Value
		if w.r.keys.secret(e.key) && !noContent(e.v) {
			w.n++
			val = w.secretReflect(e.v)
		} else if nv, ok := w.rvalue(e.v, depth+1); ok {
			val = nv
		} else {
			val = w.orig(e.v, depth+1)
		}
		attrs = append(attrs, slog.Attr{Key: key, Value: val})
	}
	return groupOrEmpty(attrs)
}

// keyValue is a map key, out of its interface if the map's key type is one
// (map[any]any, as YAML decoders make): the key rules apply to what it
// holds.
func keyValue(k reflect.Value) reflect.Value {
	if k.Kind() == reflect.Interface && !k.IsNil() {
		return k.Elem()
	}
	return k
}

// secretKey reports whether the map key k (from keyValue) is a non-empty
// Secret: encoding/json and fmt write a key of string kind as it is, never
// through its methods, so its content would print.
func secretKey(k reflect.Value) bool {
	return k.Type() == secretType && k.Len() > 0
}

// mapKey returns the key as encoding/json writes it, or as fmt does for
// keys JSON cannot have.
func mapKey(k reflect.Value) (string, bool) {
	if k = keyValue(k); k.Kind() == reflect.Interface {
		return "<nil>", true
	}
	if k.Kind() == reflect.String {
		return k.String(), true
	}
	if k.CanInterface() {
		if _, ok := k.Interface().(encoding.TextMarshaler); ok {
			return safeText(k.Interface())
		}
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), true
	}
	if k.CanInterface() {
		return safeSprint(k.Interface()), true
	}
	return "", false
}

// buildJSON renders a json.Marshaler by decoding its output and walking
// that, so keys and strings in it get the same rules.
func (w *walker) buildJSON(x any, v reflect.Value, depth int) slog.Value {
	b, ok := safeJSON(x)
	if !ok {
		w.n++
		return redactedValue
	}
	// MarshalJSON may put a secret field's value under another name.
	js, n := w.stripTaints(string(b), v, depth, true)
	w.n += n
	b = []byte(js)
	var y any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&y); err != nil {
		w.n++
		return redactedValue
	}
	if nv, ok := w.rvalue(reflect.ValueOf(y), depth); ok {
		return nv
	}
	return slog.AnyValue(y)
}

// numText formats a number or bool from its reflected value, without
// calling any String method its type has.
func numText(v reflect.Value) (string, bool) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(v.Uint(), 10), true
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), true
	case reflect.Complex64, reflect.Complex128:
		return strconv.FormatComplex(v.Complex(), 'g', -1, 128), true
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), true
	}
	return "", false
}
