package redact

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"
)

// Value patterns in free text.
//
// The scanner makes one pass over the text looking up each byte in a table
// of trigger bytes. Only at a trigger does it look around for a secret, with
// hand-written matchers instead of regular expressions, so text without a
// candidate costs a table lookup per byte. The matchers anchor where a
// secret's shape is most distinctive: the J of eyJ, the _ of ghp_, the - of
// xoxb-, the @ of a URL's userinfo, the = or : after a key, the > of a
// start tag or of a hash rocket (=>), the < of <input, the dash of a
// command-line flag, the quote or $ of an SQL password literal, the B of
// IDENTIFIED BY, the = of SET PASSWORD.

// The bytes at which a matcher runs are flagged infoTrigger in info.
var (
	b64url    [256]bool // base64url alphabet (JWT segments)
	token68   [256]bool // RFC 7235 token68, without the '=' padding
	valueStop [256]bool // bytes that end an unquoted value
	keyByte   [256]bool // bytes of a key in key=value text
	flagByte  [256]bool // bytes of a command-line flag's name
	b64std    [256]int8 // standard base64 digit values, -1 if not a digit
)

func init() {
	for _, c := range []byte("bBJA_-@=:%><'$") {
		info[c] |= infoTrigger
	}
	for i := range 256 {
		c := byte(i)
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		b64url[i] = alnum || c == '-' || c == '_'
		token68[i] = alnum || strings.IndexByte("-._~+/", c) >= 0
		// Brackets for form keys (user[password]=), % for the
		// percent-encoded keys browsers send (user%5Bpassword%5D=), + for
		// the space of a query or form key (api+key= is "api key").
		keyByte[i] = alnum || strings.IndexByte("_-.[]%+", c) >= 0
		// Not keyByte's brackets: [-password] is no flag before a value.
		flagByte[i] = alnum || c == '-' || c == '_' || c == '.'
		b64std[i] = -1
	}
	for _, c := range []byte(" \t\r\n\v\f&,;\"'<>`") {
		valueStop[c] = true
	}
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(digits); i++ {
		b64std[digits[i]] = int8(i)
	}
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// textOut accumulates the redacted copy of s; it allocates only at the
// first secret.
type textOut struct {
	r    *Redactor
	s    string
	b    []byte
	last int // s[:last] has been dealt with
	n    int

	prevA, prevOut int  // the span replaced last starts at s[prevA], its replacement at b[prevOut]
	prevFrom       int  // and the text copied before it at s[prevFrom]
	open           bool // widen left its replacement to close

	pemEnd int  // index of the next "-----END " (0: not searched, -1: none)
	qAt    int  // inQuotes has counted the quotes of s[:qAt]
	qIn    bool // and found an odd number on qAt's line
	stop   int  // lastURLStop found the last URL stop before stopTo here (-1: none)
	stopTo int

	across bool // keyValue takes only a header line's value that runs past last
	// lineEnd's last scan for each kind of quote (none, ", \", ', `)
	le [5]lineScan
	// nextSemicolon's last search: from s[semiFrom], the first ; at
	// semiTo (len(s): none; 0: no search yet)
	semiFrom, semiTo int

	starts []startTagAt // the text's start tags, with their end tags (nil: not listed yet)
	start  int          // the index in starts that closing found last

	lt, ltTo int  // lastLT found the last < before ltTo at lt (-1: none)
	tagAt    int  // element's last tag: the index after its < (0: none yet),
	tagGT    int  // its > (tagEnd)
	tagNamed bool // and whether its attributes may say it is a secret's
}

// emit replaces s[a:b] unless it was already dealt with or is already a
// placeholder.
func (t *textOut) emit(a, b int) {
	if a < t.last {
		a = t.last
	}
	if a >= b || isPlaceholder(t.s[a:b]) {
		return
	}
	if t.b == nil {
		t.b = make([]byte, 0, len(t.s)+len(Redacted))
	}
	t.close()
	t.b = append(t.b, t.s[t.last:a]...)
	t.prevFrom, t.prevA, t.prevOut = t.last, a, len(t.b)
	t.b = append(t.b, t.r.replacement(t.s[a:b])...)
	t.last = b
	t.n++
}

// widen replaces s[a:b] that overlaps the span replaced last and starts
// before it or runs past it: that span's replacement becomes one for both
// (from no earlier than where the text before that span, copied as it
// was, starts).
func (t *textOut) widen(a, b int) {
	if t.b == nil {
		return
	}
	a = min(max(a, t.prevFrom), t.prevA)
	b = max(b, t.last)
	t.prevOut -= t.prevA - a
	// The replacement is made once the span is done growing (close): in
	// fingerprint mode each would hash all of it.
	t.b = t.b[:t.prevOut]
	t.prevA, t.last, t.open = a, b, true
}

// close appends the replacement of the span widen left open.
func (t *textOut) close() {
	if t.open {
		t.b = append(t.b, t.r.replacement(t.s[t.prevA:t.last])...)
		t.open = false
	}
}

func (t *textOut) result() string {
	if t.b == nil {
		return t.s
	}
	t.close()
	return string(append(t.b, t.s[t.last:]...))
}

// text returns s with the secrets found by value patterns replaced, and how
// many there were.
func (r *Redactor) text(s string) (string, int) {
	if len(s) < r.minText {
		return s, 0
	}
	e := r.lits.entry(s, litText)
	if r.lits.clean(e) {
		return s, 0
	}
	i := next(s, 0)
	if i == len(s) && len(r.patterns) == 0 {
		r.lits.keep(e)
		return s, 0
	}
	out, n := r.textFrom(s, i)
	if n == 0 {
		r.lits.keep(e)
	}
	return out, n
}

// next returns the index of the first trigger at or after i whose
// neighbours leave a match possible, or len(s). Looking one or two bytes
// around rules out most triggers (a b not starting "be" or "ba", a dash not
// in "xoxb-" or "-----") without calling a matcher.
//
// It takes the text eight bytes a step: one OR of table lookups clears a
// step without triggers, and a step with some makes a bit mask of them and
// visits its bits, so triggers that are ruled out (the b, the dashes and
// underscores of ordinary values) cost no restart of the scan. The last
// step overlaps the one before rather than leave a tail to test byte by
// byte; only text shorter than eight bytes is taken byte by byte.
func next(s string, i int) int {
	for i < len(s) {
		from, base := i, i
		var m uint
		if len(s) >= 8 {
			// The last step overlaps the one before: bits below from
			// were visited already.
			base = min(from, len(s)-8)
			b := s[base : base+8]
			i = base + 8
			if (info[b[0]]|info[b[1]]|info[b[2]]|info[b[3]]|info[b[4]]|info[b[5]]|info[b[6]]|info[b[7]])&infoTrigger == 0 {
				continue
			}
			m = uint(info[b[0]]&infoTrigger) | uint(info[b[1]]&infoTrigger)<<1 |
				uint(info[b[2]]&infoTrigger)<<2 | uint(info[b[3]]&infoTrigger)<<3 |
				uint(info[b[4]]&infoTrigger)<<4 | uint(info[b[5]]&infoTrigger)<<5 |
				uint(info[b[6]]&infoTrigger)<<6 | uint(info[b[7]]&infoTrigger)<<7
			m = m >> (from - base) << (from - base)
		} else {
			for j := i; j < len(s); j++ {
				m |= uint(info[s[j]]&infoTrigger) << (j - base)
			}
			i = len(s)
		}
		for ; m != 0; m &= m - 1 {
			// candidate(s, j), written out: this is the check of most
			// triggers in clean text.
			j := base + bits.TrailingZeros(m)
			switch s[j] {
			case 'b', 'B':
				if j+5 < len(s) && (lower[s[j+1]] == 'e' || lower[s[j+1]] == 'a') || j+3 < len(s) && lower[s[j+1]] == 'y' && sqlByAt(s, j) {
					return j
				}
			case 'J':
				if j > 1 && s[j-1] == 'y' {
					return j
				}
			case 'A':
				if j+1 < len(s) && (s[j+1] == 'K' || s[j+1] == 'S') {
					return j
				}
			case '_':
				if j > 2 && (s[j-3] == 'g' || s[j-1] == 't') {
					return j
				}
			case '-':
				if j+1 < len(s) && (s[j+1] == '-' || isLetter(s[j+1]) && (j == 0 || flagBefore(s[j-1]))) || j > 3 && s[j-4] == 'x' {
					return j
				}
			case '@':
				return j
			case '%':
				if j > 0 && keyByte[s[j-1]] && encodedEquals(s, j) {
					return j
				}
			case '>':
				if j > 1 {
					return j
				}
			case '<':
				if j+6 < len(s) && lower[s[j+1]] == 'i' && lower[s[j+2]] == 'n' {
					return j
				}
			case '\'', '$':
				if j > 1 && (isSpace(s[j-1]) || s[j-2] == '\\' || s[j] == '\'' && (s[j-1] == '(' || s[j-1]|0x20 == 'e')) && sqlQuoteAt(s, j) {
					return j
				}
			default: // '=', ':'
				if j > 0 {
					if c := s[j-1]; keyByte[c] || c == '"' || c == '\'' || c == ' ' || c == '\t' || c == '`' {
						return j
					}
				}
			}
		}
	}
	return len(s)
}

// candidate reports whether the neighbours of trigger s[i] leave a match
// possible. (next has a copy of it; TestNext and FuzzNext, whose reference
// scan calls candidate, keep them equal.)
func candidate(s string, i int) bool {
	switch s[i] {
	case 'b', 'B': // bearer, basic; BY after IDENTIFIED
		return i+5 < len(s) && (lower[s[i+1]] == 'e' || lower[s[i+1]] == 'a') || sqlByAt(s, i)
	case 'J':
		return i > 1 && s[i-1] == 'y'
	case 'A':
		return i+1 < len(s) && (s[i+1] == 'K' || s[i+1] == 'S')
	case '_':
		return i > 2 && (s[i-3] == 'g' || s[i-1] == 't')
	case '-': // --flag, -flag after a space, xoxb-
		return i+1 < len(s) && (s[i+1] == '-' || isLetter(s[i+1]) && (i == 0 || flagBefore(s[i-1]))) || i > 3 && s[i-4] == 'x'
	case '@':
		return true // the byte before is part of a password: anything
	case '%': // %3D (or %253D), an encoded =, after a key
		return i > 0 && keyByte[s[i-1]] && encodedEquals(s, i)
	case '>': // the end of a start tag, or of an empty element's
		return i > 1
	case '<': // <input
		return i+6 < len(s) && lower[s[i+1]] == 'i' && lower[s[i+2]] == 'n'
	case '\'', '$': // PASSWORD 'x', BY 'x', PASSWORD('x'), PASSWORD E'x', PASSWORD $$x$$
		return sqlQuoteAt(s, i)
	default: // '=', ':' after a key (and maybe a quote or spaces)
		if i > 0 {
			c := s[i-1]
			return keyByte[c] || c == '"' || c == '\'' || c == ' ' || c == '\t' || c == '`'
		}
	}
	return false
}

// sqlQuoteAt is candidate for the ' or $ at s[i]: after a space or a line
// break that follows a D or a Y (PASSWORD, BY) or more of them, or after
// an escaped line break or tab (sqlSpace), or a ( and a space; a ' also
// after E and a space (E'x'), or after D( or a space and ( (PASSWORD('x'),
// PASSWORD ('x')).
func sqlQuoteAt(s string, i int) bool {
	if i < 2 {
		return false
	}
	c, d := s[i-1], s[i-2]
	return isSpace(c) && (lower[d] == 'd' || lower[d] == 'y' || isSpace(d) || d == '(' || sqlSpaceBefore(s, i-1) == 2) ||
		d == '\\' && (c == 'n' || c == 'r' || c == 't') || // an escaped line break or tab
		s[i] == '\'' && ((c == 'E' || c == 'e') && isSpace(d) || c == '(' && (lower[d] == 'd' || isSpace(d)))
}

// sqlByAt is candidate for the B of BY at s[i], spaces on both sides, after
// a D (IDENTIFIED BY), a quote (WITH 'plugin' BY) or more spaces, and not
// before a single quote, which is sqlPassword's trigger (sorted by 'x' is
// visited once).
func sqlByAt(s string, i int) bool {
	if i < 2 || i+3 >= len(s) || lower[s[i+1]] != 'y' {
		return false
	}
	if sqlSpaceBefore(s, i) == 2 || s[i+2] == '\\' {
		return true // an escaped line break or tab: JSON-encoded SQL
	}
	return isSpace(s[i+2]) && isSpace(s[i-1]) &&
		(lower[s[i-2]] == 'd' || isSpace(s[i-2]) || s[i-2] == '\'' || s[i-2] == '"' || s[i-2] == '`') && s[i+3] != '\''
}

func (r *Redactor) textFrom(s string, i int) (string, int) {
	t := textOut{r: r, s: s}
	// From trigger to trigger as next finds them: no matcher matches at a
	// trigger that candidate rules out (hasSecretFrom relies on it too),
	// and next passes over text without one eight bytes a step.
	for ; i < len(s); i = next(s, i+1) {
		var a, b int
		if i < t.last {
			a, b = t.detectInSpan(i)
		} else {
			a, b = t.detect(i)
		}
		if a < b {
			t.emit(a, b)
		}
	}
	out, n := t.result(), t.n
	if len(r.patterns) > 0 {
		var k int
		out, k = r.userPatterns(out)
		n += k
	}
	return out, n
}

// hasSecret reports whether text would change s. It does not allocate.
func (r *Redactor) hasSecret(s string) bool {
	if len(s) < r.minText {
		return false
	}
	e := r.lits.entry(s, litText)
	if r.lits.clean(e) {
		return false
	}
	i := next(s, 0)
	if i == len(s) && len(r.patterns) == 0 || !r.hasSecretFrom(s, i) {
		r.lits.keep(e)
		return false
	}
	return true
}

func (r *Redactor) hasSecretFrom(s string, i int) bool {
	t := textOut{r: r, s: s}
	for ; i < len(s); i = next(s, i+1) {
		if a, b := t.detect(i); a < b && !isPlaceholder(s[a:b]) {
			return true
		}
	}
	for _, p := range r.patterns {
		if !strings.Contains(s, p.literal) {
			continue
		}
		for _, m := range p.re.FindAllStringSubmatchIndex(s, -1) {
			if lo, hi := m[2*p.group], m[2*p.group+1]; lo < hi && !isPlaceholder(s[lo:hi]) {
				return true
			}
		}
	}
	return false
}

// detectInSpan runs at trigger i inside a secret already replaced the
// matchers of self-delimiting tokens: one may start inside the replaced
// span and run past its end ("Bearer -----BEGIN ... PRIVATE KEY-----" ends
// the bearer token at the first space). Contextual matchers are skipped
// there, which keeps the scan linear, but for a key in the span whose
// value starts past it (token:" {:pw => "x"}: the quoted value ends at the
// quote that opens x), or is a header line's that runs past it (token:"
// pw: Digest username="u", response="x": it ends at the first quote of
// the credentials); the span's replacement then covers it. Values that
// start in the span are not looked at but for header lines, and lineEnd
// keeps what it found, so that many keys in one span do not scan a line
// each.
func (t *textOut) detectInSpan(i int) (int, int) {
	s := t.s
	if a, b := t.detectToken(i); a < b {
		return a, b
	}
	if s[i] == '@' && i >= t.prevA {
		// A URL's password that holds a secret key=value (pw%3Dx@host):
		// what it held before the key=value is replaced too.
		if a, b := t.userinfo(i); a < b && (a < t.prevA || b > t.last) {
			t.widen(a, b)
		}
		return 0, 0
	}
	if i < t.prevA {
		return 0, 0 // not in the replaced text (between <input and its value)
	}
	// An SQL password whose quote closes the quoted value replaced last
	// (token:" IDENTIFIED BY "x"), a flag's value on the line after a
	// header line's (token: app --pw \⏎ x); one that starts in the span is
	// not looked at.
	switch s[i] {
	case 'b', 'B':
		return t.sqlBy(i, t.last)
	case '-':
		return t.flag(i, t.last)
	case '=':
		if !setPasswordAt(s, i) {
			break
		}
		if a, b := t.setPassword(i, t.last); a < b {
			return a, b
		}
	}
	if s[i] != ':' && s[i] != '=' && (s[i] != '>' || i == 0 || s[i-1] != '=') {
		return 0, 0
	}
	t.across = true
	var a, b int
	if s[i] == '>' {
		a, b = t.keyValueAt(i-1, i+1)
	} else {
		a, b = t.keyValue(i)
	}
	t.across = false
	if a < t.last && b > t.last {
		t.widen(t.prevA, b)
		return 0, 0
	}
	return a, b
}

// detectToken runs the matchers of self-delimiting secrets at trigger i.
// An input tag is one: a quoted value before it (token:" <input
// value="x" ...) may end at a quote inside it.
func (t *textOut) detectToken(i int) (int, int) {
	switch t.s[i] {
	case '<':
		return t.input(i)
	case 'J':
		return t.jwt(i)
	case 'A':
		return t.aws(i)
	case '_':
		return t.github(i)
	case '-':
		if strings.HasPrefix(t.s[i:], "-----BEGIN ") {
			return t.pem(i)
		}
		return t.slack(i)
	}
	return 0, 0
}

// detect runs every matcher at trigger i: the self-delimiting secrets and
// those that need their context (a scheme, URL userinfo, a key).
func (t *textOut) detect(i int) (int, int) {
	switch t.s[i] {
	case 'b', 'B':
		if lower[t.s[i+1]] == 'y' {
			return t.sqlBy(i, 0)
		}
		return t.authScheme(i)
	case '@':
		return t.userinfo(i)
	case '=', ':':
		if t.s[i] == '=' && setPasswordAt(t.s, i) {
			if a, b := t.setPassword(i, 0); a < b {
				return a, b
			}
		}
		return t.keyValue(i)
	case '%':
		return t.encodedKeyValue(i)
	case '>':
		if i > 0 && t.s[i-1] == '=' {
			if a, b := t.keyValueAt(i-1, i+1); a < b {
				return a, b
			}
		}
		return t.element(i)
	case '\'', '$':
		return t.sqlPassword(i)
	case '-':
		if a, b := t.flag(i, 0); a < b {
			return a, b
		}
	}
	return t.detectToken(i)
}

// authScheme matches the credentials after "Bearer " or "Basic " (the B,
// either case, is the trigger: a space would be one in every message).
// Prose like "bearer authentication" is left alone: a bearer token must be
// long or contain digits or punctuation, and basic credentials must decode
// to user:password.
func (t *textOut) authScheme(i int) (int, int) {
	s := t.s
	var scheme string
	switch {
	case i+len("bearer ") <= len(s) && equalFold(s[i:i+len("bearer")], "bearer"):
		scheme = "bearer"
	case i+len("basic ") <= len(s) && equalFold(s[i:i+len("basic")], "basic"):
		scheme = "basic"
	default:
		return 0, 0
	}
	if i > 0 && isAlnum(s[i-1]) {
		return 0, 0
	}
	i += len(scheme)
	if s[i] != ' ' && s[i] != '\t' {
		return 0, 0
	}
	a := skipBlanks(s, i)
	b := a
	for b < len(s) && token68[s[b]] {
		b++
	}
	for b < len(s) && s[b] == '=' {
		b++
	}
	if b > a && s[b-1] == '=' && b < len(s) {
		// Maybe not token68 and its padding but a key=value after the
		// word (bearer api_key=…): if the key is a secret one, left to the
		// key=value rule, which keeps the key. Taken as the token here,
		// the key and the = would be replaced and the value left, as the
		// scan does not look for keys inside a replaced span.
		if c, d := t.keyValue(a + strings.IndexByte(s[a:b], '=')); c < d {
			return 0, 0
		}
	}
	tok := s[a:b]
	if scheme == "bearer" {
		if len(tok) >= 20 || len(tok) >= 8 && !onlyLetters(tok) {
			return a, b
		}
		return 0, 0
	}
	if len(tok) >= 8 && basicCredentials(tok) {
		return a, b
	}
	return 0, 0
}

func onlyLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// basicCredentials reports whether tok is standard base64 of text that
// contains a colon, as user:password does.
func basicCredentials(tok string) bool {
	var acc uint
	var bits uint
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c == '=' {
			break
		}
		d := b64std[c]
		if d < 0 {
			return false
		}
		acc = acc<<6 | uint(d)
		bits += 6
		if bits >= 8 {
			bits -= 8
			if byte(acc>>bits) == ':' {
				return true
			}
			acc &= 1<<bits - 1
		}
	}
	return false
}

