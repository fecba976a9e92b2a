package redact

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// secretKeys are keys whose values the default rules redact.
var secretKeys = []string{
	// passwords, in every spelling
	"password", "Password", "PASSWORD", "db_password", "dbPassword", "DBPassword",
	"DB_PASSWORD", "db-password", "db.password", "dbpassword", "adminpassword",
	"password2", "password_2", "password_new", "new_password", "password_confirmation",
	"passwd", "pwd", "MYSQL_PWD", "passphrase", "ssh_passphrase", "passcode",
	"pass", "Pass", "PASS", "db_pass", "dbPass", "DB_PASS", "x-pass", "pass2", "pass_new",
	"new_pass", "first_pass", "pw", "PW", "user_pw", "userPw", "DB_PW", "pw2", "pw_confirm",
	"PassWord", "pass_word", "PASS_WORD", "userPassWord", "PassPhrase", "pass_code",
	// secrets
	"secret", "client_secret", "clientSecret", "clientsecret", "secret_value",
	"value_secret", "secrets", "webhook_secret",
	// tokens
	"token", "access_token", "accessToken", "AccessToken", "accesstoken", "refresh_token",
	"id_token", "x-auth-token", "X-Auth-Token", "X-Amz-Security-Token", "aws_session_token",
	"csrftoken", "token_v2", "token1", "github_token", "jwt", "bearer", "otp",
	// keys
	"api_key", "apiKey", "api-key", "API_KEY", "Api.Key", "APIKey", "apikey", "ApiKey",
	"x-api-key", "X-API-Key", "XApiKey", "api_key_b64", "private_key", "privateKey",
	"PrivateKey", "secret_key", "secretKey", "secretkey", "accesskey", "aws_secret_access_key", "access_key",
	"signing_key", "encryption_key", "master_key", "app_key", "APP_KEY",
	// HTTP authentication and sessions
	"auth", "basic_auth", "authorization", "Authorization", "proxy-authorization",
	"Proxy-Authorization", "cookie", "Cookie", "set-cookie", "Set-Cookie", "cookies",
	"session", "session_id", "sessionId", "SessionID", "sessionid", "JSESSIONID", "PHPSESSID",
	// credentials
	"credential", "credentials", "credential_value", "aws_credentials", "creds",
	// signatures granting access
	"signature", "X-Amz-Signature", "sig",
	// lists, codes and vendor headers (review)
	"passwords", "api_keys", "apiKeys", "access_tokens", "auth_tokens", "refresh_tokens", "private_keys",
	"X-Functions-Key", "Ocp-Apim-Subscription-Key", "hmac_key", "recovery_codes", "recovery_code",
	"backup_codes", "otp_code", "mfa_code", "totp", "verification_code", "authorization_header", "X-Auth-Header", "set_cookie_header", "proxy_authorization_header",
	// nested names: only the last word counts
	"config.db.password", "upstream/auth/token", "a b c secret",
}

// nameKeys name or describe a secret without holding it; their values stay.
var nameKeys = []string{
	"credential_key", "key_id", "api_key_id", "apiKeyId", "access_key_id", "token_type",
	"tokenType", "password_policy", "token_count", "secret_name", "secretName",
	"password_hint", "token_expires", "access_token_expires_at", "password_changed_at",
	"session_count", "session_ttl", "cookie_name", "auth_method", "authorization_url",
	"token_url", "token_endpoint", "secret_arn", "secret_version", "signature_algorithm",
	"credential_id", "private_key_path", "password_length", "password_set",
	// words that merely contain a rule word
	"key", "keys", "id", "user", "username", "tokens", "tokenizer", "passwordless",
	"secretary", "author", "oauth_provider", "bypass", "compass", "session_ttl",
	"sessions", "request_id", "trace_id", "duration", "elapsed", "method",
	// not a credential by itself
	"password_hash", "value", "data", "2", "", "_", "msg",
	// pass and pw are words, not glued (four and two letters), and not
	// secrets unless last
	// counts of tokens, codes and keys by name
	"max_tokens", "input_tokens", "output_tokens", "prompt_tokens", "total_tokens", "api_keys_count",
	"passwords_count", "header", "content_type_header", "api_key_header", "csrf_token_header", "session_header",
	"token_header", "ApiKeyHeader", "recovery_code_count", "status_code", "error_code",
	"pass_count", "passCount", "pass_rate", "pass_through", "passes", "passed", "passing",
	"passport", "surpass", "overpass", "dbpass", "pw_policy", "pw_length", "pwned", "dbpw",
	"kpw", "pws",
	// pass word, pass phrase and pass code only in that order and as the last words
	"bypass_word", "word", "PassWordPolicy", "pass_word_hint", "phrase", "code", "pass_codes",
}

