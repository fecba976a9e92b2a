// Package spec says which characters an audit line may carry only as \u
// escapes (FORMAT.md §2), computed from Go's Unicode tables instead of
// jsonenc's list: the oracle that the tests of jsonenc and handler check
// the encoders against.
package spec

import "unicode"

// Escaped reports whether r (a character other than those escaped as \n,
// \r, \t, \" or \\) is written escaped: a control character (Cc), U+2028
// or U+2029 (as slog), or a format character (Cf) that is default-ignorable,
// i.e. not one of the exceptions Unicode's DerivedCoreProperties.txt makes
// (Prepended_Concatenation_Mark, U+FFF9–U+FFFB, U+13430–U+13440).
func Escaped(r rune) bool {
	switch {
	case unicode.Is(unicode.Cc, r), r == 0x2028, r == 0x2029:
		return true
	case !unicode.Is(unicode.Cf, r), unicode.Is(unicode.Prepended_Concatenation_Mark, r),
		0xfff9 <= r && r <= 0xfffb, 0x13430 <= r && r <= 0x13440:
		return false
	}
	return true
}