// jwt matches header.payload[.signature...] where the header is base64url
// JSON, so starts with "eyJ" (the J is the trigger).
func (t *textOut) jwt(i int) (int, int) {
	s := t.s
	a := i - 2
	// Not inside a longer token, including after a dot of one: besides
	// avoiding false hits, this keeps scans of repeated text linear.
	if a < 0 || s[a] != 'e' || s[a+1] != 'y' || a > 0 && (b64url[s[a-1]] || s[a-1] == '.') {
		return 0, 0
	}
	b := i + 1
	for b < len(s) && b64url[s[b]] {
		b++
	}
	if b-a < 10 {
		return 0, 0
	}
	segs := 0
	for b+1 < len(s) && s[b] == '.' && b64url[s[b+1]] {
		b++
		for b < len(s) && b64url[s[b]] {
			b++
		}
		segs++
	}
	if segs == 0 {
		return 0, 0
	}
	return a, b
}

// aws matches AWS access key ids: AKIA (long-term) or ASIA (temporary)
// and 16 upper-case letters or digits.
func (t *textOut) aws(i int) (int, int) {
	s := t.s
	const n = 20
	if i+n > len(s) || s[i+1] != 'K' && s[i+1] != 'S' || s[i+2] != 'I' || s[i+3] != 'A' {
		return 0, 0
	}
	if i > 0 && isAlnum(s[i-1]) || i+n < len(s) && isAlnum(s[i+n]) {
		return 0, 0
	}
	for j := i + 4; j < i+n; j++ {
		if c := s[j]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return 0, 0
		}
	}
	return i, i + n
}

// github matches ghp_, gho_, ghs_, ghu_, ghr_ and github_pat_ tokens (the
// last underscore of the prefix is the trigger).
func (t *textOut) github(i int) (int, int) {
	s := t.s
	if i >= 3 && s[i-3] == 'g' && s[i-2] == 'h' && strings.IndexByte("pousr", s[i-1]) >= 0 &&
		(i == 3 || !isAlnum(s[i-4])) {
		b := i + 1
		for b < len(s) && isAlnum(s[b]) {
			b++
		}
		if b-i-1 >= 20 {
			return i - 3, b
		}
		return 0, 0
	}
	const pat = "github_pat"
	if i >= len(pat) && s[i-len(pat):i] == pat && (i == len(pat) || !isAlnum(s[i-len(pat)-1]) && s[i-len(pat)-1] != '_') {
		b := i + 1
		for b < len(s) && (isAlnum(s[b]) || s[b] == '_') {
			b++
		}
		if b-i-1 >= 20 {
			return i - len(pat), b
		}
	}
	return 0, 0
}

// slack matches xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxe-, xoxo- and xapp-
// tokens (the first dash is the trigger).
func (t *textOut) slack(i int) (int, int) {
	s := t.s
	a := i - 4
	if a < 0 || a > 0 && (isAlnum(s[a-1]) || s[a-1] == '-') {
		return 0, 0
	}
	if !(s[a:a+3] == "xox" && strings.IndexByte("abposre", s[a+3]) >= 0 || s[a:i] == "xapp") {
		return 0, 0
	}
	b := i + 1
	for b < len(s) && (isAlnum(s[b]) || s[b] == '-') {
		b++
	}
	if b-i-1 < 10 {
		return 0, 0
	}
	return a, b
}