func TestKeyRulesDefault(t *testing.T) {
	r := Default()
	for _, k := range secretKeys {
		if !r.keys.secret(k) {
			t.Errorf("key %q: not treated as secret", k)
		}
	}
	for _, k := range nameKeys {
		if r.keys.secret(k) {
			t.Errorf("key %q: treated as secret, but it names one", k)
		}
	}
}

// TestKeyRulesAttr checks both directions end to end: the value of a secret
// key is removed and the key kept; the value of a name key is kept.
func TestKeyRulesAttr(t *testing.T) {
	r := Default()
	const v = "s3cr3t-v4lue"
	for _, k := range secretKeys {
		out, n := r.Attr(slog.String(k, v))
		if out.Key != k || out.Value.String() != Redacted || n != 1 {
			t.Errorf("Attr(%q) = %v, %d; want %s=%s, 1", k, out, n, k, Redacted)
		}
	}
	for _, k := range nameKeys {
		out, n := r.Attr(slog.String(k, v))
		if out.Key != k || out.Value.String() != v || n != 0 {
			t.Errorf("Attr(%q) = %v, %d; want unchanged", k, out, n)
		}
	}
}

// TestKeyRulesPass: what the short pass and pw rules take and leave. A
// value under first_pass is replaced like any under a secret key, bools
// included (as auth=true is): the redactor does not guess what a key holds
// from the type of its value.
func TestKeyRulesPass(t *testing.T) {
	r := Default()
	for _, tc := range []struct {
		a    slog.Attr
		want string
		n    int
	}{
		{slog.String("pass", "hunter2"), Redacted, 1},
		{slog.String("pw", "hunter2"), Redacted, 1},
		{slog.String("first_pass", "hunter2"), Redacted, 1},
		{slog.Bool("first_pass", true), Redacted, 1},
		{slog.Int("pass", 1234), Redacted, 1},
		{slog.String("pass", ""), "", 0},
		{slog.Int("pass_count", 3), "3", 0},
		{slog.String("password_policy", "strict"), "strict", 0},
		{slog.String("pw_policy", "strict"), "strict", 0},
		{slog.String("bypass", "cache"), "cache", 0},
		{slog.String("passport", "X123"), "X123", 0},
	} {
		out, n := r.Attr(tc.a)
		if out.Key != tc.a.Key || out.Value.String() != tc.want || n != tc.n {
			t.Errorf("Attr(%v) = %v, %d; want %s=%s, %d", tc.a, out, n, tc.a.Key, tc.want, tc.n)
		}
	}
}

