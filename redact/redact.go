// Package redact removes secret values from slog records while keeping their keys.
//
// A [Redactor] finds secrets three ways:
//
//   - by key: the value of an attribute, map entry or struct field whose
//     key names a credential (password, api_key, Authorization, ...) is
//     replaced as a whole, while the key itself stays in the record;
//   - by type: values of type [Secret] never render their content;
//   - by value pattern: credentials embedded in text (bearer tokens, JWTs,
//     AWS key ids, GitHub and Slack tokens, PEM private keys, URL
//     passwords, key=value pairs with secret keys, also percent-encoded,
//     in JSON and as XML elements) are cut out of strings,
//     error messages and fmt.Stringer results, keeping the text around them.
//
// It walks groups, LogValuers, errors, and maps, slices, structs and
// pointers passed through slog.Any. It fails closed: a value it cannot
// inspect (a method that panics, a cycle, nesting deeper than
// Options.MaxDepth) is replaced, not passed through.
//
// Use it as a wrapper ([Redactor.Handler]), as a ReplaceAttr function
// ([Redactor.ReplaceAttr]), or attribute by attribute from another handler
// ([Redactor.Attr], [Redactor.String]).
package redact

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"log/slog"
	"regexp"
	"sync"
)

// Redacted replaces a secret in [Replace] mode.
const Redacted = "[REDACTED]"

// RedactedKey is the key of the attribute [Redactor.Handler] adds to a record
// from which it removed secrets; its value is how many.
const RedactedKey = "redacted"

// DefaultMaxDepth is the nesting depth beyond which values are redacted
// unseen when Options.MaxDepth is zero.
const DefaultMaxDepth = 16

// Mode selects what a secret is replaced with.
type Mode int

const (
	// Replace puts [Redacted] in place of each secret.
	Replace Mode = iota
	// Fingerprint puts "hmac-sha256:" and the first 16 hex digits of
	// HMAC-SHA-256(Options.FingerprintKey, secret) in place of each secret,
	// so that equal secrets can be correlated across records (as Vault's
	// audit log does) without being revealed.
	Fingerprint
)