// pem matches the body of a PEM block whose label names a private key,
// keeping the BEGIN and END lines. A block without END is redacted to the
// end of the text.
func (t *textOut) pem(i int) (int, int) {
	s := t.s
	l := i + len("-----BEGIN ")
	e := l
	for e < len(s) && ('A' <= s[e] && s[e] <= 'Z' || '0' <= s[e] && s[e] <= '9' || s[e] == ' ') {
		e++
	}
	if !strings.HasPrefix(s[e:], "-----") || !strings.Contains(s[l:e], "PRIVATE KEY") {
		return 0, 0
	}
	a := e + len("-----")
	// The first END after a; remembered, so that many BEGIN lines before
	// one END do not make the scan quadratic.
	if t.pemEnd == 0 || t.pemEnd > 0 && t.pemEnd < a {
		t.pemEnd = -1
		if j := strings.Index(s[a:], "-----END "); j >= 0 {
			t.pemEnd = a + j
		}
	}
	b := len(s)
	if t.pemEnd > 0 {
		b = t.pemEnd
	}
	for a < b && isSpace(s[a]) {
		a++
	}
	for b > a && isSpace(s[b-1]) {
		b--
	}
	return a, b
}

// userinfo matches the password of scheme://user:password@host (the @ is
// the trigger), keeping the user name; also of a Go MySQL driver DSN,
// which has no // (user:password@tcp(host:3306)/db,
// user:password@unix(/tmp/mysql.sock)/db, user:password@/db).
func (t *textOut) userinfo(i int) (int, int) {
	s := t.s
	start := max(0, i-maxAuthority, t.lastURLStop(i, maxAuthority)+1)
	at := i
	if start >= 2 && s[start-1] == '/' && s[start-2] == '/' {
		end := i + 1
		for end < len(s) && end-i < maxAuthority && !urlStop(s[end]) && s[end] != '?' && s[end] != '#' {
			end++
		}
		// The host follows the last @: passwords may hold unescaped ones.
		at += strings.LastIndexByte(s[i:end], '@')
	} else if !dsnAddress(s, i+1) {
		// A DSN's password may hold an @ too: the @ that the address
		// follows is the one taken.
		return 0, 0
	} else if start > 0 && s[start-1] == '/' {
		// And a / (base64), which would end a URL: a DSN's user name
		// starts after a space or a quote.
		for start > 0 && i-start < maxAuthority && !isSpace(s[start-1]) && strings.IndexByte("\"'`<>", s[start-1]) < 0 {
			start--
		}
	}
	c := strings.IndexByte(s[start:at], ':')
	if c < 0 {
		return 0, 0
	}
	a := start + c + 1
	if a > i {
		// The user name holds an @ that the scan already passed; keep
		// nothing of this odd userinfo rather than skip scanning part of it.
		a = start
	}
	return a, at
}

// dsnAddress reports whether s[k:] starts as the address of a Go MySQL
// driver DSN after its @: a protocol and its ( (tcp(, unix(, tcp6(), or
// the / of user:password@/db. Another protocol (a dialer the program
// registered: cloudsql(project:region:db)) needs an address that looks
// like one, with a colon, a slash or a dot, or a / after it: mail
// bob:x@home(office) is prose.
func dsnAddress(s string, k int) bool {
	if k < len(s) && s[k] == '/' {
		return true
	}
	j := k
	// A protocol is a driver's name for a dialer: tcp, unix, or one a
	// library registers (cloudsql-postgres, as Google's connector does).
	for j < len(s) && j-k < 24 && (isLetter(s[j]) || j > k && ('0' <= s[j] && s[j] <= '9' || s[j] == '-' || s[j] == '_')) {
		j++
	}
	if j == k || j == len(s) || s[j] != '(' {
		return false
	}
	switch strings.ToLower(s[k:j]) {
	case "tcp", "tcp4", "tcp6", "unix", "udp", "udp4", "udp6":
		return true
	}
	// An address holds no @ or (: the look ends at the next one, so text
	// full of @x( is looked at once.
	for a := j + 1; a < len(s) && a-j <= maxAuthority; a++ {
		switch c := s[a]; c {
		case ':', '/', '.':
			return true
		case ')':
			return a+1 < len(s) && s[a+1] == '/'
		case '@', '(':
			return false
		default:
			if urlStop(c) {
				return false
			}
		}
	}
	return false
}

func isLetter(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// maxAuthority bounds how far around an @ a URL's userinfo and a DSN's
// address are looked for, so that text full of @ stays linear; a longer
// userinfo is not taken for one.
const maxAuthority = 512

// lastURLStop returns the index of the last byte before s[i] that ends a
// URL (urlStop), if it is within bound of i, or -1. It goes on from the
// @ it was asked about before, which the scan asks about in text order,
// so that text full of @ is looked at once, not bound times.
func (t *textOut) lastURLStop(i, bound int) int {
	lo := max(0, i-bound)
	stop := -1
	if t.stopTo > 0 && t.stopTo <= i {
		lo = max(lo, t.stopTo)
		stop = t.stop
	}
	for k := i - 1; k >= lo; k-- {
		if urlStop(t.s[k]) {
			stop = k
			break
		}
	}
	t.stop, t.stopTo = stop, i
	return stop
}

func urlStop(c byte) bool {
	return c == '/' || isSpace(c) || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`'
}

// decodeKey returns a percent-encoded key (api%5Fkey, pass%77ord) decoded,
// as the program that reads it sees it; any other key as it is. Each valid
// %XX, either case, is decoded on its own and an invalid one kept, as a
// lenient server does (x%zzapi%5Fkey is x%zzapi_key to it). A + needs no
// decoding: it and the space a query or form decoder makes of it are both
// separators to the key rules.
func decodeKey(k string) string {
	if strings.IndexByte(k, '%') < 0 {
		return k
	}
	b := make([]byte, 0, len(k))
	for i := 0; i < len(k); i++ {
		if k[i] == '%' && i+2 < len(k) && unhex(k[i+1]) >= 0 && unhex(k[i+2]) >= 0 {
			b = append(b, byte(unhex(k[i+1])<<4|unhex(k[i+2])))
			i += 2
			continue
		}
		b = append(b, k[i])
	}
	return string(b)
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// maxTextKey bounds how far back a key is looked for. Key rules match at
// the end of a key, so a truncated long key still matches. The bound is on
// the key as the program that reads it sees it: once a % is met, the scan
// goes on up to maxRawTextKey bytes, and the key is cut to its last
// maxTextKey bytes after decoding, so that encoding a name byte by byte
// (%70%61%73%73%77%6F%72%64) does not push its first words out of reach,
// nor does the cut fall inside an escape. (Decoded, maxRawTextKey bytes
// that start inside an escape still leave more than maxTextKey bytes
// after it.)
const (
	maxTextKey    = 64
	maxRawTextKey = 3*maxTextKey + 2
)

// keyValue matches the value in key=value, key: value, "key": "value" and
// their escaped-JSON form when the key is a secret by the key rules (the =
// or : is the trigger). This covers query strings, form bodies, logfmt,
// DSNs, JSON and headers embedded in text. A value after an auth scheme
// ("Authorization: Bearer x") keeps the scheme.
func (t *textOut) keyValue(i int) (int, int) {
	return t.keyValueAt(i, i+1)
}

// keyValueAt is keyValue for the separator s[i:j]: = or :, or the => of a
// Ruby, PHP or Perl hash ("password" => "x", :password => "x").
//
// A header or YAML line (Key: value, and key = value with spaces on both
// sides, as in INI files) has an unquoted value that runs to the end of
// the line, spaces and all (Authorization: Negotiate YII..., password:
// correct horse battery staple, Cookie: a=b; sid=c), or, when the line is
// itself inside double quotes (a JSON string, a quoted logfmt value, a
// curl -H '...'), to the quote that closes them. Elsewhere an unquoted
// value is one word, or, after a known auth scheme, the scheme's
// credentials (Authorization=Negotiate x).
func (t *textOut) keyValueAt(i, j int) (int, int) {
	s := t.s
	ke := blanksBack(s, i)
	var quote byte
	escaped := false
	if ke > 0 && (s[ke-1] == '"' || s[ke-1] == '\'' || s[ke-1] == '`') {
		quote = s[ke-1] // `password` = 'x': MySQL's quotes
		ke--
		if ke > 0 && s[ke-1] == '\\' {
			escaped = true
			ke--
		}
	}
	ks, key := keyBefore(s, ke, quote != 0)
	if ks == ke {
		if quote == 0 && s[i] == ':' && !t.across {
			return t.userOption(i, i) // -u :password, no user
		}
		return 0, 0
	}
	if quote != 0 {
		o := ks - 1
		if o < 0 || s[o] != quote || escaped && (o < 1 || s[o-1] != '\\') {
			return 0, 0
		}
		// A quoted key with spaces is a JSON member's name only where a
		// member can begin: quoted words in prose ("reset your password":
		// done) are not keys.
		if strings.IndexByte(s[ks:ke], ' ') >= 0 && !memberStart(s, o, escaped) {
			return 0, 0
		}
	}
	if !t.r.keys.secret(key) {
		if quote == 0 && s[i] == ':' && !t.across {
			if ke < i {
				ks = i // -u :password, no user
			}
			return t.userOption(ks, i) // user:password after -u
		}
		return 0, 0
	}
	if j == i+1 && s[i] == ':' && j < len(s) && s[j] == '=' {
		j++ // Go's and Pascal's password := "x"
	}
	rocket := j > i+1 && s[i] == '='
	a := j
	// A hash's or a quoted key's value may be on the next line (:pw =>⏎
	// "x"); an unquoted key's line ends with it.
	for a < len(s) && (s[a] == ' ' || s[a] == '\t' || (rocket || quote != 0 && !escaped) && isSpace(s[a])) {
		a++
	}
	if a >= len(s) {
		return 0, 0
	}
	if c := s[a]; (rocket || quote != 0) && a > j && strings.ContainsAny(s[j:a], "\r\n") &&
		strings.IndexByte("\"'`{[", c) < 0 && !('0' <= c && c <= '9') {
		return 0, 0 // a bare word on the next line: the next key's, more likely than a value
	}
	if quote == 0 && s[i] == ':' && j == i+1 && !t.across && lineBreak(s, a) > 0 && lineStart(s, ks) {
		// key: and nothing after it: YAML's value is on the lines below
		// (password:\n  x), or a mapping is (credentials:\n  user: u).
		return t.yamlBlock(ks, a)
	}
	header := quote == 0 && j == i+1 && a > j && (s[i] == ':' || ke < i) && lineStart(s, ks)
	if t.across && a < t.last && (!header || strings.IndexByte("\"'`{[", s[a]) >= 0 || s[a] == '\\' && a+1 < len(s) && s[a+1] == '"') {
		return 0, 0 // a value that starts in the span last ends: not looked at
	}
	switch c := s[a]; {
	case (c == '"' || c == '\'') && a+2 < len(s) && s[a+1] == c && s[a+2] == c:
		// Python's and TOML's triple quotes: not an empty string and a quote
		b := len(s)
		if k := strings.Index(s[a+3:], s[a:a+3]); k >= 0 {
			b = a + 3 + k
		}
		return a + 3, b
	case c == '"' || c == '`':
		b := closeQuote(s, a+1, c)
		return skipScheme(s, a+1, b), b
	case c == '\'':
		b := closeDoubled(s, a+1, '\'')
		return skipScheme(s, a+1, b), b
	case c == '\\' && a+1 < len(s) && s[a+1] == '"':
		b := len(s)
		if j := strings.Index(s[a+2:], `\"`); j >= 0 {
			b = a + 2 + j
		}
		return skipScheme(s, a+2, b), b
	case c == '{' || c == '[':
		return a, closeBracket(s, a)
	}
	if header {
		b := t.lineEnd(ks, a, true)
		if s[i] == ':' && !t.across && blockIndicator(s[a:b]) {
			// A YAML block scalar (password: |, key: !!str >-): its
			// lines, the indicator kept. Without any, the indicator is
			// the value.
			if c, d := t.yamlBlock(ks, b); c < d {
				return c, d
			}
		}
		if s[i] == ':' && !t.across && s[a] == '#' {
			// password: # a comment, the value on the lines below: the
			// comment goes with them, in case it was no comment.
			if _, d := t.yamlBlock(ks, b); d > 0 {
				return a, d
			}
		}
		if len(key) >= len("set-cookie") && equalFold(key[len(key)-len("set-cookie"):], "set-cookie") {
			// One cookie, then its attributes (Path=/; HttpOnly).
			b = min(b, t.nextSemicolon(a))
		}
		c := skipScheme(s, a, b)
		if c > a {
			if d, params := credentials(s, c); params && d > b {
				// The quote taken for the one that closes the line's is
				// one of the credentials' (Digest username="u", ...): the
				// line was not in quotes after all.
				b = max(t.lineEnd(ks, a, false), d)
			}
		}
		if t.across && b <= t.last {
			return 0, 0
		}
		return c, b
	}
	b := a
	for b < len(s) && !valueStop[s[b]] {
		if (quote != 0 && s[i] == ':' || rocket) && (s[b] == '}' || s[b] == ']' || rocket && s[b] == ')') {
			break // a JSON number, bool or null; a hash's last value
		}
		b++
	}
	if isScheme(s[a:b]) && b < len(s) && (s[b] == ' ' || s[b] == '\t') {
		c := skipBlanks(s, b)
		if d, _ := credentials(s, c); d > c {
			return c, d
		}
	}
	return a, b
}