func TestKeyRulesOptions(t *testing.T) {
	r, err := New(Options{
		Keys:      []string{"pin", "SSN", "x-vault-token"},
		AllowKeys: []string{"session", "csrfToken"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]bool{
		"pin": true, "card_pin": true, "cardPIN": true, "pin_length": false, "spin": false,
		"ssn": true, "user_ssn": true, "X-Vault-Token": true,
		// allowed keys match whole keys, word by word
		"session": false, "Session": false, "user_session": true,
		"csrf_token": false, "CSRF-Token": false, "csrf_token_2": true,
		// defaults still there
		"password": true, "token_type": false,
	} {
		if got := r.keys.secret(k); got != want {
			t.Errorf("secret(%q) = %v, want %v", k, got, want)
		}
	}

	only, err := New(Options{NoDefaultRules: true, Keys: []string{"pin"}})
	if err != nil {
		t.Fatal(err)
	}
	if only.keys.secret("password") || !only.keys.secret("pin") {
		t.Error("NoDefaultRules: want only the given rules")
	}

	// Removing one default rule: the rest of DefaultKeys.
	keys := slices.DeleteFunc(DefaultKeys(), func(k string) bool { return k == "session" })
	noSession, err := New(Options{NoDefaultRules: true, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if noSession.keys.secret("session") || !noSession.keys.secret("session_id") || !noSession.keys.secret("password") {
		t.Error("dropping the session rule changed other rules")
	}
}

func TestDefaultKeysIsACopy(t *testing.T) {
	k := DefaultKeys()
	k[0] = "changed"
	if DefaultKeys()[0] == "changed" {
		t.Error("DefaultKeys returns the package's slice")
	}
}

func TestSplitWords(t *testing.T) {
	for in, want := range map[string]string{
		"apiKey":             "api key",
		"APIKey":             "api key",
		"api-key":            "api key",
		"API_KEY":            "api key",
		"Api.Key":            "api key",
		"XMLHttpRequest":     "xml http request",
		"sha256Sum":          "sha256 sum",
		"  __a__  ":          "a",
		"x-amz-security-tok": "x amz security tok",
		"":                   "",
	} {
		if got := strings.Join(normalize(in), " "); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	key := []byte("0123456789abcdef")
	for name, opts := range map[string]Options{
		"fingerprint without key":  {Mode: Fingerprint},
		"fingerprint short key":    {Mode: Fingerprint, FingerprintKey: []byte("short")},
		"unknown mode":             {Mode: 7, FingerprintKey: key},
		"negative depth":           {MaxDepth: -1},
		"empty rule":               {Keys: []string{"__"}},
		"empty allow":              {AllowKeys: []string{""}},
		"pattern without literal":  {Patterns: []Pattern{{}}},
		"pattern without a regexp": {Patterns: []Pattern{{Literal: "x"}}},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := New(Options{Mode: Fingerprint, FingerprintKey: key}); err != nil {
		t.Errorf("valid fingerprint options: %v", err)
	}
}

// TestKeyMatchNoAlloc: keys are checked for every attribute.
func TestKeyMatchNoAlloc(t *testing.T) {
	r := Default()
	keys := append(append([]string{}, secretKeys...), nameKeys...)
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	if n := testing.AllocsPerRun(10, func() {
		for _, k := range keys {
			r.keys.secret(k)
		}
	}); n != 0 {
		t.Errorf("key matching allocates %v times", n)
	}
}

// keyProbes are keys built around the rule words and qualifiers, in the
// spellings the filters of keyMatcher.secret have to let through.
func keyProbes() []string {
	words := append(DefaultKeys(), qualifiers...)
	var out []string
	for _, w := range words {
		for _, v := range []string{w, strings.ToUpper(w), strings.ReplaceAll(w, " ", "_"), strings.ReplaceAll(w, " ", "")} {
			for _, pre := range []string{"", "x_", "db", "X-", "aB", "2"} {
				for _, suf := range []string{"", "2", "_2", "_v2", "_new", "New", "_value", "X", "_", "s", "ID", "_id", "Id"} {
					out = append(out, pre+v+suf)
				}
			}
		}
	}
	return append(out, secretKeys...)
}

// TestKeyFiltersExact: the filters in front of the exact step only save
// time: secret agrees with match, the exact step alone, on every key.
func TestKeyFiltersExact(t *testing.T) {
	for _, opts := range []Options{{}, {Keys: []string{"pin", "ssn", "x", "Ω", "ünïcode key"}, AllowKeys: []string{"session"}}} {
		r, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		m := &r.keys
		check := func(k string) {
			want := m.match(k)
			if got := m.secret(k); got != want {
				t.Errorf("%+v: secret(%q) = %v, exact step says %v", opts.Keys, k, got, want)
			}
			// cleanAttr has its own copy of the first steps.
			if got := !r.cleanAttr(slog.Int(k, 1), 0); got != want {
				t.Errorf("%+v: cleanAttr(%q=1) says secret %v, exact step says %v", opts.Keys, k, got, want)
			}
		}
		for _, k := range keyProbes() {
			check(k)
		}
		for _, k := range nameKeys {
			check(k)
		}
		// Every ending of three bytes from an alphabet of word, case, digit
		// and separator bytes, alone and after a word.
		const alpha = "abcdeiklnoprstuvwxyzAEIKPSTYZ09_-. \x80\xff"
		for _, a := range []byte(alpha) {
			for _, b := range []byte(alpha) {
				for _, c := range []byte(alpha) {
					e := string([]byte{a, b, c})
					check(e)
					check("pass" + e)
					check("session" + e)
					check("api_" + e)
				}
			}
		}
		// Every ending of four from letters of the rule words and
		// qualifiers, either case first, and separators and digits before
		// three lower-case letters: the four-letter step.
		const alpha4 = "acdeiknoprstwyACKPST_-.09"
		const low3 = "acdeiknoprstwyv"
		for _, a := range []byte(alpha4) {
			for _, b := range []byte(low3) {
				for _, c := range []byte(low3) {
					for _, d := range []byte(low3) {
						e := string([]byte{a, b, c, d})
						check(e)
						check("x" + e)
						check("my_" + e)
					}
				}
			}
		}
		for _, k := range []string{"client", "version", "session", "region", "duration", "current", "resource", "attempt", "cached", "elapsed", "address", "port", "pid", "url"} {
			check(k)
		}
	}
}

func FuzzKeySecret(f *testing.F) {
	for _, k := range append(keyProbes()[:200], nameKeys...) {
		f.Add(k)
	}
	m := &Default().keys
	f.Fuzz(func(t *testing.T, k string) {
		if got, want := m.secret(k), m.match(k); got != want {
			t.Errorf("secret(%q) = %v, exact step says %v", k, got, want)
		}
	})
}