// String returns "replace" or "fingerprint".
func (m Mode) String() string {
	switch m {
	case Replace:
		return "replace"
	case Fingerprint:
		return "fingerprint"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// MinFingerprintKeyLen is the shortest Options.FingerprintKey New accepts.
// Fingerprints of low-entropy secrets such as passwords are only as hard
// to reverse as the key is to guess.
const MinFingerprintKeyLen = 16

// Options configures a [Redactor]. The zero value gives the default rules in
// [Replace] mode.
type Options struct {
	Mode Mode
	// FingerprintKey is the HMAC key for [Fingerprint] mode, at least
	// MinFingerprintKeyLen bytes. Keep it secret and stable: rotating it
	// breaks correlation with older records.
	FingerprintKey []byte

	// Keys adds key rules. An entry is split into words like a key is
	// (see DefaultKeys) and matches keys that end with those words.
	Keys []string
	// AllowKeys lists keys whose values are never redacted by key rules,
	// compared word by word ignoring case and separators ("tokenCount"
	// allows "token_count"). Value patterns still apply to their values.
	AllowKeys []string
	// Patterns adds value patterns for secrets the built-in detectors do
	// not know.
	Patterns []Pattern
	// NoDefaultRules drops the default key rules; the built-in value
	// patterns stay. To remove a single default rule, set it and pass the
	// rest of DefaultKeys() in Keys.
	NoDefaultRules bool
	// MaxDepth bounds how deep groups, maps, slices and structs are walked;
	// a value nested deeper is redacted unseen. Zero means DefaultMaxDepth.
	MaxDepth int
}

// Pattern describes a secret that can appear inside text.
type Pattern struct {
	// Literal is a string that every match contains. Text without it is
	// not searched with Regexp, which keeps clean text cheap. Required.
	Literal string
	// Regexp matches the secret. If it has a group named "secret", only
	// that group is replaced; otherwise the whole match is. Required.
	Regexp *regexp.Regexp
}

// A Redactor removes secrets from slog attributes and text. It is safe for
// concurrent use. It remembers which string literals of the program (keys,
// messages, constant values) it found clean, in 4 KiB of its own, so that
// they are checked once: make one per configuration, not one per record.
type Redactor struct {
	mode     Mode
	fpKey    []byte
	keys     keyMatcher
	patterns []userPattern
	maxDepth int
	minText  int // shorter text cannot hold a secret
	lits     literals

	types sync.Map  // reflect.Type -> *typeInfo
	macs  sync.Pool // hash.Hash, HMAC-SHA-256 keyed with fpKey
}

type userPattern struct {
	literal string
	re      *regexp.Regexp
	group   int // submatch that is the secret
}

// New returns a Redactor configured by opts, or an error when opts are
// inconsistent (Fingerprint mode without a key, an empty rule, a pattern
// without a literal or regexp, ...).
func New(opts Options) (*Redactor, error) {
	r := &Redactor{mode: opts.Mode, maxDepth: opts.MaxDepth}
	r.lits.init()
	switch opts.Mode {
	case Replace:
	case Fingerprint:
		if len(opts.FingerprintKey) < MinFingerprintKeyLen {
			return nil, fmt.Errorf("redact: Fingerprint mode needs a FingerprintKey of at least %d bytes, have %d", MinFingerprintKeyLen, len(opts.FingerprintKey))
		}
		// Copied so that a caller reusing its buffer cannot change fingerprints.
		r.fpKey = append([]byte(nil), opts.FingerprintKey...)
		r.macs.New = func() any { return hmac.New(sha256.New, r.fpKey) }
	default:
		return nil, fmt.Errorf("redact: unknown Mode %d", int(opts.Mode))
	}
	switch {
	case opts.MaxDepth == 0:
		r.maxDepth = DefaultMaxDepth
	case opts.MaxDepth < 0:
		return nil, fmt.Errorf("redact: negative MaxDepth %d", opts.MaxDepth)
	}
	var rules []string
	if !opts.NoDefaultRules {
		rules = append(rules, defaultKeys...)
	}
	rules = append(rules, opts.Keys...)
	if err := r.keys.init(rules, opts.AllowKeys); err != nil {
		return nil, err
	}
	// The shortest built-in match is key=v with the shortest rule word, or
	// //:p@ in a URL; user patterns can match anything.
	r.minText = len("//:p@")
	for _, rl := range r.keys.rules {
		r.minText = min(r.minText, len(rl.words[len(rl.words)-1])+2)
	}
	if len(opts.Patterns) > 0 {
		r.minText = 0
	}
	for i, p := range opts.Patterns {
		if p.Literal == "" || p.Regexp == nil {
			return nil, fmt.Errorf("redact: Patterns[%d] needs both Literal and Regexp", i)
		}
		up := userPattern{literal: p.Literal, re: p.Regexp}
		if g := p.Regexp.SubexpIndex("secret"); g > 0 {
			up.group = g
		}
		r.patterns = append(r.patterns, up)
	}
	return r, nil
}

var defaultRedactor = sync.OnceValue(func() *Redactor {
	r, err := New(Options{})
	if err != nil {
		panic(err)
	}
	return r
})

// Default returns a Redactor with the default rules in [Replace] mode. It is
// shared; Redactors are immutable.
func Default() *Redactor { return defaultRedactor() }

// Attr returns a with secret values removed and the number of values
// redacted. It never mutates the caller's values: what changes is copied.
// The result may differ from a even when the count is zero (LogValuers are
// resolved, values that could render differently are canonicalised), so
// always use it. An Attr of kind string, number, bool, duration or time, or
// a group of those, that holds nothing to redact is returned as is without
// allocating. Methods of the values (String, Error, MarshalJSON, ...) may be
// called more than once.
func (r *Redactor) Attr(a slog.Attr) (slog.Attr, int) {
	if r.cleanAttr(a, 0) {
		return a, 0
	}
	w := walker{r: r}
	out, _ := w.attr(a, 0, false)
	w.release()
	return out, w.n
}

// SecretKey reports whether the key rules make the value under key a
// secret. A handler that opens groups itself (WithGroup) uses it on the
// group's name: what is logged inside a group named a secret key is
// redacted with [Redactor.SecretAttr].
func (r *Redactor) SecretKey(key string) bool { return r.keys.secret(key) }

// SecretAttr is Attr for an attribute inside a group whose name is a secret
// key: its value is redacted whatever its own key says; a group keeps its
// keys and has each of its values redacted.
func (r *Redactor) SecretAttr(a slog.Attr) (slog.Attr, int) {
	w := walker{r: r}
	out, _ := w.attr(a, 0, true)
	w.release()
	return out, w.n
}

// Clean reports whether Attr would return a as is, with nothing redacted:
// a string, number, bool, duration or time (or a group of those) without
// secrets, or a value of kind Any (an error, a struct, ...) in which the
// redactor finds none; a LogValuer is never clean. When Clean is false a
// handler must log what Attr returns, even when it counts zero: a
// LogValuer resolved a second time need not be what the redactor
// inspected. (A clean value of kind Any is rendered again by whatever logs
// it; see the README on values whose text changes between calls.)
//
//go:noinline
func (r *Redactor) Clean(a slog.Attr) bool {
	// Not inlined: an inlined call copies a into a new variable, and the
	// compiler's copy of a 40-byte Attr (overlapping 16-byte moves) read
	// back word by word stalls on store forwarding, which cost the loop
	// over a record's attributes more than this call does.
	return r.cleanAttr(a, 0)
}

// CleanRecord reports whether rec holds nothing to redact: String finds
// nothing in its message and Clean holds for each of its attributes. Such
// a record can be passed on as it is.
func (r *Redactor) CleanRecord(rec slog.Record) bool {
	if r.hasSecret(rec.Message) {
		return false
	}
	clean := true
	rec.Attrs(func(a slog.Attr) bool {
		clean = r.cleanAttr(a, 0)
		return clean
	})
	return clean
}

// String returns s with secrets found by value patterns replaced, and the
// number replaced. Use it for record messages and other free text. Text
// without a candidate costs one scan and no allocation.
func (r *Redactor) String(s string) (string, int) {
	return r.text(s)
}

// ReplaceAttr redacts a; it has the signature of slog.HandlerOptions.ReplaceAttr.
// A group on the path whose name is a secret key redacts a as a whole. It
// cannot report counts; use [Redactor.Handler] for that.
func (r *Redactor) ReplaceAttr(groups []string, a slog.Attr) slog.Attr {
	forced := false
	for _, g := range groups {
		if r.keys.secret(g) {
			forced = true
			break
		}
	}
	if forced && !r.needs(a, len(groups), true) || !forced && r.cleanAttr(a, len(groups)) {
		return a
	}
	w := walker{r: r}
	out, _ := w.attr(a, len(groups), forced)
	w.release()
	return out
}

// FingerprintOf returns "hmac-sha256:" followed by the first 16 hex digits
// of HMAC-SHA-256(key, value): what a Redactor in [Fingerprint] mode with
// FingerprintKey key puts in place of the secret value. Use it to find the
// records that carried a known secret.
//
// (It cannot be called Fingerprint: that is the Mode.)
func FingerprintOf(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	return fingerprint(m, value)
}

const fpPrefix = "hmac-sha256:"
const fpLen = len(fpPrefix) + 16

func fingerprint(m hash.Hash, value string) string {
	m.Reset()
	// hash.Hash has no WriteString; io.WriteString would allocate the same.
	m.Write([]byte(value))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	var b [fpLen]byte
	copy(b[:], fpPrefix)
	const hexd = "0123456789abcdef"
	for i, c := range sum[:8] {
		b[len(fpPrefix)+2*i] = hexd[c>>4]
		b[len(fpPrefix)+2*i+1] = hexd[c&15]
	}
	return string(b[:])
}

// replacement is what secret becomes in r's mode.
func (r *Redactor) replacement(secret string) string {
	if r.mode != Fingerprint {
		return Redacted
	}
	m := r.macs.Get().(hash.Hash)
	s := fingerprint(m, secret)
	r.macs.Put(m)
	return s
}

// isPlaceholder reports whether s is already the output of a redaction, so
// that redacting twice neither changes nor counts anything.
func isPlaceholder(s string) bool {
	if s == Redacted {
		return true
	}
	if len(s) != fpLen || s[:len(fpPrefix)] != fpPrefix {
		return false
	}
	for i := len(fpPrefix); i < fpLen; i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