// lineStart reports whether the key at s[ks] begins a line (spaces
// aside): first in the text, after a CR or LF or their escapes, or after
// a quote that opens the line's text (curl -H 'Authorization: x'). Only
// such a key's value runs to the end of its line: in prose (login failed,
// password: too short, user=bob) a value is one word, as in key=value.
func lineStart(s string, ks int) bool {
	p, _ := keyLine(s, ks)
	switch {
	case p == 0:
		return true
	case s[p-1] == '\n' || s[p-1] == '\r' || s[p-1] == '"' || s[p-1] == '\'' || s[p-1] == '`':
		return true
	case p >= 2 && s[p-2] == '\\' && (s[p-1] == 'n' || s[p-1] == 'r'):
		return true
	}
	return false
}

// yamlBlock returns the span of the YAML block whose key, at s[ks], begins
// a line that ends at s[e] (spaces aside): the lines after it indented more
// than the key's line, blank lines among them, up to the quote that closes
// the text the key's line is in. It is 0, 0 when no such line has text.
// A block ends at the first line indented no more than its key's, as YAML
// has it; lines that no parser would take (less indented than the first)
// go too, which errs on the side of the secret.
func (t *textOut) yamlBlock(ks, e int) (int, int) {
	s := t.s
	q, escaped := t.lineQuote(ks)
	_, ind := keyLine(s, ks)
	a, b := -1, -1
	for {
		e = skipBlanks(s, e)
		n := lineBreak(s, e)
		if n == 0 {
			break // the end of the text, or of the quoted text it is in
		}
		p := e + n
		k := skipBlanks(s, p)
		if lineBreak(s, k) > 0 {
			e = k // a blank line
			continue
		}
		if k == len(s) || k-p <= ind {
			break
		}
		e = scanLine(s, k, q, escaped)
		d := e
		for d > k && isSpace(s[d-1]) {
			d--
		}
		if d > k {
			if a < 0 {
				a = k
			}
			b = d
		}
	}
	if a < 0 {
		return 0, 0
	}
	return a, b
}

// keyLine goes back from the key at s[ks] over spaces and tabs, and over
// a YAML list item's dash (- key: value) and the spaces before it. It
// returns where that stops (lineStart looks at what stands before it) and
// the key's indentation: the spaces before the key, or before the dash.
func keyLine(s string, ks int) (p, indent int) {
	p = blanksBack(s, ks)
	indent = ks - p
	if p < ks && p > 0 && s[p-1] == '-' {
		e := p - 1
		p = blanksBack(s, e)
		indent = e - p
	}
	return p, indent
}

// skipBlanks returns where the spaces and tabs at s[k] end.
func skipBlanks(s string, k int) int {
	for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	return k
}

// blanksBack returns where the spaces and tabs that end at s[k] start.
func blanksBack(s string, k int) int {
	for k > 0 && (s[k-1] == ' ' || s[k-1] == '\t') {
		k--
	}
	return k
}

// lineBreak returns the length of the line break at s[k]: CR LF, LF or
// CR, or their escapes (\r\n, \n, \r), as lineEnd ends a line; 0 if there
// is none.
func lineBreak(s string, k int) int {
	if k >= len(s) {
		return 0
	}
	switch s[k] {
	case '\n':
		return 1
	case '\r':
		if k+1 < len(s) && s[k+1] == '\n' {
			return 2
		}
		return 1
	case '\\':
		if k+1 < len(s) && (s[k+1] == 'n' || s[k+1] == 'r') {
			if s[k+1] == 'r' && k+3 < len(s) && s[k+2] == '\\' && s[k+3] == 'n' {
				return 4
			}
			return 2
		}
	}
	return 0
}

// blockIndicator reports whether v, a YAML line's value, is the header of
// a block scalar: | or >, a chomping indicator and an indentation digit
// maybe, and maybe a comment; a tag or an anchor may come first (!!str |,
// !vault |, &pw >-).
func blockIndicator(v string) bool {
	for range 2 {
		if v == "" || v[0] != '!' && v[0] != '&' {
			break
		}
		k := strings.IndexAny(v, " \t")
		if k < 0 {
			return false
		}
		v = strings.TrimLeft(v[k:], " \t")
	}
	if v == "" || v[0] != '|' && v[0] != '>' {
		return false
	}
	k := 1
	for k < len(v) && k < 3 && (v[k] == '+' || v[k] == '-' || '1' <= v[k] && v[k] <= '9') {
		k++
	}
	v = v[k:]
	if v == "" {
		return true
	}
	c := strings.TrimLeft(v, " \t")
	return len(c) < len(v) && c != "" && c[0] == '#'
}

// nextSemicolon returns the index of the first ; at or after a, or
// len(s). The scan asks in text order, so the last search is kept: a line
// of many Set-Cookie keys costs one search, not one each.
func (t *textOut) nextSemicolon(a int) int {
	if t.semiTo == 0 || a < t.semiFrom || a > t.semiTo {
		t.semiFrom, t.semiTo = a, len(t.s)
		if k := strings.IndexByte(t.s[a:], ';'); k >= 0 {
			t.semiTo = a + k
		}
	}
	return t.semiTo
}

// wordEnd returns where the word of an unquoted value that starts at s[c]
// ends: at a byte that ends a value, or at an =.
func wordEnd(s string, c int) int {
	for c < len(s) && !valueStop[s[c]] && s[c] != '=' {
		c++
	}
	return c
}

// lineEnd returns where the value of a header or YAML line that starts at
// s[a], its key at s[ks], ends: at the end of the line (a CR or LF, or
// their escapes \r and \n in escaped text), or at the quote that closes a
// quoted string the line is in, whichever comes first; trailing spaces are
// not part of it. The line is in quotes when its key follows a quote
// (curl -H 'Authorization: Negotiate x', "Authorization: Negotiate x") or
// an odd number of double quotes ({"msg":"bad password: x y","n":1}),
// unless quoted is false.
func (t *textOut) lineEnd(ks, a int, quoted bool) int {
	var q byte
	escaped := false
	if quoted {
		q, escaped = t.lineQuote(ks)
	}
	// The last scan for the same quote, if it started before a and ended
	// after it, found the terminator: each kind of quote has its own, so
	// that keys whose lines end at different quotes do not scan again.
	m := &t.le[strings.IndexByte("\x00\"\\'`", q)]
	if escaped {
		m = &t.le[2]
	}
	if m.to > 0 && m.from <= a && a <= m.to {
		return max(a, m.trim)
	}
	s := t.s
	b := scanLine(s, a, q, escaped)
	m.from, m.to = a, b
	for b > a && isSpace(s[b-1]) {
		b--
	}
	m.trim = b
	return b
}

// lineQuote returns the quote that closes the text a line whose key
// starts at s[ks] is in, if any (see lineEnd), and whether it is escaped
// (\").
func (t *textOut) lineQuote(ks int) (q byte, escaped bool) {
	s := t.s
	switch {
	case ks > 0 && (s[ks-1] == '"' || s[ks-1] == '\'' || s[ks-1] == '`'):
		q = s[ks-1]
		escaped = q == '"' && ks > 1 && s[ks-2] == '\\'
	case t.inQuotes(ks):
		q = '"'
	}
	return q, escaped
}

// scanLine returns where the line that goes on at s[b] ends: at a CR or
// LF, their escapes, or the quote q (0: none) that closes the text the
// line is in (escaped: \" closes it), or len(s).
func scanLine(s string, b int, q byte, escaped bool) int {
	for ; b < len(s); b++ {
		c := s[b]
		if c == '\n' || c == '\r' || c == q && q != 0 {
			break
		}
		if c == '\\' {
			if b+1 < len(s) && (s[b+1] == 'n' || s[b+1] == 'r' || escaped && s[b+1] == q) {
				break
			}
			if q == '"' || q == '\'' {
				b++ // an escaped quote
			}
		}
	}
	return min(b, len(s))
}

// lineScan is a scan of lineEnd's: from s[from] to the terminator at
// s[to], and trim, where the spaces before that start.
type lineScan struct{ from, to, trim int }

// inQuotes reports whether s[p] is inside a double-quoted string opened
// earlier on its line: whether an odd number of double quotes, not
// escaped, come between the start of the line and p. The count is kept
// from one call to the next, which the scan makes in text order, so that
// a long line costs one count, not one for each key on it.
func (t *textOut) inQuotes(p int) bool {
	s := t.s
	if p < t.qAt {
		t.qAt, t.qIn = strings.LastIndexByte(s[:p], '\n')+1, false
	}
	k, in := t.qAt, t.qIn
	for ; k < p; k++ {
		switch s[k] {
		case '\n':
			in = false
		case '\\':
			k++
		case '"':
			in = !in
		}
	}
	t.qAt, t.qIn = k, in
	return in
}

// credentials returns where the credentials that start at s[c], after an
// auth scheme in an unquoted value, end: a word (token68) and its =
// padding (Negotiate, NTLM, Bearer, SSWS, Bot, ...), or a list of
// auth-params, name=value or name="quoted value", separated by commas
// (Digest, AWS4-HMAC-SHA256), and whether they are such a list. c if none
// starts there.
func credentials(s string, c int) (int, bool) {
	d := wordEnd(s, c)
	e := d
	for e < len(s) && s[e] == '=' {
		e++
	}
	if d == c || e == d || e != d+1 || e == len(s) || valueStop[s[e]] && s[e] != '"' {
		return e, false // a token68, padded or not
	}
	last := c
	for {
		// s[c:d] is a name, s[d] its =.
		v := d + 1
		if v < len(s) && s[v] == '"' {
			v = min(len(s), closeQuote(s, v+1, '"')+1)
		} else {
			for v < len(s) && !isSpace(s[v]) && strings.IndexByte(",\"'`<>", s[v]) < 0 {
				v++
			}
		}
		last = v
		k := skipBlanks(s, v)
		if k == len(s) || s[k] != ',' {
			return last, true
		}
		k++
		k = skipBlanks(s, k)
		c, d = k, wordEnd(s, k)
		if d == c || d == len(s) || s[d] != '=' {
			return last, true
		}
	}
}

