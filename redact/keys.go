package redact

import (
	"fmt"
	"strings"
)

// Key rules.
//
// A key is split into lower-case words at separators (anything but letters
// and digits) and at camelCase boundaries: "X-Api-Key", "x_api_key",
// "xApiKey" and "XAPIKey" are all [x api key]. A rule is a word sequence;
// it matches a key whose words END with it. Matching only at the end is
// what keeps names of secrets readable without an allow list of name
// suffixes: in password_policy, token_type, key_id, secret_name,
// token_count or credential_key the secret word is not last, so the value
// is a policy, a type, an id, a name, a count or the name of a key, not a
// credential.
//
// Two refinements:
//   - trailing qualifier words that say which form or copy of the same
//     value a key holds (value, raw, b64, new, 2, v2, ...) are ignored, so
//     credential_value, password_new, api_key_b64 and token2 are secrets;
//   - a one-word rule of five or more letters also matches at the end of a
//     word, for keys glued together without separators (dbpassword,
//     accesstoken, clientsecret).

// defaultKeys are the default key rules.
var defaultKeys = []string{
	// passwords; pass and pw, like pwd, only as the last word (first_pass,
	// pass_count, bypass and compass are not secrets)
	"password", "passwords", "passwd", "pwd", "pass", "pw", "passphrase", "passcode",
	// the same in two words (PassWord, pass_phrase)
	"pass word", "pass phrase", "pass code",
	// generic secrets and tokens (access_token, refresh_token, id_token,
	// client_secret, x-auth-token, aws_session_token, ...)
	"secret", "secrets", "token", "jwt", "bearer", "otp", "totp",
	// lists of tokens; a bare "tokens" is a count (max_tokens, input_tokens)
	"access tokens", "refresh tokens", "auth tokens", "api tokens", "id tokens", "session tokens",
	// one-time and recovery codes (otp_code, mfa_code, recovery_codes)
	"otp code", "mfa code", "recovery code", "recovery codes", "backup codes", "verification code",
	// API and private keys; a bare "key" is too often a name to be a rule
	"apikey", "api key", "app key", "auth key", "access key", "accesskey",
	"secret key", "secretkey", "private key", "privatekey", "signing key",
	"encryption key", "master key", "session key", "hmac key",
	"api keys", "apikeys", "private keys", "secret keys", "access keys", "signing keys",
	// Azure's x-functions-key and Ocp-Apim-Subscription-Key
	"functions key", "subscription key",
	// HTTP authentication and sessions (proxy-authorization, set-cookie)
	"auth", "authorization", "cookie", "cookies",
	// the value as its header carries it (authorization_header); a header
	// named after another credential (api_key_header, csrf_token_header)
	// is the name of a header, not a secret
	"auth header", "authorization header", "cookie header",
	"session", "session id", "sessionid", "sessid",
	// credentials as a whole (credential_value, aws credentials, creds)
	"credential", "credentials", "creds",
	// signatures that grant access (presigned URLs, SAS tokens)
	"signature", "sig",
}

// DefaultKeys returns the default key rules, in the form Options.Keys takes.
func DefaultKeys() []string { return append([]string(nil), defaultKeys...) }

// qualifiers are trailing words that do not change what a key holds.
// Words that are all digits, and words ending in digits whose letters are a
// qualifier (v2), count too.
var qualifiers = []string{
	"value", "val", "raw", "plain", "plaintext", "clear", "cleartext",
	"str", "string", "bytes", "data", "content", "contents", "text",
	"b64", "base64", "hex", "enc", "encoded", "encrypted",
	"new", "old", "current", "cur", "curr", "prev", "previous", "next",
	"confirm", "confirmation", "again", "repeat", "input", "v",
}

// Byte classes for splitting keys into words.
const (
	sepc = iota
	lowerc
	upperc
	digitc
)

var (
	class [256]uint8
	lower [256]byte
)

func init() {
	for i := range 256 {
		c := byte(i)
		lower[i] = c
		switch {
		case 'a' <= c && c <= 'z', c >= 0x80:
			class[i] = lowerc
		case 'A' <= c && c <= 'Z':
			class[i] = upperc
			lower[i] = c + 'a' - 'A'
		case '0' <= c && c <= '9':
			class[i] = digitc
		}
	}
}

// maxWords bounds the words of a key that are looked at; rules match at
// the end, so the first words of very long keys do not matter.
const maxWords = 12

type span struct{ lo, hi int }

