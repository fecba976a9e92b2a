package bench

import (
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/m-mizutani/masq"

	"github.com/slogaudit/slogaudit/redact"
)

// masqOptions configures masq to look for what redact.Default() looks for,
// as far as masq can express it: each default key rule as a field name
// (masq compares names exactly, so one spelling each: "api key" becomes
// api_key), and one regexp per built-in value pattern (auth schemes, JWTs,
// AWS key ids, GitHub and Slack tokens, PEM private keys, URL passwords,
// key=value with a secret key). masq does less than redact even so: no
// other spellings of a key (apiKey, X-Api-Key, db_password), no message,
// and a match replaces the whole string rather than the secret in it.
func masqOptions() []masq.Option {
	var opts []masq.Option
	for _, k := range redact.DefaultKeys() {
		opts = append(opts, masq.WithFieldName(strings.ReplaceAll(k, " ", "_")))
	}
	for _, re := range []string{
		`(?i)\b(?:bearer|basic)[ \t]+[A-Za-z0-9._~+/-]{8,}=*`,
		`\beyJ[A-Za-z0-9_-]{7,}(?:\.[A-Za-z0-9_-]+)+`,
		`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`,
		`\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})`,
		`\b(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,}`,
		`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----`,
		`//[^/\s:@]*:[^/\s@]+@`,
		`(?i)(?:password|passwd|pwd|secret|token|api_?key|auth|authorization|cookie|session|credentials?|signature|sig)["']?[ \t]*[=:]`,
	} {
		opts = append(opts, masq.WithRegex(regexp.MustCompile(re)))
	}
	return opts
}

// BenchmarkPeerMasq is masq's ReplaceAttr on slog's JSON handler, set up by
// masqOptions to do work comparable to redact.Default(); its counterpart is
// BenchmarkRedactDiscard (same record, same JSON handler to io.Discard).
func BenchmarkPeerMasq(b *testing.B) {
	benchLog(b, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{ReplaceAttr: masq.New(masqOptions()...)})))
}

// BenchmarkDiagPeerMasqFew is masq with a minimal configuration (six field
// names, "Bearer ", a JWT and an AWS key id regexp; the peer as first
// written): how much of PeerMasq's cost is the number of rules.
func BenchmarkDiagPeerMasqFew(b *testing.B) {
	ra := masq.New(
		masq.WithFieldName("password"),
		masq.WithFieldName("secret"),
		masq.WithFieldName("token"),
		masq.WithFieldName("api_key"),
		masq.WithFieldName("authorization"),
		masq.WithFieldName("cookie"),
		masq.WithContain("Bearer "),
		masq.WithRegex(regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)),
		masq.WithRegex(regexp.MustCompile(`AKIA[0-9A-Z]{16}`)),
	)
	benchLog(b, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{ReplaceAttr: ra})))
}

// TestMasqOptions checks that masqOptions finds a sample of each kind of
// secret redact.Default() finds, so that PeerMasq does the work it is
// credited with, and that it leaves the benchmark record alone.
func TestMasqOptions(t *testing.T) {
	ra := masq.New(masqOptions()...)
	secrets := []slog.Attr{
		slog.String("api_key", "k-1"),
		slog.String("password", "hunter2"),
		slog.String("session_id", "s-1"),
		slog.String("header", "Bearer abcdefgh12345678"),
		slog.String("jwt_in_text", "got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"),
		slog.String("aws", "key AKIAIOSFODNN7EXAMPLE"),
		slog.String("gh", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"),
		slog.String("slack", "xoxb-1234567890-abcdef"),
		slog.String("pem", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"),
		slog.String("dsn", "postgres://app:s3cret@db:5432/app"),
		slog.String("query", "a=1&token=abc"),
	}
	for _, a := range secrets {
		if got := ra(nil, a).Value.String(); got != masq.DefaultRedactMessage {
			t.Errorf("masq left %s=%q as %q", a.Key, a.Value.String(), got)
		}
		if _, n := redact.Default().Attr(a); n == 0 {
			t.Errorf("redact left %s=%q", a.Key, a.Value.String())
		}
	}
	clean := []slog.Attr{
		slog.String("resource", "obsidian_api_key"),
		slog.String("address", "127.0.0.1"),
		slog.String("msg", "credential accessed"),
	}
	for _, a := range clean {
		if got := ra(nil, a).Value.String(); got != a.Value.String() {
			t.Errorf("masq changed %s=%q to %q", a.Key, a.Value.String(), got)
		}
	}
}