// userOption matches the password in curl's -u user:password (also
// --user, -U and --proxy-user, with a space or an =, the user:password
// maybe quoted; -uuser:password), keeping the user name: the key of the
// key=value matcher whose : is at s[i] starts at s[ks] and is not a secret.
func (t *textOut) userOption(ks, i int) (int, int) {
	s := t.s
	// The user name is the whole argument, not only what a key holds: an
	// e-mail address (Jira's and Atlassian's API tokens), DOMAIN\user.
	for ks > 0 && i-ks < maxUserName && !isSpace(s[ks-1]) && strings.IndexByte("\"'`=", s[ks-1]) < 0 {
		ks--
	}
	user := ks
	var q byte
	fe := ks
	if fe > 0 && (s[fe-1] == '"' || s[fe-1] == '\'') {
		q = s[fe-1]
		fe--
	}
	if fe > 0 && s[fe-1] == '=' && q == 0 {
		fe--
	} else if q == 0 && fe+2 < i && (s[fe:fe+2] == "-u" || s[fe:fe+2] == "-U") {
		fe += 2 // -uuser:password
	} else {
		sp := fe
		for fe > 0 && sp-fe < 4 && (s[fe-1] == ' ' || s[fe-1] == '\t') {
			fe--
		}
		if fe == sp {
			return 0, 0
		}
	}
	fs := fe
	for fs > 0 && fe-fs <= len("--proxy-user") && (isLetter(s[fs-1]) || s[fs-1] == '-') {
		fs--
	}
	if fs > 0 && !flagBefore(s[fs-1]) {
		return 0, 0
	}
	switch s[fs:fe] {
	case "-u", "-U", "--user", "--proxy-user":
	default:
		return 0, 0
	}
	a := i + 1
	b := argEnd(s, a)
	if q != 0 {
		b = closeQuote(s, a, q)
	}
	if uid, gid := s[user:i], s[a:b]; uid != "" && gid != "" && trimDigits(uid) == "" && trimDigits(gid) == "" {
		return 0, 0 // uid:gid (docker run -u 1000:1000), not a password
	}
	return a, b
}

// maxUserName bounds userOption's look back for the start of a user name,
// which keeps text full of colons linear.
const maxUserName = 128

// argEnd returns where the unquoted command-line argument that starts at
// s[a] ends: at a space or a quote (of a command line quoted whole).
func argEnd(s string, a int) int {
	for a < len(s) && !isSpace(s[a]) && s[a] != '"' && s[a] != '\'' && s[a] != '`' {
		a++
	}
	return a
}

// flagBefore reports whether a command-line flag may start after c: a
// space, a quote, or the bracket that opens a list of arguments as Go's
// %v prints one ([--password x]) or a paren ((--token x)).
func flagBefore(c byte) bool {
	return isSpace(c) || c == '"' || c == '\'' || c == '[' || c == '('
}

// flag matches the value of a command-line flag named as a secret key and
// given as the next argument (--password x, --api-key x, Go's -password
// x; "--token" "x" as %q prints it), unless that argument is another flag
// (the dash is the trigger). --password=x is key=value text. A value that
// starts before s[from] is not looked at.
func (t *textOut) flag(i, from int) (int, int) {
	s := t.s
	if i > 0 && !flagBefore(s[i-1]) {
		return 0, 0
	}
	n := i + 1
	if n < len(s) && s[n] == '-' {
		n++
	}
	if n == len(s) || !isLetter(s[n]) {
		return 0, 0
	}
	e := n
	for e < len(s) && flagByte[s[e]] {
		e++
	}
	a := e
	sep := false // a separator before the value
	esc := false // the flag is in escaped quotes (JSON inside JSON)
	f := i       // where the argument starts, its quote and all
	if i > 0 && (s[i-1] == '"' || s[i-1] == '\'') {
		// "--token" "x", or ["--token","x"], or [\"--token\", \"x\"]
		f--
		esc = s[i-1] == '"' && i > 1 && s[i-2] == '\\'
		if esc && a+1 < len(s) && s[a] == '\\' {
			a++
		}
		if a == len(s) || s[a] != s[i-1] {
			return 0, 0
		}
		a++
	}
	item := -1 // - --password⏎  - x: a YAML list of arguments (a container's)
	if f > 1 && (s[f-2] == '-' || isSpace(s[f-2])) && yamlItem(s, f) {
		item = nextItem(s, a)
	}
	if item > 0 {
		a, sep = item, true
	} else if f < i {
		if a < len(s) && s[a] == ',' {
			a++
			sep = true
		}
		// Pretty-printed JSON has the value on the next line.
		for a < len(s) {
			if isSpace(s[a]) {
				a++
			} else if n := lineBreak(s, a); esc && n > 0 {
				a += n
			} else {
				break
			}
			sep = true
		}
	}
	for a < len(s) {
		if s[a] == ' ' || s[a] == '\t' {
			a++
		} else if s[a] == '\\' && a+1 < len(s) && (s[a+1] == '\n' || s[a+1] == '\r') {
			a += 1 + lineBreak(s, a+1) // a shell's line continuation
		} else {
			break
		}
		sep = true
	}
	if !sep || a == len(s) || a < from || s[a] == '-' || switchFlag(s[n:e]) || !t.r.keys.secret(s[max(n, e-maxTextKey):e]) {
		return 0, 0
	}
	if esc && s[a] == '\\' && a+1 < len(s) && s[a+1] == '"' {
		b := len(s)
		if k := strings.Index(s[a+2:], `\"`); k >= 0 {
			b = a + 2 + k
		}
		return a + 2, b
	}
	if c := s[a]; c == '"' || c == '\'' || c == '`' {
		return a + 1, closeQuote(s, a+1, c)
	}
	return a, argEnd(s, a)
}

// nextItem returns where the value of a YAML list item on the line after
// the one that goes on at s[k] starts (spaces aside: ⏎  - x), or -1.
func nextItem(s string, k int) int {
	k = skipBlanks(s, k)
	n := lineBreak(s, k)
	if n == 0 {
		return -1
	}
	k = skipBlanks(s, k+n)
	if k+1 >= len(s) || s[k] != '-' || s[k+1] != ' ' && s[k+1] != '\t' {
		return -1
	}
	return skipBlanks(s, k+1)
}

// yamlItem reports whether s[k] starts the value of a YAML list item: a
// dash and a space before it begin a line.
func yamlItem(s string, k int) bool {
	p := blanksBack(s, k)
	return p < k && p > 0 && s[p-1] == '-' && lineStart(s, p-1)
}

// switchFlag reports whether a flag's name says it takes no value, though
// it ends in a secret's name: --no-password, --ask-pass, --skip-auth,
// --prompt-password, --disable-token, --without-password.
func switchFlag(name string) bool {
	k := strings.IndexAny(name, "-_.")
	if k <= 0 {
		return false
	}
	for _, v := range [...]string{"no", "ask", "skip", "prompt", "disable", "without"} {
		if equalFold(name[:k], v) {
			return true
		}
	}
	return false
}

// maxEscapedLiteral bounds how far sqlBy looks for the \" that closes an
// escaped double-quoted password.
const maxEscapedLiteral = 1024

// sqlPassword matches the literal of SQL's IDENTIFIED BY 'x' (also
// IDENTIFIED WITH plugin BY 'x'), PASSWORD 'x' (WITH PASSWORD 'x', ALTER
// ROLE r PASSWORD 'x') and MySQL's PASSWORD('x'), in any case, with any
// spaces or line breaks before it; the trigger is the quote, the quote of
// PostgreSQL's E'x', or the first $ of its $$x$$ and $tag$x$tag$.
func (t *textOut) sqlPassword(i int) (int, int) {
	s := t.s
	a := i // where the literal starts
	if s[i] == '\'' && i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') {
		a = i - 1
	}
	k := a
	ws := skipSQLSpaceBack(s, k, maxSQLSpace)
	fn := a == i && s[i] == '\'' && ws > 0 && s[ws-1] == '(' // PASSWORD ( 'x' )
	if fn {
		k = ws - 1
		ws = skipSQLSpaceBack(s, k, maxSQLSpace)
	}
	if ws == k && !fn || ws == 0 {
		return 0, 0
	}
	w := ws
	for w > 0 && ws-w <= len("password") && isLetter(s[w-1]) && sqlSpaceBefore(s, w) == 0 {
		w--
	}
	if w > 0 && keyByte[s[w-1]] && sqlSpaceBefore(s, w) == 0 {
		return 0, 0 // db_password 'x': not the keyword
	}
	switch word := s[w:ws]; {
	case equalFold(word, "password"):
	case !fn && equalFold(word, "by") && identifiedBefore(s, w):
	default:
		return 0, 0
	}
	return sqlPasswordAt(s, a, false)
}

// sqlBy matches the password after IDENTIFIED BY that sqlPassword's
// triggers do not see: double-quoted (MySQL), or a bare word (Oracle's
// IDENTIFIED BY x); the B of BY is the trigger. A password that starts
// before s[from] is not looked at.
func (t *textOut) sqlBy(i, from int) (int, int) {
	s := t.s
	if i == 0 || i+2 >= len(s) || lower[s[i+1]] != 'y' || sqlSpaceBefore(s, i) == 0 || sqlSpace(s, i+2) == 0 {
		return 0, 0
	}
	a := skipSQLSpace(s, i+2, maxSQLSpace)
	if a < from || a == len(s) || s[a] == '\'' || s[a] == '$' || s[a]|0x20 == 'e' && a+1 < len(s) && s[a+1] == '\'' {
		return 0, 0 // sqlPassword's, at its own trigger
	}
	k := identifiedAt(s, i)
	if k < 0 {
		return 0, 0
	}
	// A bare word or a double-quoted one only in a statement: identified
	// by its id, or by "req-1", is prose.
	stmt := userBefore(s, k)
	if s[a] == '"' && !stmt {
		return 0, 0
	}
	if stmt && s[a] == '\\' && a+1 < len(s) && s[a+1] == '"' {
		// \"x\", a double-quoted one in a JSON or Go string: to the
		// escaped quote that closes it, looked for a bounded way on
		// (text full of IDENTIFIED BY \" stays linear), else to there.
		a += 2
		lim := min(len(s), a+maxEscapedLiteral)
		if e := strings.Index(s[a:lim], `\"`); e >= 0 {
			return a, a + e
		}
		return a, lim
	}
	return sqlPasswordAt(s, a, stmt)
}

// setPassword matches the password of MySQL's SET PASSWORD = 'x' and SET
// PASSWORD FOR user = 'x' (or = PASSWORD('x')); the = is the trigger. The
// key before the = is the user (or the word PASSWORD), which key=value text
// takes for a name, not a secret's. A password that starts before s[from]
// is not looked at.
func (t *textOut) setPassword(i, from int) (int, int) {
	s := t.s
	k := skipSQLSpaceBack(s, i, maxSQLSpace)
	// The user: 'bob'@'%', bob@localhost, CURRENT_USER(). It holds no =,
	// so text full of them is walked back once.
	u := k
	for u > 0 && k-u < maxUserName && sqlSpaceBefore(s, u) == 0 && s[u-1] != '=' {
		u--
	}
	if u == k || u == 0 || sqlSpaceBefore(s, u) == 0 {
		return 0, 0
	}
	if !equalFold(s[u:k], "password") {
		var w string
		if u, w = sqlWordBefore(s, u); !equalFold(w, "for") {
			return 0, 0
		}
		if u, w = sqlWordBefore(s, u); !equalFold(w, "password") {
			return 0, 0
		}
	}
	if _, w := sqlWordBefore(s, u); !equalFold(w, "set") {
		return 0, 0
	}
	a := skipSQLSpace(s, i+1, maxSQLSpace)
	if a < from {
		return 0, 0
	}
	return sqlPasswordAt(s, a, true)
}

// setPasswordAt reports whether the = at s[i] may be SET PASSWORD's: after
// a space, as the manual writes it (= 'x'), or a quoted host ('%'='x').
func setPasswordAt(s string, i int) bool {
	if i == 0 {
		return false
	}
	c := s[i-1]
	return (c == ' ' || c == '\'' || c == '"' || c == '`' || isSpace(c)) && (i+1 == len(s) || s[i+1] != '>')
}

// maxSQLSpace bounds the spaces and line breaks between the words of an
// SQL statement that its matchers look across.
const maxSQLSpace = 64