// boundaryBefore reports whether a word starts at key[i], given that
// key[i-1] and key[i] are both word bytes: aB, 2B, and the K of APIKey.
func boundaryBefore(key string, i int) bool {
	if class[key[i]] != upperc {
		return false
	}
	if class[key[i-1]] != upperc {
		return true
	}
	return i+1 < len(key) && class[key[i+1]] == lowerc
}

// splitWords stores the spans of the last maxWords words of key in ws and
// returns how many there are.
func splitWords(key string, ws *[maxWords]span) int {
	n, start := 0, -1
	push := func(lo, hi int) {
		if n == maxWords {
			copy(ws[:], ws[1:])
			n--
		}
		ws[n] = span{lo, hi}
		n++
	}
	for i := 0; i < len(key); i++ {
		switch {
		case class[key[i]] == sepc:
			if start >= 0 {
				push(start, i)
				start = -1
			}
		case start < 0:
			start = i
		case boundaryBefore(key, i):
			push(start, i)
			start = i
		}
	}
	if start >= 0 {
		push(start, len(key))
	}
	return n
}

// lastWord returns the span of the last word of key.
func lastWord(key string) (lo, hi int) {
	hi = len(key)
	for hi > 0 && class[key[hi-1]] == sepc {
		hi--
	}
	if hi == 0 {
		return 0, 0
	}
	lo = hi - 1
	for lo > 0 && class[key[lo-1]] != sepc && !boundaryBefore(key, lo) {
		lo--
	}
	return lo, hi
}

func trimDigits(w string) string {
	i := len(w)
	for i > 0 && class[w[i-1]] == digitc {
		i--
	}
	return w[:i]
}

// equalFold reports whether w equals the lower-case word lw, ignoring the
// case of ASCII letters in w.
func equalFold(w, lw string) bool {
	if len(w) != len(lw) {
		return false
	}
	for i := 0; i < len(w); i++ {
		if lower[w[i]] != lw[i] {
			return false
		}
	}
	return true
}

// wordEq reports whether key word w matches rule word lw, ignoring digits
// at the end of w (password2, token1).
func wordEq(w, lw string) bool {
	if equalFold(w, lw) {
		return true
	}
	t := trimDigits(w)
	return len(t) != len(w) && t != "" && equalFold(t, lw)
}

type rule struct {
	words []string
	glued bool
}

// minGlued is the shortest one-word rule that also matches glued keys;
// shorter ones (pwd, auth, jwt) would match inside too many names.
const minGlued = 5

// keyMatcher decides whether a key is secret in steps of rising cost. The
// first looks at the last three bytes of the key (there is a bit for each
// ending of a rule word or qualifier) and settles most keys with a few
// loads. The second finds the last word, and the word before it for
// two-word rules, and checks their length and letters against filters.
// Keys left go to the exact step, which splits the whole key into words.
// None of them allocates.
type keyMatcher struct {
	rules  []rule
	byLast map[string][]int // lower-case last word -> rules (not glued)
	glued  []string         // words of glued rules
	quals  map[string]bool
	allow  [][]string

	// ends has a bit for the last three bytes of each rule's last word and
	// of each qualifier, ends2 and ends1 for words of two bytes and one.
	// Looking up a key's last bytes rejects most keys in a few loads,
	// without a loop.
	ends      [64]uint64
	lowEnds   [lowEndsWords]uint64 // ruledOut3's table, see lowEnd
	ends2     [16]uint64
	pairEnds2 [16]uint64
	ends1     uint64
	ends4     [ends4Words]uint64 // secretRest's first table, see end4

	last wordFilter   // last words of one-word and longer rules, qualifiers
	pair wordFilter   // last words of two-word rules
	prev wordFilter   // first words of two-word rules
	tail [1024]uint64 // bit set for the last two bytes of each glued word
}

// end3 hashes three lower-case bytes (the & 31 makes upper-case the same).
func end3(a, b, c byte) uint {
	return ((uint(a&31)*37+uint(b&31))*37 + uint(c&31)) & 4095
}

// low5 maps each byte of class lowerc to a code from 1 to 27 (a to z, and
// 27 for all bytes from 0x80 on), and every other byte to 0.
var low5 [256]uint8

func init() {
	for i := range 256 {
		switch c := byte(i); {
		case 'a' <= c && c <= 'z':
			low5[i] = c - 'a' + 1
		case class[i] == lowerc:
			low5[i] = 27
		}
	}
}

// lowEnd is the bit of three bytes in keyMatcher.lowEnds: their low5 codes
// side by side. Unlike end3 it does not hash, so, indexed with it, lowEnds
// has no false hits among lower-case letters, and the code 0 marks the
// endings that are not all lower-case: their bits are all set, and such
// keys go on to the steps that find word boundaries.
func lowEnd(a, b, c byte) uint { return uint(low5[a])<<10 | uint(low5[b])<<5 | uint(low5[c]) }

