// Copyright 2022 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file (the escaping table and
// appendEscaped are copied from log/slog/json_handler.go).

// Package jsonenc appends JSON fragments to byte slices without reflection.
// It escapes strings as log/slog's JSON handler does and, unlike slog, also
// the control and invisible format characters that a terminal or viewer
// acts on or does not show (see String), so that an audit line decodes to
// what slog's output for the same record decodes to, while its bytes never
// carry those characters raw.
package jsonenc

import (
	"encoding/binary"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// String appends s as a quoted JSON string.
//
// It escapes what log/slog's JSON handler escapes, as slog does: `\"`,
// `\\`, `\n`, `\r`, `\t`, `\u00XX` for the other characters below
// U+0020, `\u2028` and `\u2029`, and `\ufffd` for each byte that is not
// part of valid UTF-8. Unlike slog, it also writes as `\uXXXX` escapes
// (lower-case hex, a surrogate pair above U+FFFF) the characters that text
// from outside (a URL path, a user agent, a credential name) must not carry
// raw into the audit file and from there, byte for byte, into every reader's
// output (the query API, auditctl --json, a terminal, a SIEM's viewer):
//
//   - DEL (U+007F) and the C1 controls (U+0080–U+009F): with the C0 controls
//     every control character (category Cc), which a terminal may act on
//     (U+009B is CSI, U+0085 NEL);
//   - the format characters (category Cf) that are default-ignorable, that
//     is, that a renderer does not show: U+00AD, U+061C, U+180E,
//     U+200B–U+200F, U+202A–U+202E, U+2060–U+2064, U+2066–U+206F, U+FEFF,
//     U+1BCA0–U+1BCA3, U+1D173–U+1D17A, U+E0001, U+E0020–U+E007F. Among them
//     are all the bidirectional controls (U+061C, U+200E, U+200F,
//     U+202A–U+202E, U+2066–U+2069), which reorder the text around them
//     (a name that reads as another), and the zero-width, soft hyphen, BOM
//     and tag characters, which make different strings look the same or
//     hide text.
//
// The format characters a renderer does show (U+0600–U+0605, U+06DD,
// U+070F, U+0890, U+0891, U+08E2, U+110BD, U+110CD, U+FFF9–U+FFFB,
// U+13430–U+1343F) stay raw, and so do white space (a no-break space is
// visible as a space), variation selectors and other combining marks (part
// of emoji and of many scripts) and letters that look alike: telling those
// apart is a display's job, not an encoding's. The escapes are valid JSON
// and decode to the same string.
func String(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// Key appends s as a quoted JSON string followed by a colon.
func Key(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"', ':')
}

// TimeLayout is RFC 3339 with exactly nine fractional digits, so every
// timestamp has the same width and sorts as text.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Time appends t in UTC as a quoted TimeLayout string.
func Time(b []byte, t time.Time) []byte {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, TimeLayout)
		return append(b, '"')
	}
	// Formatting the date and time of day is most of the cost, and
	// consecutive records mostly share their second: cache it.
	sec := t.Unix()
	c := lastSecond.Load()
	if c == nil || c.unix != sec {
		c = &second{unix: sec}
		t.AppendFormat(c.text[:0], "2006-01-02T15:04:05.")
		lastSecond.Store(c)
	}
	b = append(b, '"')
	b = append(b, c.text[:]...)
	ns := t.Nanosecond()
	var frac [9]byte
	for i := 8; i >= 0; i-- {
		frac[i] = byte('0' + ns%10)
		ns /= 10
	}
	b = append(b, frac[:]...)
	return append(b, 'Z', '"')
}

// second is the text of one second, "2006-01-02T15:04:05.".
type second struct {
	unix int64
	text [20]byte
}

var lastSecond atomic.Pointer[second]

// Uint appends n in decimal.
func Uint(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }

// JSON appends js, JSON text as encoding/json writes it (a value it
// marshaled; the output of a json.Marshaler, which it checks is valid), with
// the characters String escapes and encoding/json does not (see String)
// written as String writes them. In valid JSON text a character that is not
// ASCII, or DEL, can only be inside a string, raw, not within an escape
// sequence: escaping it there keeps the text valid and its value the same.
// Bytes that are not part of valid UTF-8 are left as they are, as
// encoding/json leaves them in a json.Marshaler's output.
func JSON(b, js []byte) []byte {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	start := 0
	for i := 0; i < len(js); {
		// Eight bytes at a time while none is DEL or above: adding 1
		// to each byte of w (which carries into the next byte only from
		// 0xff, whose top bit is set already) sets the top bit of a
		// byte of 0x7f.
		if i+8 <= len(js) {
			if w := binary.LittleEndian.Uint64(js[i:]); (w|(w+lsb))&msb == 0 {
				i += 8
				continue
			}
		}
		c := js[i]
		if c < '\u007f' {
			i++
			continue
		}
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(js[i:])
			if !escapeLead[c] || r == utf8.RuneError && size == 1 || !escapedRune(r) {
				i += size
				continue
			}
		}
		b = append(b, js[start:i]...)
		b = appendRuneEscape(b, r)
		i += size
		start = i
	}
	return append(b, js[start:]...)
}

// escapeLead is true for the first bytes of the UTF-8 encodings of the
// characters of escapedRune: U+0080–U+00BF, U+0600–U+063F, U+1000–U+1FFF,
// U+2000–U+2FFF, U+F000–U+FFFF, U+10000–U+3FFFF, U+C0000–U+FFFFF.
var escapeLead = [256]bool{0xc2: true, 0xd8: true, 0xe1: true, 0xe2: true, 0xef: true, 0xf0: true, 0xf3: true}