// sqlLiteral returns the text of the SQL string literal that starts at
// s[a]: '...' or "..." (a doubled quote is one of the text), E'...', $$...$$
// or $tag$...$tag$, all to the end of s if not closed; also the literal in
// MySQL's PASSWORD('x') and after IDENTIFIED BY PASSWORD or Oracle's
// IDENTIFIED BY VALUES. With word, a bare word is a literal too (to a
// space or ;), but not RANDOM of MySQL's IDENTIFIED BY RANDOM PASSWORD.
// end is where the literal ends, its closing quote or tag and all.
func sqlLiteral(s string, a int, word bool) (c, d, end int) {
	if a >= len(s) {
		return 0, 0, 0
	}
	switch q := s[a]; {
	case q == '\'' || q == '"':
		d = closeDoubled(s, a+1, q)
		return a + 1, d, min(d+1, len(s))
	case (q == 'E' || q == 'e') && a+1 < len(s) && s[a+1] == '\'':
		d = closeDoubled(s, a+2, '\'')
		return a + 2, d, min(d+1, len(s))
	case q == '$':
		e := a + 1
		if e < len(s) && '0' <= s[e] && s[e] <= '9' {
			return 0, 0, 0 // $1, a parameter; $6$salt$hash, a crypt(3) hash
		}
		for e < len(s) && e-a <= maxTextKey && (isAlnum(s[e]) || s[e] == '_') {
			e++
		}
		if e == len(s) || s[e] != '$' {
			return 0, 0, 0 // $HOME: no dollar quote
		}
		tag := s[a : e+1]
		if k := strings.Index(s[e+1:], tag); k >= 0 {
			return e + 1, e + 1 + k, e + 1 + k + len(tag)
		}
		return e + 1, len(s), len(s)
	}
	w := a
	for w < len(s) && w-a <= len("password") && isLetter(s[w]) {
		w++
	}
	if v := s[a:w]; equalFold(v, "password") || equalFold(v, "values") {
		k := skipSQLSpace(s, w, maxSQLSpace)
		if k < len(s) && s[k] == '(' {
			k++
		}
		k = skipSQLSpace(s, k, maxSQLSpace)
		if k < len(s) && (s[k] == '\'' || s[k] == '"') {
			return sqlLiteral(s, k, false)
		}
		return 0, 0, 0
	}
	if !word || equalFold(s[a:w], "random") && w < len(s) && isSpace(s[w]) {
		return 0, 0, 0
	}
	d = a
	for d < len(s) && !isSpace(s[d]) && s[d] != ';' {
		d++
	}
	return a, d, d
}

// sqlPasswordAt returns sqlLiteral's text of the password at s[a], with
// the old password of a REPLACE clause after it (MySQL's and Oracle's
// IDENTIFIED BY 'new' REPLACE 'old'): one span from the new password to
// the old, REPLACE and all, since a matcher returns one.
func sqlPasswordAt(s string, a int, word bool) (int, int) {
	c, d, end := sqlLiteral(s, a, word)
	if c >= d {
		return c, d
	}
	e := skipSQLSpace(s, end, maxSQLSpace)
	const kw = "replace"
	if e == end || e+len(kw) >= len(s) || !equalFold(s[e:e+len(kw)], kw) || sqlSpace(s, e+len(kw)) == 0 {
		return c, d
	}
	k := skipSQLSpace(s, e+len(kw), maxSQLSpace)
	if f, g, _ := sqlLiteral(s, k, word); f < g {
		return c, g
	}
	return c, d
}

// identifiedBefore reports whether IDENTIFIED, or IDENTIFIED WITH plugin,
// ends just before the spaces before s[k].
func identifiedBefore(s string, k int) bool {
	return identifiedAt(s, k) >= 0
}

// identifiedAt returns where the IDENTIFIED that identifiedBefore looks
// for starts, or -1.
func identifiedAt(s string, k int) int {
	k, w := sqlWordBefore(s, k)
	if equalFold(w, "identified") {
		return k
	}
	if w == "" {
		// A plugin's name may be quoted: WITH 'mysql_native_password'.
		if k = quotedBefore(s, k); k < 0 {
			return -1
		}
	}
	k, w = sqlWordBefore(s, k)
	if !equalFold(w, "with") {
		return -1
	}
	if k, w = sqlWordBefore(s, k); equalFold(w, "identified") {
		return k
	}
	return -1
}

// quotedBefore returns where the quoted word (in ', " or `, of key
// bytes) that ends just before s[e] starts, or -1.
func quotedBefore(s string, e int) int {
	if e < 2 || s[e-1] != '\'' && s[e-1] != '"' && s[e-1] != '`' {
		return -1
	}
	b := e - 1
	for b > 0 && e-b < maxTextKey && keyByte[s[b-1]] {
		b--
	}
	if b == 0 || b == e-1 || s[b-1] != s[e-1] {
		return -1
	}
	return b - 1
}

// sqlSpace returns the length of the white space at s[k] for the SQL
// rules: a space, tab or line break, or one escaped as a JSON or Go string
// has it (\n, \r, \t), in which statements are often logged; 0 if none.
func sqlSpace(s string, k int) int {
	switch {
	case k >= len(s):
		return 0
	case isSpace(s[k]):
		return 1
	case s[k] == '\\' && k+1 < len(s) && (s[k+1] == 'n' || s[k+1] == 'r' || s[k+1] == 't'):
		return 2
	}
	return 0
}

// sqlSpaceBefore is sqlSpace of the white space that ends at s[k].
func sqlSpaceBefore(s string, k int) int {
	switch {
	case k > 0 && isSpace(s[k-1]):
		return 1
	case k > 1 && s[k-2] == '\\' && (s[k-1] == 'n' || s[k-1] == 'r' || s[k-1] == 't'):
		return 2
	}
	return 0
}

// skipSQLSpace returns where the white space (sqlSpace) at s[k] ends, at
// most limit bytes on.
func skipSQLSpace(s string, k, limit int) int {
	j := k
	for j-k < limit {
		n := sqlSpace(s, j)
		if n == 0 {
			break
		}
		j += n
	}
	return j
}

// skipSQLSpaceBack returns where the white space (sqlSpace) that ends at
// s[k] starts, at most limit bytes back.
func skipSQLSpaceBack(s string, k, limit int) int {
	j := k
	for k-j < limit {
		n := sqlSpaceBefore(s, j)
		if n == 0 {
			break
		}
		j -= n
	}
	return j
}

// userBefore reports whether a user name, after USER (or USER IF NOT
// EXISTS) or TO, ends at the spaces before s[k]: CREATE USER bob
// IDENTIFIED, GRANT c TO bob IDENTIFIED. It tells a statement from prose (identified by its id).
func userBefore(s string, k int) bool {
	e := skipSQLSpaceBack(s, k, maxSQLSpace)
	u := e
	for u > 0 && e-u < maxUserName && sqlSpaceBefore(s, u) == 0 {
		u--
	}
	if u == e {
		return false
	}
	u, w := sqlWordBefore(s, u)
	if equalFold(w, "exists") { // CREATE USER IF NOT EXISTS bob
		if u, w = sqlWordBefore(s, u); equalFold(w, "not") {
			if u, w = sqlWordBefore(s, u); equalFold(w, "if") {
				_, w = sqlWordBefore(s, u)
			}
		}
	}
	return equalFold(w, "user") || equalFold(w, "to")
}

// sqlWordBefore returns the word (of key bytes) that ends at the spaces
// before s[k], and where it starts; "" if no space or no word is there.
func sqlWordBefore(s string, k int) (int, string) {
	e := skipSQLSpaceBack(s, k, maxSQLSpace)
	if e == k {
		return k, ""
	}
	b := e
	for b > 0 && e-b < maxTextKey && keyByte[s[b-1]] && sqlSpaceBefore(s, b) == 0 {
		b--
	}
	return b, s[b:e]
}

// keyBefore returns where the key of key=value text that ends at ke
// starts, and the key as the program that reads it sees it (decoded, cut to
// its last maxTextKey bytes). Only the key is decoded; the value is found,
// and replaced, in the text as it is. quoted lets the key hold spaces (a
// JSON member's name).
func keyBefore(s string, ke int, quoted bool) (int, string) {
	ks, limit := ke, maxTextKey
	for ks > 0 && ke-ks < limit && (keyByte[s[ks-1]] || quoted && s[ks-1] == ' ') {
		ks--
		if s[ks] == '%' {
			limit = maxRawTextKey
		}
	}
	key := s[ks:ke]
	if limit != maxTextKey {
		key = decodeKey(key)
		key = key[max(0, len(key)-maxTextKey):]
	}
	return ks, key
}

// memberStart reports whether the quote at s[o] (after a backslash if
// escaped) can open a JSON member's name: first in the text or after { or
// a comma, spaces aside.
func memberStart(s string, o int, escaped bool) bool {
	j := o - 1
	if escaped {
		j--
	}
	for j >= 0 && isSpace(s[j]) {
		j--
	}
	return j < 0 || s[j] == '{' || s[j] == ','
}

// encodedEquals reports whether s[i:] starts with %3D or %253D (either case).
func encodedEquals(s string, i int) bool {
	c, n := encodedByte(s, i)
	return n > 0 && c == '='
}

// encodedByte decodes the percent-encoded byte at s[i], once (%3D) or
// twice (%253D: a URL encoded again inside another), and returns it and
// the bytes it takes; n is 0 if s[i:] starts with no escape.
func encodedByte(s string, i int) (c byte, n int) {
	if i+2 >= len(s) || s[i] != '%' {
		return 0, 0
	}
	if s[i+1] == '2' && s[i+2] == '5' && i+4 < len(s) {
		if h, l := unhex(s[i+3]), unhex(s[i+4]); h >= 0 && l >= 0 {
			return byte(h<<4 | l), 5
		}
	}
	if h, l := unhex(s[i+1]), unhex(s[i+2]); h >= 0 && l >= 0 {
		return byte(h<<4 | l), 3
	}
	return 0, 0
}

// escapeBefore decodes the escape that ends at s[end-1], %XX or %25XX, and
// returns the byte and its length; w is 0 if none ends there.
func escapeBefore(s string, end int) (c byte, w int) {
	for _, w := range [...]int{3, 5} {
		if end >= w && s[end-w] == '%' {
			if d, m := encodedByte(s, end-w); m == w {
				return d, w
			}
		}
	}
	return 0, 0
}

// encodedKeyValue matches the value in key%3Dvalue: a query string
// percent-encoded inside another (a redirect or callback URL carried as a
// parameter, ?next=https%3A%2F%2Fapp%2Fcb%3Ftoken%3Dabc), or encoded twice
// (%253D), when the key is a secret by the key rules. The key starts after
// the last encoded byte that cannot be part of one (%26, %3F, %2F, ...),
// which also keeps the scan linear in runs of escapes. The value ends
// where the text's own value would (a space, a quote, ...) or at an
// encoded &, space, quote, comma or semicolon (%26, %20, ...); an encoded
// quote (%22) opens a value that runs to the next one.
func (t *textOut) encodedKeyValue(i int) (int, int) {
	s := t.s
	if c, n := encodedByte(s, i); c != '=' || n == 0 {
		return 0, 0
	}
	sep := i + 3
	if s[i+1] == '2' {
		sep = i + 5
	}
	// The key: key bytes back from i, and escapes of key bytes; an escape
	// of anything else (or a raw one) ends it. Decoded into buf.
	var buf [maxTextKey]byte
	n := len(buf)
	ks := i
	for ks > 0 && n > 0 {
		c := s[ks-1]
		if !keyByte[c] || c == '%' {
			break
		}
		if d, w := escapeBefore(s, ks); w > 0 {
			if !keyByte[d] || d == '%' {
				break
			}
			n--
			buf[n] = d
			ks -= w
			continue
		}
		n--
		buf[n] = c
		ks--
	}
	if n == len(buf) || !t.r.keys.secret(bytesString(buf[n:])) {
		return 0, 0
	}
	a := sep
	if c, m := encodedByte(s, a); m > 0 && (c == '"' || c == '\'') {
		// %22value%22: the value inside the encoded quotes.
		for b := a + m; b < len(s); b++ {
			if d, k := encodedByte(s, b); k > 0 && d == c {
				return a + m, b
			}
		}
		return a + m, len(s)
	}
	b := a
	for b < len(s) && !valueStop[s[b]] {
		if c, m := encodedByte(s, b); m > 0 && valueStop[c] {
			break
		}
		b++
	}
	return a, b
}