const lowEndsWords = 1 << 15 / 64

// ends4 holds a bit for the last four bytes of each rule word, glued rule
// word and qualifier of four bytes or more, and for each such word of
// three bytes preceded by a separator. Four lower-case letters (the first
// may be upper-case) hold no word boundary but maybe before the first, so
// the last word of a key that ends in them is at least those four, and
// only a word that ends in the same four can match it. Unlike lowEnds's
// three, four tell client from current and session from version.
//
// The bit of four bytes is a hash of their letter codes (the low five
// bits of each, the same for either case), packed as a little-endian
// uint32 with the last byte on top: one load of the key's tail, a mask and
// a multiply. A zero code stands for a separator.
const (
	ends4Bits  = 13
	ends4Words = 1 << ends4Bits / 64
)

func end4(codes uint32) uint { return uint(codes*0x9E3779B1) >> (32 - ends4Bits) }

// tail4 returns the last four bytes of key, the last on top; len(key) >= 4.
func tail4(key string) uint32 {
	n := len(key)
	return uint32(key[n-4]) | uint32(key[n-3])<<8 | uint32(key[n-2])<<16 | uint32(key[n-1])<<24
}

// tail3 is tail4 of a separator and the last three bytes of key; len(key) >= 3.
func tail3(key string) uint32 {
	n := len(key)
	return uint32(key[n-3])<<8 | uint32(key[n-2])<<16 | uint32(key[n-1])<<24
}

// letters4 reports whether the bytes of y are all ASCII letters, the last
// three lower-case (set 0x20 in the first to let it be either).
func letters4(y uint32) bool {
	t := y | 0x80808080
	return (t-0x61616161)&^(t-0x7b7b7b7b)&^y&0x80808080 == 0x80808080
}

// addEnd4 sets the bit of the lower-case word w.
func (m *keyMatcher) addEnd4(w string) {
	var codes uint32
	switch n := len(w); {
	case n >= 4:
		codes = tail4(w) & 0x1f1f1f1f
	case n == 3:
		codes = tail3(w) & 0x1f1f1f1f
	default:
		return // a key ending in three lower-case letters never matches it
	}
	i := end4(codes)
	m.ends4[i/64] |= 1 << (i % 64)
}

func end2(b, c byte) uint { return uint(lower[b]&31)<<5 | uint(lower[c]&31) }

func (m *keyMatcher) addEnd(w string, pair bool) {
	switch n := len(w); {
	case n >= 3:
		i := end3(w[n-3], w[n-2], w[n-1])
		m.ends[i/64] |= 1 << (i % 64)
		i = lowEnd(w[n-3], w[n-2], w[n-1])
		m.lowEnds[i/64] |= 1 << (i % 64)
	case n == 2 && pair:
		i := end2(w[0], w[1])
		m.pairEnds2[i/64] |= 1 << (i % 64)
	case n == 2:
		i := end2(w[0], w[1])
		m.ends2[i/64] |= 1 << (i % 64)
	case n == 1:
		m.ends1 |= 1 << (lower[w[0]] & 31)
	}
}

// info holds flags for each byte that the fast steps of key matching and
// of the text scan test. They share one table so that checking a clean
// record touches few cache lines: a record that follows a write(2) finds
// little of the redactor in the cache.
var info [256]uint8

const (
	infoTrigger = 1 << iota // a matcher in text.go starts at this byte (bit 0: next builds masks of it)
	infoLower               // class lowerc
)

func init() {
	for i := range 256 {
		if class[i] == lowerc {
			info[i] |= infoLower
		}
	}
}

// quickShort is the fast step for keys whose last word may be shorter
// than three bytes or end in digits. False is final.
func (m *keyMatcher) quickShort(key string) bool {
	n := len(key)
	if n == 0 {
		return false
	}
	c0 := key[n-1]
	if k := class[c0]; k == sepc || k == digitc {
		return true // trailing separators or digits: left to the full check
	}
	if n == 1 || class[key[n-2]] == sepc || boundaryBefore(key, n-1) {
		return m.ends1&(1<<(lower[c0]&31)) != 0
	}
	c1 := key[n-2]
	if class[c1] == digitc {
		return true
	}
	if n == 2 || class[key[n-3]] == sepc || boundaryBefore(key, n-2) {
		i := end2(c1, c0)
		if m.ends2[i/64]&(1<<(i%64)) != 0 {
			return true
		}
		// The last word of a two-word rule ("id" of session_id) needs a
		// word before it.
		return n > 2 && m.pairEnds2[i/64]&(1<<(i%64)) != 0
	}
	c2 := key[n-3]
	if class[c2] == digitc {
		return true
	}
	i := end3(c2, c1, c0)
	return m.ends[i/64]&(1<<(i%64)) != 0
}