// escapedRune reports whether String writes c, a character of U+0080 or
// above, as a \u escape (see String).
func escapedRune(c rune) bool {
	switch {
	case c < 0x2000:
		return c <= 0x9f || c == 0xad || c == 0x61c || c == 0x180e
	case c <= 0x206f:
		return 0x200b <= c && c <= 0x200f || 0x2028 <= c && c <= 0x202e || 0x2060 <= c && c != 0x2065
	case c < 0xfeff:
		return false
	case c == 0xfeff:
		return true
	case c < 0x1bca0:
		return false
	}
	return c <= 0x1bca3 || 0x1d173 <= c && c <= 0x1d17a || c == 0xe0001 || 0xe0020 <= c && c <= 0xe007f
}

// appendRuneEscape appends c as \uXXXX, or as the \uXXXX\uXXXX of its
// surrogate pair above U+FFFF.
func appendRuneEscape(b []byte, c rune) []byte {
	if c > 0xffff {
		r1, r2 := utf16.EncodeRune(c)
		b = appendRuneEscape(b, r1)
		return appendRuneEscape(b, r2)
	}
	return append(b, '\\', 'u', hex[c>>12&0xf], hex[c>>8&0xf], hex[c>>4&0xf], hex[c&0xf])
}

// appendEscaped escapes s for JSON (see String) and appends it to buf.
// It does not surround the string in quotation marks.
//
// Modified from encoding/json/encode.go:encodeState.string,
// with escapeHTML set to false, and DEL and the characters of escapedRune
// escaped too.
func appendEscaped(buf []byte, s string) []byte {
	char := func(b byte) { buf = append(buf, b) }
	str := func(s string) { buf = append(buf, s...) }

	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if safeSet[b] {
				i++
				continue
			}
			if start < i {
				str(s[start:i])
			}
			char('\\')
			switch b {
			case '\\', '"':
				char(b)
			case '\n':
				char('n')
			case '\r':
				char('r')
			case '\t':
				char('t')
			default:
				// This encodes bytes < 0x20 except for \t, \n and \r,
				// and DEL (0x7f).
				str(`u00`)
				char(hex[b>>4])
				char(hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			if start < i {
				str(s[start:i])
			}
			str(`\ufffd`)
			i += size
			start = i
			continue
		}
		// U+2028 is LINE SEPARATOR.
		// U+2029 is PARAGRAPH SEPARATOR.
		// They are both technically valid characters in JSON strings,
		// but don't work in JSONP, which has to be evaluated as JavaScript,
		// and can lead to security holes there. It is valid JSON to
		// escape them, so we do so unconditionally.
		// See http://timelessrepo.com/json-isnt-a-javascript-subset for discussion.
		// The C1 controls and the invisible format characters are
		// escaped for the terminals and viewers that show the text
		// (see String). Most characters are ruled out by their
		// first byte.
		if escapeLead[s[i]] && escapedRune(c) {
			if start < i {
				str(s[start:i])
			}
			buf = appendRuneEscape(buf, c)
			i += size
			start = i
			continue
		}
		i += size
	}
	if start < len(s) {
		str(s[start:])
	}
	return buf
}

const hex = "0123456789abcdef"

// Copied from encoding/json/tables.go.
//
// safeSet holds the value true if the ASCII character with the given array
// position can be represented inside a JSON string without any further
// escaping.
//
// All values are true except for the ASCII control characters (0-31 and,
// unlike encoding/json's table, 127), the double quote ("), and the
// backslash character ("\").
var safeSet = [utf8.RuneSelf]bool{
	' ':      true,
	'!':      true,
	'"':      false,
	'#':      true,
	'$':      true,
	'%':      true,
	'&':      true,
	'\'':     true,
	'(':      true,
	')':      true,
	'*':      true,
	'+':      true,
	',':      true,
	'-':      true,
	'.':      true,
	'/':      true,
	'0':      true,
	'1':      true,
	'2':      true,
	'3':      true,
	'4':      true,
	'5':      true,
	'6':      true,
	'7':      true,
	'8':      true,
	'9':      true,
	':':      true,
	';':      true,
	'<':      true,
	'=':      true,
	'>':      true,
	'?':      true,
	'@':      true,
	'A':      true,
	'B':      true,
	'C':      true,
	'D':      true,
	'E':      true,
	'F':      true,
	'G':      true,
	'H':      true,
	'I':      true,
	'J':      true,
	'K':      true,
	'L':      true,
	'M':      true,
	'N':      true,
	'O':      true,
	'P':      true,
	'Q':      true,
	'R':      true,
	'S':      true,
	'T':      true,
	'U':      true,
	'V':      true,
	'W':      true,
	'X':      true,
	'Y':      true,
	'Z':      true,
	'[':      true,
	'\\':     false,
	']':      true,
	'^':      true,
	'_':      true,
	'`':      true,
	'a':      true,
	'b':      true,
	'c':      true,
	'd':      true,
	'e':      true,
	'f':      true,
	'g':      true,
	'h':      true,
	'i':      true,
	'j':      true,
	'k':      true,
	'l':      true,
	'm':      true,
	'n':      true,
	'o':      true,
	'p':      true,
	'q':      true,
	'r':      true,
	's':      true,
	't':      true,
	'u':      true,
	'v':      true,
	'w':      true,
	'x':      true,
	'y':      true,
	'z':      true,
	'{':      true,
	'|':      true,
	'}':      true,
	'~':      true,
	'\u007f': false,
}