// maxStartTag bounds how far back from a > the < of a start tag is looked
// for (a tag with attributes: WS-Security's <wsse:Password Type="...">),
// and how far an input tag is read.
const maxStartTag = 4096

// element matches the content of an XML or HTML element named as a secret
// key, up to the end tag that closes it: <password>value</password>,
// <ns:api_key a="1">value</ns:api_key>, <Password><![CDATA[value]]>
// </Password>, children and all. The trigger is the > of the start tag.
// An end tag closes the innermost open element of its local name (in any
// case, with or without a namespace prefix), so an element holding one of
// the same name runs to its own end tag (<password><password>a</password>
// b</password>: both a and b); end tags in CDATA sections and comments
// close nothing. An element that no end tag closes runs to the last end
// tag of its name after it (fail closed), and is left alone only if there
// is none, so that a placeholder in prose (type your <password> below) is
// not taken for one.
//
// An element of another name that a name or key attribute names as a
// secret is one too (Hibernate's <property name="password">x</property>,
// Java's <entry key="password">x</entry>), and one with a value or
// content attribute, its name, key or id a secret, loses that value, the
// empty element's too (<param name="password" value="x">, Spring's
// <property name="password" value="x"/>, .NET's <add key="ApiKey"
// value="x"/>, <meta name="csrf-token" content="x">): the trigger is then
// the > of the tag, maybe of its />. Inputs are input's.
func (t *textOut) element(i int) (int, int) {
	s := t.s
	lt := i - 1
	named := false  // tagEnd's named, of the bytes looked back at
	quoted := false // a quote among them
	for lt >= 0 && i-lt <= maxStartTag && s[lt] != '<' && s[lt] != '>' {
		switch s[lt] {
		case '=':
			named = named || lt > 0 && attrNamed(s[lt-1])
		case '"', '\'':
			quoted = true
		}
		lt--
	}
	if lt >= 0 && s[lt] == '>' && quoted {
		// That > may be in a quoted value (<password a="/>">).
		lt, named = t.lastLT(i), true
	}
	if lt < 0 || s[lt] != '<' {
		return 0, 0
	}
	ne := nameEnd(s, lt+1)
	own := false // the tag's name is a secret's, if this > ends it
	if local := startTagName(s, lt, ne, i); local != "" {
		own = t.r.keys.secret(decodeKey(local))
	}
	if !own && !named {
		return 0, 0 // most tags: only their name may make them a secret's
	}
	// Without a quote between the < and this >, tagEnd would end the tag
	// here, if it is one.
	gt, tagNamed := -1, named
	if c := s[ne]; !quoted && ne > lt+1 && (c == '>' || c == '/' || isSpace(c)) {
		gt = i
	} else if quoted {
		if t.tagAt != lt+1 {
			t.tagAt = lt + 1
			_, t.tagGT, t.tagNamed = tagEnd(s, lt)
		}
		gt, tagNamed = t.tagGT, t.tagNamed
	}
	if gt != i {
		return 0, 0 // a > in a quoted value, or after the tag
	}
	empty := s[i-1] == '/'
	if !own && (!tagNamed || equalFold(s[lt+1:ne], "input")) {
		return 0, 0
	}
	keyed, idd := false, false // a name or key, an id, is a secret's
	a, b := -1, -1             // from the first value's start to the last one's end
	for k := ne; tagNamed && k < i; {
		if isSpace(s[k]) || s[k] == '/' {
			k++
			continue
		}
		name, va, vb, next := attribute(s, k, i)
		switch {
		case equalFold(name, "name") || equalFold(name, "key") || equalFold(name, "id"):
			if v := s[va:vb]; t.r.keys.secret(v[max(0, len(v)-maxTextKey):]) {
				if equalFold(name, "id") {
					idd = true
				} else {
					keyed = true
				}
			}
		case equalFold(name, "value") || equalFold(name, "content"):
			if a < 0 {
				a = va
			}
			b = vb
		}
		k = next
	}
	if own {
		// Its value attribute and its content are both the secret's:
		// one span from the one to the other (a matcher returns one),
		// the end of the start tag with them.
		switch end := t.closing(lt); {
		case end >= 0 && a >= 0:
			return a, end
		case end >= 0:
			return i + 1, end
		case a >= 0:
			return a, b // <password value="x"/>, or an HTML one left open
		}
		return 0, 0
	}
	switch {
	case a >= 0 && (keyed || idd || t.r.keys.secret(decodeKey(localName(s[lt+1:ne])))):
		return a, b // <password value="x"/> too
	case keyed && !empty:
		if end := t.closing(lt); end >= 0 {
			return i + 1, end
		}
	}
	return 0, 0
}

// attrNamed reports whether an attribute whose name ends in c may be one
// element looks at: name, key, id, value or content (a space: the name is
// before it).
func attrNamed(c byte) bool {
	c |= 0x20
	return c == 'e' || c == 'y' || c == 'd' || c == 't' || isSpace(c)
}

// lastLT returns the index of the last < before s[i], if it is within
// maxStartTag of i, or -1. It goes on from the > it was asked about
// before, which the scan asks about in text order, so that text full of >
// in quotes (">">">) is looked at once, not maxStartTag times.
func (t *textOut) lastLT(i int) int {
	lo := max(0, i-maxStartTag)
	lt := -1
	if t.ltTo > 0 && t.ltTo <= i {
		lo = max(lo, t.ltTo)
		lt = t.lt
	}
	if k := strings.LastIndexByte(t.s[lo:i], '<'); k >= 0 {
		lt = lo + k
	}
	t.lt, t.ltTo = lt, i
	if lt < 0 || i-lt > maxStartTag {
		return -1
	}
	return lt
}

// tagEnd returns where the name of the tag that starts at s[lt] (a < and
// a name) ends, and its >, or -1 if there is none within maxStartTag of
// the <. A quoted attribute value may hold a > (<password hint="/>">), but
// no <: XML has none there, and a tag that ends at the next < keeps the
// work linear (no byte is read by two tags' scans).
//
// named reports whether an attribute's name before its = may be one of
// those element looks at (name, key, id, value, content: they end in e, y,
// d or t), so that tags without one (<a href="x" class="y">) are not
// parsed again.
func tagEnd(s string, lt int) (ne, gt int, named bool) {
	ne = nameEnd(s, lt+1)
	if ne == lt+1 || ne == len(s) || ne-lt > maxStartTag {
		return ne, -1, false
	}
	if c := s[ne]; c != '>' && c != '/' && !isSpace(c) {
		return ne, -1, false // not a tag: no need to look for its >
	}
	end := min(len(s), lt+maxStartTag+1)
	for k := ne; k < end; {
		switch s[k] {
		case '<':
			return ne, -1, false
		case '>':
			return ne, k, named
		case '=':
			named = named || attrNamed(s[k-1])
			for k++; k < end && isSpace(s[k]); k++ {
			}
			if k < end && (s[k] == '"' || s[k] == '\'') {
				v := s[k+1 : end]
				n := strings.IndexByte(v, s[k])
				if n < 0 || strings.IndexByte(v[:n], '<') >= 0 {
					return ne, -1, false
				}
				k += n + 2
			}
			continue
		}
		k++
	}
	return ne, -1, false
}

// startTag returns the > and the local name of the start tag that starts
// at s[lt] (<name>, <ns:name attr="...">; not an empty element's <name/>),
// or -1 if no start tag does: its > is tagEnd's, as element has it.
func startTag(s string, lt int) (gt int, local string) {
	ne, gt, _ := tagEnd(s, lt)
	if gt < 0 {
		return -1, ""
	}
	if local = startTagName(s, lt, ne, gt); local == "" {
		return -1, ""
	}
	return gt, local
}

// startTagName returns the local name of the start tag s[lt:gt+1], the <
// and > of a tag, whose name ends at ne, or "" if it is not a start tag.
// element and listTags both take start tags from it, so the tags the
// nesting is counted with are the ones element matches.
func startTagName(s string, lt, ne, gt int) string {
	if ne == lt+1 || ne != gt && !isSpace(s[ne]) || s[gt-1] == '/' {
		return ""
	}
	return localName(s[lt+1 : ne])
}

// endTagName returns the local name of the end tag that starts at s[j]
// (</name>, </ns:name >), or "" if none does.
func endTagName(s string, j int) string {
	if j+1 >= len(s) || s[j+1] != '/' {
		return ""
	}
	k := nameEnd(s, j+2)
	e := k
	for e < len(s) && isSpace(s[e]) {
		e++
	}
	if k == j+2 || e == len(s) || s[e] != '>' {
		return ""
	}
	return localName(s[j+2 : k])
}

// nameEnd returns where the element name that starts at s[i] ends.
func nameEnd(s string, i int) int {
	for i < len(s) && (keyByte[s[i]] || s[i] == ':') {
		i++
	}
	return i
}

// tagName returns the local name of the start tag at s[lt], known to be one.
func tagName(s string, lt int) string {
	return localName(s[lt+1 : nameEnd(s, lt+1)])
}

// localName is an element's name without its namespace prefix.
func localName(name string) string {
	if k := strings.LastIndexByte(name, ':'); k >= 0 {
		return name[k+1:]
	}
	return name
}

// nameHash hashes a name in lower case (FNV-1a).
func nameHash(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(lower[name[i]])) * 1099511628211
	}
	return h
}

// startTagAt is a start tag of the text: where it starts (its <), and
// where the end tag that closes it starts, or -1 if none does.
type startTagAt struct{ at, end int }

// closing returns where the end tag that closes the start tag at s[lt]
// starts, or -1. The text's start tags are listed once, at the first
// element named as a secret, with the end tag of each (16 bytes a start
// tag; end tags are not kept), so that many start tags cost one pass over
// the text, not one each.
func (t *textOut) closing(lt int) int {
	if t.starts == nil {
		t.starts = listTags(t.s, nameHash)
	}
	// The scan asks in text order: on from the tag it asked for last.
	k := t.start
	if k >= len(t.starts) || t.starts[k].at > lt {
		k, _ = slices.BinarySearchFunc(t.starts, lt, func(a startTagAt, at int) int { return cmp.Compare(a.at, at) })
	}
	for k < len(t.starts) && t.starts[k].at < lt {
		k++
	}
	t.start = k
	if k == len(t.starts) || t.starts[k].at != lt {
		return -1 // not listed: not a start tag
	}
	return t.starts[k].end
}

// listTags lists the start tags of s in order, each with the end tag that
// closes it. One pass in text order keeps a stack of open start tags for
// each local name, in lower case: an end tag closes the innermost open
// one of its name, and other names are not counted. Names that share a
// hash share a stack, and an end tag closes the innermost of its own name
// in it, so a collision costs a longer look, never a wrong end. (hash is
// nameHash; the tests give one that makes every name collide.)
func listTags(s string, hash func(string) uint64) []startTagAt {
	starts := make([]startTagAt, 0, strings.Count(s, "<")-strings.Count(s, "</"))
	var last map[string]int
	return listScope(s, 0, len(s), true, hash, starts, &last)
}