// wordFilter holds bits for the length, first, second and last byte of a
// set of lower-case words. A word that is in the set always finds its
// bits; others rarely do.
type wordFilter struct {
	first  [32][32]uint32 // [len][first byte] bit last byte
	second [32][32]uint32 // [len][second byte] bit last byte
}

func (f *wordFilter) add(w string) {
	n, l := len(w)&31, uint32(1)<<(lower[w[len(w)-1]]&31)
	f.first[n][lower[w[0]]&31] |= l
	f.second[n][lower[w[min(1, len(w)-1)]]&31] |= l
}

func (f *wordFilter) has(w string) bool {
	n, l := len(w)&31, uint32(1)<<(lower[w[len(w)-1]]&31)
	return f.first[n][lower[w[0]]&31]&l != 0 && f.second[n][lower[w[min(1, len(w)-1)]]&31]&l != 0
}

func tailIndex(w string) uint {
	return uint(lower[w[len(w)-2]])<<8 | uint(lower[w[len(w)-1]])
}

func normalize(s string) []string {
	var ws [maxWords]span
	n := splitWords(s, &ws)
	out := make([]string, n)
	for i, sp := range ws[:n] {
		b := []byte(s[sp.lo:sp.hi])
		for j, c := range b {
			b[j] = lower[c]
		}
		out[i] = string(b)
	}
	return out
}

func (m *keyMatcher) init(rules, allow []string) error {
	for i := range uint(1 << 15) {
		if i>>10 == 0 || i>>5&31 == 0 || i&31 == 0 {
			m.lowEnds[i/64] |= 1 << (i % 64)
		}
	}
	seen := map[string]bool{}
	m.byLast = map[string][]int{}
	m.quals = map[string]bool{}
	for _, s := range rules {
		ws := normalize(s)
		if len(ws) == 0 {
			return fmt.Errorf("redact: key rule %q has no letters or digits", s)
		}
		id := strings.Join(ws, " ")
		if seen[id] {
			continue
		}
		seen[id] = true
		r := rule{words: ws, glued: len(ws) == 1 && len(wordKey(ws[0])) >= minGlued}
		i := len(m.rules)
		m.rules = append(m.rules, r)
		lw := wordKey(ws[len(ws)-1])
		m.byLast[lw] = append(m.byLast[lw], i)
		m.addEnd(lw, len(ws) == 2)
		m.addEnd4(lw)
		switch len(ws) {
		case 2:
			m.pair.add(lw)
			m.prev.add(wordKey(ws[0]))
		default:
			m.last.add(lw)
		}
		if r.glued {
			m.glued = append(m.glued, lw)
			t := tailIndex(lw)
			m.tail[t/64] |= 1 << (t % 64)
		}
	}
	for _, s := range allow {
		ws := normalize(s)
		if len(ws) == 0 {
			return fmt.Errorf("redact: allowed key %q has no letters or digits", s)
		}
		m.allow = append(m.allow, ws)
	}
	for _, q := range qualifiers {
		m.quals[wordKey(q)] = true
		m.last.add(wordKey(q))
		m.addEnd(wordKey(q), false)
		m.addEnd4(wordKey(q))
	}
	return nil
}

// wordKey is the form a word is looked up by: without trailing digits,
// unless it is all digits.
func wordKey(w string) string {
	if t := trimDigits(w); t != "" {
		return t
	}
	return w
}

// secret reports whether the value under key is a secret by the key rules.
// It does not allocate.
func (m *keyMatcher) secret(key string) bool {
	return !m.ruledOut(key) && m.secretRest(key)
}

// ruledOut is the first step of secret, which settles most keys with a
// load of their last four bytes and one of a table (ends4), or, when those
// are not four letters, of three (ruledOut3). A filter hit only sends the
// key on, so a false hit costs time, never a missed secret. cleanAttr,
// where keys are checked most, has the four-letter step written out.
func (m *keyMatcher) ruledOut(key string) bool {
	if len(key) >= 4 {
		if y := tail4(key) | 0x20; letters4(y) {
			i := end4(y & 0x1f1f1f1f)
			return m.ends4[i/64]&(1<<(i%64)) == 0
		}
	}
	return m.ruledOut3(key)
}

