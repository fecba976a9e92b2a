package redact

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// Secret is a string that never renders its content: not through slog (any
// handler), fmt (every verb, including %#v and %x), encoding/json or
// encoding/text. Convert it with string(s) where the value is really needed.
//
// A [Redactor] counts a Secret as a redaction and, in [Fingerprint] mode,
// replaces it with the fingerprint of its content.
//
// As a map key a Secret does render through encoding/json and fmt, which
// write keys of string kind as they are, without their methods: only a
// Redactor keeps such a map out of the output (in Replace mode it replaces
// the map as a whole; in Fingerprint mode the keys by their fingerprints).
type Secret string

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// String implements fmt.Stringer.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return `redact.Secret("` + Redacted + `")` }

// Format implements fmt.Formatter, which fmt prefers to every other method,
// so that no verb (%x, %q, %#v, ...) reaches the content.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, s.GoString())
	case verb == 'q':
		io.WriteString(f, strconv.Quote(Redacted))
	default:
		io.WriteString(f, Redacted)
	}
}

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// redactedError replaces an error whose message had secrets removed. Being
// a string type, it renders as its (redacted) message whether a handler
// calls Error, marshals it to JSON, or prints it with %+v.
type redactedError string

func (e redactedError) Error() string { return string(e) }