// listScope lists, for listTags, the start tags in s[lo:hi] with the end
// tags in it that close them. A CDATA section or a comment is a scope of
// its own (in the top scope only: sections do not nest): the tags in it
// pair among themselves, so that an end tag in it closes no element
// outside it (<password><![CDATA[a</password>x]]></password> is one
// element), and an element in it is still one
// (<![CDATA[<password>x</password>]]>, a SOAP body quoted whole).
func listScope(s string, lo, hi int, top bool, hash func(string) uint64, starts []startTagAt, last *map[string]int) []startTagAt {
	open := openTags{m: make(map[uint64]int), top: -1}
	var cdata, comment sectionEnd
	if top {
		cdata, comment = sectionEnd{term: "]]>"}, sectionEnd{term: "-->"}
	}
	in := s[:hi] // no tag runs past the scope
	j := lo + strings.IndexByte(s[lo:hi], '<')
	for j >= lo {
		from := j + 1
		section := false
		if top {
			if e := sectionAt(s, j, &cdata, &comment); e > j {
				opener := len("<!--")
				if s[j+2] == '[' {
					opener = len("<![CDATA[")
				}
				// Both terminators, ]]> and -->, are three bytes.
				starts = listScope(s, j+opener, e-3, false, hash, starts, last)
				from, section = e, true
			}
		}
		if section {
			// listed above
		} else if local := endTagName(in, j); local != "" {
			open.use(hash(local))
			open.top = closeTag(s, starts, open.top, local, j)
		} else if gt, local := startTag(in, j); gt >= 0 {
			out := open.use(hash(local))
			open.top = len(starts)
			starts = append(starts, startTagAt{j, out})
			from = gt + 1
		}
		n := strings.IndexByte(s[from:hi], '<')
		if n < 0 {
			break
		}
		j = from + n
	}
	// Start tags still open: no end tag closes them. Each runs to the last
	// end tag of its name after it, if any (fail closed: in
	// <password>SECRET<password>x</password> the first is not a prose
	// placeholder), and is left alone only if there is none.
	open.put()
	for _, k := range open.m {
		if k >= 0 && *last == nil {
			*last = lastEndTags(s)
		}
		for k >= 0 {
			out := starts[k].end
			starts[k].end = -1
			if e, ok := (*last)[strings.ToLower(tagName(s, starts[k].at))]; ok && e > starts[k].at {
				starts[k].end = e
			}
			k = out
		}
	}
	return starts
}

// sectionEnd is where the terminator of a CDATA section or a comment was
// found last: listTags looks for each from increasing places, so keeping
// the last one found (or that there is none after some place) makes the
// searches cover the text once.
type sectionEnd struct {
	term string
	at   int  // the last found, at or after from
	from int  // where it was looked for from
	none bool // none at or after from
}

// after returns where the first terminator at or after s[k] ends, or -1.
func (e *sectionEnd) after(s string, k int) int {
	switch {
	case e.none && k >= e.from:
		return -1
	case e.from > 0 && e.from <= k && k <= e.at:
		return e.at + len(e.term)
	}
	e.from = k
	n := strings.Index(s[k:], e.term)
	if e.none = n < 0; e.none {
		return -1
	}
	e.at = k + n
	return e.at + len(e.term)
}

// sectionAt returns where the CDATA section or comment that starts at s[j]
// ends, or j if none does. One that does not end is no section: the tags
// after it still count (fail closed).
func sectionAt(s string, j int, cdata, comment *sectionEnd) int {
	const open, start = "<![CDATA[", "<!--"
	var e *sectionEnd
	k := j
	switch {
	case strings.HasPrefix(s[j:], open):
		e, k = cdata, j+len(open)
	case strings.HasPrefix(s[j:], start):
		e, k = comment, j+len(start)
	default:
		return j
	}
	if end := e.after(s, k); end > 0 {
		return end
	}
	return j
}

// lastEndTags returns where the last end tag of each local name (in lower
// case) starts: for listTags's start tags that no end tag closes, which
// text that is not well-formed has; well-formed text never gets here.
// End tags in CDATA sections and comments count here (fail closed: in
// <token>x<![CDATA[</token>]]> the token is no placeholder in prose).
func lastEndTags(s string) map[string]int {
	last := make(map[string]int)
	for j := strings.LastIndex(s, "</"); j >= 0; j = strings.LastIndex(s[:j], "</") {
		if local := strings.ToLower(endTagName(s, j)); local != "" {
			if _, seen := last[local]; !seen {
				last[local] = j
			}
		}
	}
	return last
}

// openTags is, for listTags, the innermost open start tag of each name
// hash (an index in its start tags, or -1), the top of a stack linked
// through the end fields of the tags in it (the next one out, or -1).
// The stack of the hash used last is kept out of the map: a text's tags
// mostly repeat a few names, and one map look-up and store a tag was a
// third of listTags.
type openTags struct {
	m   map[uint64]int
	h   uint64
	top int // the top of h's stack
}

// use makes h's stack the one kept out of the map and returns its top.
func (o *openTags) use(h uint64) int {
	if h != o.h {
		o.put()
		o.h, o.top = h, -1
		if k, ok := o.m[h]; ok {
			o.top = k
		}
	}
	return o.top
}

// put stores the stack kept out of the map in it.
func (o *openTags) put() {
	if o.top >= 0 || len(o.m) > 0 {
		o.m[o.h] = o.top
	}
}

// closeTag closes, with the end tag at s[j] of local name local, the
// innermost open start tag of that name in the stack of its hash whose
// top is top, if any, and returns the stack's new top.
func closeTag(s string, starts []startTagAt, top int, local string, j int) int {
	prev, k := -1, top
	for k >= 0 && !strings.EqualFold(tagName(s, starts[k].at), local) {
		prev, k = k, starts[k].end // another name with the same hash
	}
	if k < 0 {
		return top
	}
	out := starts[k].end
	starts[k].end = j
	if prev < 0 {
		return out
	}
	starts[prev].end = out
	return top
}

// input matches the value of an HTML input that is a password field or
// named as a secret key by the key rules (its name or id): <input
// type="password" name="pw" value="hunter2">, <input name=api_key
// value='x'>. Attributes are taken in any order, their names in any case,
// their values in double, single or no quotes; the tag ends at its >, or
// at the next < (a tag holds none but in a quoted value), or where the text
// does (a line cut short), within maxStartTag of its <. Ending at the next
// < keeps the work linear: no byte is read by two inputs' scans. A tag
// that ends before its > (a broken one, a < in a value) still loses the
// values it showed once it showed itself a password field, and a quoted
// value open at the end runs on to its quote (fail closed).
// The trigger is the < rather than the >, so that the value is replaced
// before anything inside it is looked at: a key=value found in a password
// first would leave the text before it in clear. An input with several
// value attributes loses all of them, and what is between.
func (t *textOut) input(i int) (int, int) {
	s := t.s
	if i+len("<input ") > len(s) || !equalFold(s[i+1:i+len("<input")], "input") || !isSpace(s[i+len("<input")]) {
		return 0, 0
	}
	limit := min(len(s), i+maxStartTag)
	end := limit
	if lt := strings.IndexByte(s[i+1:limit], '<'); lt >= 0 {
		end = i + 1 + lt
	}
	secret := false
	a, b := -1, -1 // from the first value's start to the last one's end
	open := false  // the last value is quoted and its quote not closed by end
	k := i + len("<input ")
	for k < end && s[k] != '>' {
		if isSpace(s[k]) || s[k] == '/' {
			k++
			continue
		}
		name, va, vb, next := attribute(s, k, end)
		value := s[va:vb]
		switch {
		case equalFold(name, "type"):
			secret = secret || equalFold(value, "password")
		case equalFold(name, "name") || equalFold(name, "id"):
			secret = secret || t.r.keys.secret(value[max(0, len(value)-maxTextKey):])
		case equalFold(name, "value"):
			if a < 0 {
				a = va
			}
			b = vb
			open = vb == end && va > 0 && (s[va-1] == '"' || s[va-1] == '\'')
		}
		k = next
	}
	if !secret || a < 0 || a >= b && !open {
		return 0, 0
	}
	if open && end < limit {
		// value="a<b": the quoted value runs on past the <.
		q := s[a-1]
		if c := strings.IndexByte(s[end:limit], q); c >= 0 {
			b = end + c
		} else {
			b = limit
		}
	}
	return a, b
}

// attribute reads the attribute of a start tag that starts at s[k], not
// past end: its name, where its value starts and ends (va == vb without
// one) and where the next attribute may start. An unquoted value ends at
// a space, > or /> (type=password/> is a password field to whoever wrote
// it, if not to HTML), a quoted one at its quote (or at end).
func attribute(s string, k, end int) (name string, va, vb, next int) {
	n := k
	for k++; k < end && !isSpace(s[k]) && strings.IndexByte("=>/<", s[k]) < 0; k++ {
	}
	name = s[n:k]
	for k < end && isSpace(s[k]) {
		k++
	}
	if k == end || s[k] != '=' {
		return name, k, k, k
	}
	k++
	for k < end && isSpace(s[k]) {
		k++
	}
	if k < end && (s[k] == '"' || s[k] == '\'') {
		va = k + 1
		vb = va + strings.IndexByte(s[va:end], s[k])
		if vb < va {
			return name, va, end, end
		}
		return name, va, vb, vb + 1
	}
	va = k
	for k < end && !isSpace(s[k]) && s[k] != '>' && !(s[k] == '/' && k+1 < end && s[k+1] == '>') {
		k++
	}
	return name, va, k, k
}

// authSchemes are the HTTP authentication schemes whose name a value
// under a secret key keeps (Authorization: Negotiate [REDACTED]), in lower
// case.
var authSchemes = []string{
	"bearer", "basic", "token", "negotiate", "ntlm", "kerberos", "digest",
	"ssws", "bot", "apikey", "aws4-hmac-sha256", "dpop", "oauth", "mac",
	"hoba", "mutual", "vapid", "scram-sha-1", "scram-sha-256", "splunk",
	"geniekey",
}

func isScheme(w string) bool {
	if len(w) < 3 || len(w) > len("aws4-hmac-sha256") {
		return false
	}
	for _, sc := range authSchemes {
		if equalFold(w, sc) {
			return true
		}
	}
	return false
}

// skipScheme returns where the credentials start in the value s[a:b] (a
// quoted one, or a header's to the end of its line).
func skipScheme(s string, a, b int) int {
	c := a
	for c < b && c-a <= len("aws4-hmac-sha256") && s[c] != ' ' && s[c] != '\t' {
		c++
	}
	if c == b || !isScheme(s[a:c]) {
		return a
	}
	for c < b && (s[c] == ' ' || s[c] == '\t') {
		c++
	}
	if c == b {
		return a
	}
	return c
}

// closeQuote returns the index of the quote q that ends the string starting
// at s[a], or len(s) if it does not end.
func closeQuote(s string, a int, q byte) int {
	for i := a; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case q:
			return i
		}
	}
	return len(s)
}

// closeDoubled is closeQuote where a doubled quote q is one quote of the
// value, as SQL escapes it (and YAML, in single quotes).
func closeDoubled(s string, a int, q byte) int {
	b := closeQuote(s, a, q)
	for b+1 < len(s) && s[b+1] == q {
		b = closeQuote(s, b+2, q)
	}
	return b
}

// closeBracket returns the index after the bracket that closes the one at
// s[a], or len(s).
func closeBracket(s string, a int) int {
	depth := 0
	for i := a; i < len(s); i++ {
		switch s[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		case '"':
			i = closeQuote(s, i+1, '"')
		}
	}
	return len(s)
}

// userPatterns applies Options.Patterns to s.
func (r *Redactor) userPatterns(s string) (string, int) {
	n := 0
	for _, p := range r.patterns {
		if !strings.Contains(s, p.literal) {
			continue
		}
		ms := p.re.FindAllStringSubmatchIndex(s, -1)
		if ms == nil {
			continue
		}
		var b strings.Builder
		last := 0
		for _, m := range ms {
			lo, hi := m[2*p.group], m[2*p.group+1]
			if lo < last || lo >= hi || isPlaceholder(s[lo:hi]) {
				continue
			}
			b.WriteString(s[last:lo])
			b.WriteString(r.replacement(s[lo:hi]))
			last = hi
			n++
		}
		if last > 0 {
			b.WriteString(s[last:])
			s = b.String()
		}
	}
	return s, n
}
