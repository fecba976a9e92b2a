package jsonenc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/slogaudit/slogaudit/internal/jsonenc/spec"
)

func TestTimeMatchesLayout(t *testing.T) {
	base := time.Date(2026, 11, 27, 23, 59, 58, 0, time.FixedZone("X", 3600))
	for _, tt := range []time.Time{
		base,
		base.Add(999_999_999),
		base.Add(time.Second + 1),
		base.Add(2 * time.Second), // next day in UTC
		base.Add(2 * time.Second), // cached second
		time.Date(1, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(12345, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(-5, 1, 1, 0, 0, 0, 5, time.UTC),
	} {
		want := `"` + tt.UTC().Format(TimeLayout) + `"`
		if got := string(Time(nil, tt)); got != want {
			t.Errorf("Time(%v) = %s, want %s", tt, got, want)
		}
	}
}

func TestStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\\`, "tab\tnl\n\x00\x1f", "utf8 é ☃", "bad \xff utf8", "\u2028\u2029", "<html>&"} {
		var back string
		if err := json.Unmarshal(String(nil, s), &back); err != nil {
			t.Fatalf("String(%q) is not JSON: %v", s, err)
		}
		want := s
		if s == "bad \xff utf8" {
			want = "bad \ufffd utf8"
		}
		if back != want {
			t.Errorf("String(%q) round-trips to %q", s, back)
		}
	}
}

// The first and last character of each range String escapes beyond what
// log/slog escapes, and the neighbours of each range, which stay raw.
var escapeBoundaries = []struct {
	r    rune
	want string // "" when r stays raw
}{
	{0x1f, `\u001f`}, {0x20, ""}, {0x7e, ""},
	// DEL, C1 controls (NEL, CSI)
	{0x7f, `\u007f`}, {0x80, `\u0080`}, {0x85, `\u0085`}, {0x9b, `\u009b`}, {0x9f, `\u009f`},
	{0xa0, ""}, {0xac, ""},
	// SOFT HYPHEN
	{0xad, `\u00ad`},
	{0xae, ""}, {0x600, ""}, {0x61b, ""},
	// ARABIC LETTER MARK
	{0x61c, `\u061c`},
	{0x61d, ""}, {0x180d, ""},
	// MONGOLIAN VOWEL SEPARATOR
	{0x180e, `\u180e`},
	{0x180f, ""}, {0x200a, ""},
	// ZERO WIDTH SPACE … RIGHT-TO-LEFT MARK
	{0x200b, `\u200b`}, {0x200d, `\u200d`}, {0x200e, `\u200e`}, {0x200f, `\u200f`},
	{0x2010, ""}, {0x2027, ""},
	// LINE and PARAGRAPH SEPARATOR (as slog), LEFT-TO-RIGHT EMBEDDING … RIGHT-TO-LEFT OVERRIDE
	{0x2028, `\u2028`}, {0x2029, `\u2029`}, {0x202a, `\u202a`}, {0x202e, `\u202e`},
	{0x202f, ""}, {0x205f, ""},
	// WORD JOINER … INVISIBLE PLUS
	{0x2060, `\u2060`}, {0x2064, `\u2064`},
	{0x2065, ""}, // unassigned
	// the isolates, the deprecated format characters
	{0x2066, `\u2066`}, {0x2069, `\u2069`}, {0x206a, `\u206a`}, {0x206f, `\u206f`},
	{0x2070, ""}, {0xfefe, ""},
	// ZERO WIDTH NO-BREAK SPACE (BOM)
	{0xfeff, `\ufeff`},
	{0xff00, ""}, {0xfff9, ""}, {0xfffd, ""}, {0x1bc9f, ""},
	// shorthand format controls
	{0x1bca0, `\ud82f\udca0`}, {0x1bca3, `\ud82f\udca3`},
	{0x1bca4, ""}, {0x1d172, ""},
	// musical symbol format characters
	{0x1d173, `\ud834\udd73`}, {0x1d17a, `\ud834\udd7a`},
	{0x1d17b, ""}, {0xe0000, ""},
	// LANGUAGE TAG
	{0xe0001, `\udb40\udc01`},
	{0xe0002, ""}, {0xe001f, ""},
	// tag characters
	{0xe0020, `\udb40\udc20`}, {0xe007f, `\udb40\udc7f`},
	{0xe0080, ""}, {0xe0100, ""}, {0x10ffff, ""},
}

func TestStringEscapeBoundaries(t *testing.T) {
	for _, tt := range escapeBoundaries {
		s := "a" + string(tt.r) + "b"
		want := tt.want
		if want == "" {
			want = string(tt.r)
		}
		want = `"a` + want + `b"`
		got := String(nil, s)
		if string(got) != want {
			t.Errorf("String(%U) = %s, want %s", tt.r, got, want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != s {
			t.Errorf("String(%U) = %s decodes to %+q, %v", tt.r, got, back, err)
		}
		if got := Key(nil, s); string(got) != want+":" {
			t.Errorf("Key(%U) = %s, want %s:", tt.r, got, want)
		}
	}
}

// escapedSpec reports whether String escapes r, as its documentation says
// (spec.Escaped: from Go's Unicode tables, not String's list).
var escapedSpec = spec.Escaped

// String escapes exactly the characters its documentation lists: every
// character is checked against Go's Unicode tables. A new Unicode version
// in Go that adds a default-ignorable format character fails this test, on
// purpose: decide whether String should escape it (and say so in FORMAT.md).
func TestStringEscapesExactlyCcAndInvisibleCf(t *testing.T) {
	if unicode.Version != "15.0.0" {
		t.Logf("unicode.Version %s: String's list was checked against 15.0.0", unicode.Version)
	}
	var buf []byte
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if utf16.IsSurrogate(r) || strings.ContainsRune("\"\\\n\r\t", r) {
			continue
		}
		buf = String(buf[:0], string(r))
		raw := string(buf) == `"`+string(r)+`"`
		if raw == escapedSpec(r) {
			t.Errorf("String(%U) = %s: escaped %v, want %v", r, buf, !raw, escapedSpec(r))
		}
	}
}

// Each byte that is not part of valid UTF-8 is written as \ufffd, as slog
// does, also next to the characters String escapes.
func TestStringInvalidUTF8(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"\xff", `"\ufffd"`},
		{"a\xc2b", `"a\ufffdb"`},
		{"\xc2\x85", `"\u0085"`},           // NEL, valid
		{"\xc2\xc2\x85", `"\ufffd\u0085"`}, // a lone lead byte, then NEL
		{"\xe2\x80", `"\ufffd\ufffd"`},     // U+202E cut short
		{"\xe2\x80\xae\xe2\x80", `"\u202e\ufffd\ufffd"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // a surrogate
		{"\xf3\xa0\x80\x81", `"\udb40\udc01"`},   // U+E0001
		{"\xf3\xa0\x80", `"\ufffd\ufffd\ufffd"`},
	} {
		if got := String(nil, tt.in); string(got) != tt.want {
			t.Errorf("String(%+q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// escapeSpelled rewrites the spelling of a JSON string as encoding/json
// (or log/slog) writes it into the spelling String documents: each raw
// character that String escapes and they do not (escapedSpec) as \uXXXX, or
// a surrogate pair. It is independent of String's code on purpose.
func escapeSpelled(js []byte) []byte {
	var out []byte
	for i := 0; i < len(js); {
		r, n := utf8.DecodeRune(js[i:])
		if r == utf8.RuneError && n == 1 || !escapedSpec(r) {
			out = append(out, js[i:i+n]...)
		} else if r1, r2 := utf16.EncodeRune(r); r1 != unicode.ReplacementChar {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += n
	}
	return out
}

// encodingJSON returns s as encoding/json writes it without HTML escaping
// (as a value the handler marshals with it).
func encodingJSON(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// slogJSON returns s as log/slog's JSON handler writes a message. (Its
// escaping is a copy of encoding/json's of Go 1.21: since then
// encoding/json writes \b and \f, slog \u0008 and \u000c, as String.)
func slogJSON(s string) []byte {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key != slog.MessageKey {
			return slog.Attr{}
		}
		return a
	}})
	if err := h.Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelInfo, s, 0)); err != nil {
		panic(err)
	}
	b, ok := bytes.CutPrefix(buf.Bytes(), []byte(`{"msg":`))
	if b, ok2 := bytes.CutSuffix(b, []byte("}\n")); ok && ok2 {
		return b
	}
	panic(fmt.Sprintf("slog wrote %s", buf.Bytes()))
}

// FuzzString: String writes, byte for byte, what log/slog's JSON handler
// writes, with exactly the documented extra escapes; JSON adds exactly
// those escapes to encoding/json's spelling; and the result decodes to s.
func FuzzString(f *testing.F) {
	for _, tt := range escapeBoundaries {
		f.Add("x" + string(tt.r) + "\xff")
	}
	f.Add("evil\u202etxt.exe\u009b31m\u0085\x7f")
	f.Add("<&>\"\\\n\b\f\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		got := String(nil, s)
		if want := escapeSpelled(slogJSON(s)); !bytes.Equal(got, want) {
			t.Fatalf("String(%+q) = %s, want %s", s, got, want)
		}
		ej := encodingJSON(s)
		if j, want := JSON(nil, ej), escapeSpelled(ej); !bytes.Equal(j, want) {
			t.Fatalf("JSON(%s) = %s, want %s", ej, j, want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil || utf8.ValidString(s) && back != s {
			t.Fatalf("String(%+q) = %s decodes to %+q, %v", s, got, back, err)
		}
	})
}

// JSON escapes the characters of valid JSON text that String escapes and
// encoding/json does not, wherever they are (member names, nested values),
// leaves invalid UTF-8 (a json.RawMessage's) as it is, and keeps the value.
func TestJSON(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{}`, `{}`},
		{`{"a":[1,"x",{"b":null}]}`, `{"a":[1,"x",{"b":null}]}`},
		{"{\"k\u202e\":\"v\u0085\x7f\",\"n\":[\"\u2066\ufeff\U000e0041\"]}", `{"k\u202e":"v\u0085\u007f","n":["\u2066\ufeff\udb40\udc41"]}`},
		{"\"\xff\u202e\xc2\"", `"` + "\xff" + `\u202e` + "\xc2" + `"`},
		{`"already \u202e escaped \\u202e"`, `"already \u202e escaped \\u202e"`},
		{"\"é ☃ \u00a0\u2065 \U0001f600\"", "\"é ☃ \u00a0\u2065 \U0001f600\""},
	} {
		got := JSON([]byte("pre:"), []byte(tt.in))
		if string(got) != "pre:"+tt.want {
			t.Errorf("JSON(%+q) = %+q, want %+q", tt.in, got, "pre:"+tt.want)
			continue
		}
		if !utf8.ValidString(tt.in) {
			continue
		}
		var in, out any
		if err := json.Unmarshal([]byte(tt.in), &in); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(got[len("pre:"):], &out); err != nil {
			t.Fatalf("JSON(%+q) = %s: %v", tt.in, got, err)
		}
		if fmt.Sprintf("%#v", in) != fmt.Sprintf("%#v", out) {
			t.Errorf("JSON(%+q) decodes to %#v, want %#v", tt.in, out, in)
		}
	}
	// At every offset from the eight-byte steps' boundaries.
	for _, tt := range []struct{ c, want string }{
		{"\x7f", `\u007f`}, {"\u0085", `\u0085`}, {"\U000e0041", `\udb40\udc41`},
		{"\x7e", "\x7e"}, {"\u00a0", "\u00a0"}, {"\xff", "\xff"},
	} {
		for n := range 20 {
			for m := range 10 {
				pad := strings.Repeat("a", n)
				in := `"` + pad + tt.c + strings.Repeat("b", m) + tt.c + `"`
				want := `"` + pad + tt.want + strings.Repeat("b", m) + tt.want + `"`
				if got := string(JSON(nil, []byte(in))); got != want {
					t.Errorf("JSON(%+q) = %+q, want %+q", in, got, want)
				}
			}
		}
	}
}

func BenchmarkTime(b *testing.B) {
	t := time.Now()
	var buf []byte
	for b.Loop() {
		buf = Time(buf[:0], t)
	}
}

// The strings of a typical audit record: ASCII (keys, event names, a URL
// path, a user agent), and text with non-ASCII letters.
var benchStrings = map[string][]string{
	"ASCII": {"credential accessed", "resource", "obsidian_api_key", "client.address", "127.0.0.1",
		"/credentials/obsidian_api_key/rotate?reason=scheduled", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
	"NonASCII": {"Zugriff auf Schlüssel verweigert", "Grüße aus Köln", "доступ запрещён", "資格情報にアクセスしました", "naïve café ☃ — “quoted”"},
}

func BenchmarkString(b *testing.B) {
	for _, name := range []string{"ASCII", "NonASCII"} {
		ss := benchStrings[name]
		n := 0
		for _, s := range ss {
			n += len(s)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			buf := make([]byte, 0, 4096)
			for b.Loop() {
				buf = buf[:0]
				for _, s := range ss {
					buf = String(buf, s)
				}
			}
		})
	}
}

// BenchmarkJSON: what encoding/json wrote for a struct, ASCII.
func BenchmarkJSON(b *testing.B) {
	js := []byte(`{"Method":"GET","Path":"/credentials/obsidian_api_key","UserAgent":"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0","Status":200}`)
	b.SetBytes(int64(len(js)))
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	for b.Loop() {
		buf = JSON(buf[:0], js)
	}
}