// ruledOut3 is ruledOut for keys whose last four bytes are not letters.
// The last word of a key that ends in three lower-case letters has at
// least those three (a word boundary needs an upper-case byte), and if no
// rule word or qualifier ends in them the key is not secret.
func (m *keyMatcher) ruledOut3(key string) bool {
	if len(key) < 3 {
		return false
	}
	k := key[len(key)-3:]
	i := lowEnd(k[0], k[1], k[2])
	return m.lowEnds[i/64]&(1<<(i%64)) == 0
}

// secretRest is secret for a key that ruledOut let through.
func (m *keyMatcher) secretRest(key string) bool {
	if n := len(key); n >= 3 && info[key[n-1]]&info[key[n-2]]&info[key[n-3]]&infoLower != 0 {
		// The last word is exactly these three bytes (ruledOut settled
		// those of four letters or more): no rule word or qualifier of
		// three is the same, so the key is not secret.
		if n == 3 || class[key[n-4]] == sepc {
			if i := end4(tail3(key) & 0x1f1f1f1f); m.ends4[i/64]&(1<<(i%64)) == 0 {
				return false
			}
		}
		return m.secretWords(key)
	}
	return m.quickShort(key) && m.secretWords(key)
}

func (m *keyMatcher) secretWords(key string) bool {
	i := len(key) - 1
	for i >= 0 && class[key[i]] == sepc {
		i--
	}
	if i < 0 {
		return false // no word at all
	}
	for i >= 0 && class[key[i]] == digitc {
		i--
	}
	if i < 0 || class[key[i]] == sepc {
		return m.match(key) // all digits: a qualifier
	}
	end := i + 1
	// Back to the start of the word: boundaryBefore, with the class of the
	// current byte kept from the previous step.
	c := class[key[i]]
	for i > 0 {
		p := class[key[i-1]]
		if p == sepc || c == upperc && (p != upperc || i+1 < len(key) && class[key[i+1]] == lowerc) {
			break
		}
		i--
		c = p
	}
	w := key[i:end]
	if m.last.has(w) {
		return m.match(key)
	}
	if len(w) > minGlued {
		if t := tailIndex(w); m.tail[t/64]&(1<<(t%64)) != 0 {
			for _, g := range m.glued {
				if len(w) > len(g) && equalFold(w[len(w)-len(g):], g) {
					return m.match(key)
				}
			}
		}
	}
	if !m.pair.has(w) {
		return false
	}
	plo, phi := lastWord(key[:i])
	if plo == phi || !m.prev.has(wordKey(key[plo:phi])) {
		return false
	}
	return m.match(key)
}

// match is the exact step.
func (m *keyMatcher) match(key string) bool {
	var ws [maxWords]span
	n := splitWords(key, &ws)
	for k := n; k > 0; k-- {
		if m.matchWords(key, ws[:k]) {
			return !m.allowed(key, ws[:n])
		}
		if !m.qualifier(key[ws[k-1].lo:ws[k-1].hi]) {
			break
		}
	}
	return false
}

// lowerKey writes the lookup form of w into buf; ok is false if it does
// not fit, in which case no rule word can equal it. (Callers index maps
// with string(b) directly, which does not allocate.)
func lowerKey(buf *[32]byte, w string) (b []byte, ok bool) {
	w = wordKey(w)
	if len(w) > len(buf) {
		return nil, false
	}
	for i := 0; i < len(w); i++ {
		buf[i] = lower[w[i]]
	}
	return buf[:len(w)], true
}

func (m *keyMatcher) matchWords(key string, ws []span) bool {
	last := ws[len(ws)-1]
	lw := key[last.lo:last.hi]
	for _, g := range m.glued {
		if t := wordKey(lw); len(t) >= len(g) && equalFold(t[len(t)-len(g):], g) {
			return true
		}
	}
	var buf [32]byte
	k, ok := lowerKey(&buf, lw)
	if !ok {
		return false
	}
	for _, i := range m.byLast[string(k)] {
		r := &m.rules[i]
		if len(r.words) > len(ws) {
			continue
		}
		off := len(ws) - len(r.words)
		ok := true
		for j, rw := range r.words {
			sp := ws[off+j]
			if !wordEq(key[sp.lo:sp.hi], rw) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (m *keyMatcher) qualifier(w string) bool {
	if trimDigits(w) == "" {
		return true
	}
	var buf [32]byte
	k, ok := lowerKey(&buf, w)
	return ok && m.quals[string(k)]
}

func (m *keyMatcher) allowed(key string, ws []span) bool {
	for _, a := range m.allow {
		if len(a) != len(ws) {
			continue
		}
		ok := true
		for j, aw := range a {
			if !equalFold(key[ws[j].lo:ws[j].hi], aw) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
