package redact

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

const bearer = "Bearer abcdef0123456789XYZ" // value-pattern secret: the token goes

type creds struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type account struct {
	Name      string            `json:"name"`
	KeyID     string            `json:"key_id"`
	Code      string            `json:"code"`  // Go name is not a rule, JSON name is not either: kept
	Passwd    string            `json:"login"` // Go name is a rule: redacted
	Secret    string            `json:"-"`     // not rendered by JSON: dropped
	APIKey    string            `json:"api_key,omitempty"`
	Note      string            `json:"note"`       // value pattern
	Tags      []string          `json:"tags"`       // value pattern in a slice
	Headers   map[string]string `json:"headers"`    // key rules in a map
	Owner     *creds            `json:"owner"`      // pointer to struct
	Empty     *creds            `json:"empty"`      // nil pointer
	Age       int               `json:"age,string"` // ,string
	private   string            // unexported: dropped
	Nested    []creds           `json:"nested"`
	Anything  any               `json:"anything"`
	CreatedAt time.Time         `json:"created_at"`
}

func newAccount() *account {
	return &account{
		Name:      "bob",
		KeyID:     "kid-1",
		Code:      "visible",
		Passwd:    "s-passwd-1",
		Secret:    "s-dash-1",
		APIKey:    "s-apikey-1",
		Note:      "call with " + bearer,
		Tags:      []string{"a", "token=s-tag-1"},
		Headers:   map[string]string{"Authorization": "s-header-1", "Accept": "json"},
		Owner:     &creds{User: "u1", Password: "s-cred-1"},
		Age:       42,
		private:   "password=s-private-1",
		Nested:    []creds{{User: "u2", Password: "s-nested-1"}},
		Anything:  map[string]any{"deep": map[string]any{"refresh_token": "s-deep-1", "n": 1}},
		CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

var accountSecrets = []string{
	"s-passwd-1", "s-dash-1", "s-apikey-1", "abcdef0123456789XYZ", "s-tag-1", "s-header-1",
	"s-cred-1", "s-private-1", "s-nested-1", "s-deep-1",
}

func TestAttrStruct(t *testing.T) {
	acc := newAccount()
	before := fmt.Sprintf("%+v %+v %+v %v", *acc, *acc.Owner, acc.Nested, acc.Anything)

	out, n := Default().Attr(slog.Any("acct", acc))
	js := attrJSON(t, out)
	checkOutput(t, js, accountSecrets, []string{
		`"name":"bob"`, `"key_id":"kid-1"`, `"code":"visible"`, `"login":"[REDACTED]"`,
		`"api_key":"[REDACTED]"`, `"note":"call with Bearer [REDACTED]"`, `"age":"42"`,
		`"Authorization":"[REDACTED]"`, `"Accept":"json"`, `"user":"u1"`, `"password":"[REDACTED]"`,
		`"empty":null`, `"refresh_token":"[REDACTED]"`, `"n":1`, `"created_at":"2024-01-02T03:04:05Z"`,
	})
	// Passwd, APIKey, Note, Tags[1], Headers[Authorization], Owner.Password,
	// Nested[0].Password, Anything.deep.refresh_token, and the dropped
	// Secret and private fields.
	if n != 10 {
		t.Errorf("count = %d, want 10", n)
	}
	if strings.Contains(js, `"Secret"`) || strings.Contains(js, "private") {
		t.Errorf("fields JSON does not render are rendered: %s", js)
	}
	// Never mutates the caller's values.
	if after := fmt.Sprintf("%+v %+v %+v %v", *acc, *acc.Owner, acc.Nested, acc.Anything); after != before {
		t.Errorf("caller's value changed:\n%s\n%s", before, after)
	}

	// The shape is what encoding/json gives for the same value, with the
	// secrets replaced and the fields JSON skips left out.
	var got, want map[string]any
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(asJSON(t, acc)), &want); err != nil {
		t.Fatal(err)
	}
	if !sameShape(got["acct"], want) {
		t.Errorf("shape differs:\n got %v\nwant %v", got["acct"], want)
	}
}

// sameShape reports whether a and b have the same keys and kinds throughout.
func sameShape(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if !sameShape(v, b[k]) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameShape(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return reflect.TypeOf(a) == reflect.TypeOf(b)
}

func TestAttrTable(t *testing.T) {
	type embedded struct {
		Token string `json:"token"`
		Kind  string
	}
	type outer struct {
		embedded
		ID string
	}
	type plain struct {
		N int
		D time.Duration
		B bool
	}
	type textual struct {
		Name string
		Note string
	}

	for _, tc := range []struct {
		name    string
		attr    slog.Attr
		secrets []string // must not be in the output
		keep    []string // must be in the output
		n       int
	}{
		{"top level secret key", slog.String("password", "hunter2"), []string{"hunter2"}, []string{`"password":"[REDACTED]"`}, 1},
		{"top level name key", slog.String("password_policy", "strict"), nil, []string{`"password_policy":"strict"`}, 0},
		{"secret key int", slog.Int("pin_otp", 123456), []string{"123456"}, []string{`"pin_otp":"[REDACTED]"`}, 1},
		{"empty secret", slog.String("password", ""), nil, []string{`"password":""`}, 0},
		{"group", slog.Group("db", slog.String("user", "app"), slog.String("password", "hunter2")),
			[]string{"hunter2"}, []string{`"db":{"user":"app","password":"[REDACTED]"}`}, 1},
		{"nested groups", slog.Group("a", slog.Group("b", slog.Group("c", slog.String("api_key", "k-123"), slog.String("note", bearer)))),
			[]string{"k-123", "abcdef0123456789XYZ"}, []string{`"a":{"b":{"c":{"api_key":"[REDACTED]","note":"Bearer [REDACTED]"}}}`}, 2},
		{"group under secret key keeps keys", slog.Group("credentials", slog.String("user", "bob"), slog.String("pin", "1234")),
			[]string{"bob", "1234"}, []string{`"credentials":{"user":"[REDACTED]","pin":"[REDACTED]"}`}, 2},
		{"map", slog.Any("m", map[string]any{"password": "hunter2", "note": "ok", "n": 1}),
			[]string{"hunter2"}, []string{`"m":{"n":1,"note":"ok","password":"[REDACTED]"}`}, 1},
		{"map of slices", slog.Any("headers", map[string][]string{"Authorization": {"Bearer zzz-123456789"}, "Accept": {"*/*"}}),
			[]string{"zzz-123456789"}, []string{`"Authorization":"[REDACTED]"`, `"Accept":["*/*"]`}, 1},
		{"map key pattern", slog.Any("m", map[string]int{"ghp_16C7e42F292c6912E7710c838347Ae178B4a": 1}),
			[]string{"16C7e42F292c6912E7710c838347Ae178B4a"}, []string{`"m":{"[REDACTED]":1}`}, 1},
		{"slice", slog.Any("s", []any{"x", "token=abc", map[string]string{"secret": "zz9"}}),
			[]string{"abc", "zz9"}, []string{`"s":["x","token=[REDACTED]",{"secret":"[REDACTED]"}]`}, 2},
		{"typed slice", slog.Any("s", []creds{{"a", "pw1"}, {"b", "pw2"}}),
			[]string{"pw1", "pw2"}, []string{`"s":[{"password":"[REDACTED]","user":"a"},{"password":"[REDACTED]","user":"b"}]`}, 2},
		{"embedded struct", slog.Any("o", outer{embedded{"tok-1", "k"}, "i"}),
			[]string{"tok-1"}, []string{`"o":{"token":"[REDACTED]","Kind":"k","ID":"i"}`}, 1},
		{"pointer", slog.Any("p", &creds{"u", "pw-9"}), []string{"pw-9"}, []string{`"p":{"user":"u","password":"[REDACTED]"}`}, 1},
		{"nil pointer", slog.Any("p", (*creds)(nil)), nil, []string{`"p":null`}, 0},
		{"plain struct", slog.Any("p", plain{1, time.Second, true}), nil, []string{`"p":{"N":1,"D":1000000000,"B":true}`}, 0},
		{"clean struct with strings", slog.Any("p", textual{"bob", "fine"}), nil, []string{`"p":{"Name":"bob","Note":"fine"}`}, 0},
		{"bytes", slog.Any("b", []byte("Authorization: Bearer abcdef0123456789XYZ")),
			[]string{"abcdef0123456789XYZ"}, []string{`"b":"Authorization: Bearer [REDACTED]"`}, 1},
		{"error", slog.Any("err", errors.New("dial postgres://app:hunter2@db:5432: refused")),
			[]string{"hunter2"}, []string{`"err":"dial postgres://app:[REDACTED]@db:5432: refused"`}, 1},
		{"wrapped error", slog.Any("err", fmt.Errorf("login: %w", errors.New("bad token="+testJWT))),
			[]string{testJWT[:30]}, []string{`"err":"login: bad token=[REDACTED]"`}, 1},
		{"clean error", slog.Any("err", errors.New("not found")), nil, []string{`"err":"not found"`}, 0},
		{"error under secret key", slog.Any("token", errors.New("x")), nil, []string{`"token":"[REDACTED]"`}, 1},
		{"stringer url", slog.Any("u", mustURL("https://bob:hunter2@example.com/p?api_key=k9&x=1")),
			[]string{"hunter2", "k9"}, []string{`"u":"https://bob:[REDACTED]@example.com/p?api_key=[REDACTED]&x=1"`}, 2},
		{"stringer hiding fields", slog.Any("c", shownCreds{User: "bob", Password: "pw-7"}),
			[]string{"pw-7"}, []string{`"c":"user bob"`}, 1},
		{"log valuer", slog.Any("lv", credsValuer{"bob", "pw-8"}),
			[]string{"pw-8"}, []string{`"lv":{"user":"bob","password":"[REDACTED]"}`}, 1},
		{"json marshaler", slog.Any("j", jsonCreds{"pw-10"}),
			[]string{"pw-10"}, []string{`"j":{"api_key":"[REDACTED]","ok":true}`}, 1},
		{"text marshaler", slog.Any("t", textCreds{}), []string{"abcdef0123456789XYZ"}, []string{`"t":"Bearer [REDACTED]"`}, 1},
		{"secret type", slog.Any("s", Secret("pw-11")), []string{"pw-11"}, []string{`"s":"[REDACTED]"`}, 1},
		{"secret in struct", slog.Any("s", struct{ V Secret }{"pw-12"}), []string{"pw-12"}, []string{`"s":{"V":"[REDACTED]"}`}, 1},
		{"secret in map", slog.Any("s", map[string]any{"v": Secret("pw-13")}), []string{"pw-13"}, []string{`"s":{"v":"[REDACTED]"}`}, 1},
		{"secret in slice", slog.Any("s", []Secret{"pw-14"}), []string{"pw-14"}, []string{`"s":["[REDACTED]"]`}, 1},
		{"slog value in slice", slog.Any("s", []slog.Value{slog.StringValue("password=pw-15")}), []string{"pw-15"}, []string{`"s":["password=[REDACTED]"]`}, 1},
		// The key rules apply to keys held in interfaces (map[any]any, as
		// YAML decoders make), and a Secret key is replaced: encoding/json
		// writes a key of string kind as it is.
		{"interface-keyed map", slog.Any("cfg", map[any]any{"db": map[any]any{"password": "pw-16", "user": "app", 5: "five"}}),
			[]string{"pw-16"}, []string{`"cfg":{"db":{"5":"five","password":"[REDACTED]","user":"app"}}`}, 1},
		{"interface keys, string values", slog.Any("h", map[any]string{"api_key": "pw-17", "name": "x"}),
			[]string{"pw-17"}, []string{`"h":{"api_key":"[REDACTED]","name":"x"}`}, 1},
		{"secret as map key", slog.Any("active", map[Secret]string{"pw-18": "bob", "pw-18b": "carol"}), []string{"pw-18"}, []string{`"active":"[REDACTED]"`}, 1},
		{"secret as interface map key", slog.Any("active", map[any]int{Secret("pw-19"): 1, "n": 2}), []string{"pw-19"}, []string{`"active":"[REDACTED]"`}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, n := Default().Attr(tc.attr)
			js := attrJSON(t, out)
			checkOutput(t, js, tc.secrets, tc.keep)
			if n != tc.n {
				t.Errorf("count = %d, want %d (%s)", n, tc.n, js)
			}
			// Idempotent: a second pass finds nothing.
			if _, n := Default().Attr(out); n != 0 {
				t.Errorf("second pass counted %d", n)
			}
		})
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// shownCreds chooses what to show with String; encoding/json would show
// the password, so the redactor renders the String form.
type shownCreds struct {
	User     string
	Password string
}

func (c shownCreds) String() string { return "user " + c.User }

type credsValuer struct{ user, pw string }

func (c credsValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", c.user), slog.String("password", c.pw))
}

type jsonCreds struct{ key string }

func (c jsonCreds) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"api_key": c.key, "ok": true})
}

type textCreds struct{}

func (textCreds) MarshalText() ([]byte, error) { return []byte(bearer), nil }

// Values that cannot be inspected are redacted, not passed through.
type panicky struct{ Note string }

func (panicky) String() string { panic("password=leaked-in-panic") }

type panicErr struct{}

func (panicErr) Error() string { panic("boom") }

type panicValuer struct{}

func (panicValuer) LogValue() slog.Value { panic("boom") }

type panicJSON struct{}

func (panicJSON) MarshalJSON() ([]byte, error) { panic("boom") }

type badJSON struct{}

func (badJSON) MarshalJSON() ([]byte, error) { return nil, errors.New("no") }

type node struct {
	Name string
	Next *node
}

func TestAttrFailClosed(t *testing.T) {
	cyc := &node{Name: "a"}
	cyc.Next = &node{Name: "b", Next: cyc}
	selfMap := map[string]any{"k": "v"}
	selfMap["self"] = selfMap
	selfSlice := []any{"x", nil}
	selfSlice[1] = selfSlice

	for _, tc := range []struct {
		name string
		attr slog.Attr
		want string
	}{
		{"panicking String", slog.Any("v", panicky{"x"}), `"v":"[REDACTED]"`},
		{"panicking String nested", slog.Any("v", []any{panicky{"x"}}), `"v":["[REDACTED]"]`},
		{"panicking Error", slog.Any("err", panicErr{}), `"err":"[REDACTED]"`},
		{"nil pointer error", slog.Any("err", (*url.Error)(nil)), `"err":"[REDACTED]"`},
		{"panicking LogValue", slog.Any("v", panicValuer{}), `"v":"[REDACTED]"`},
		{"panicking MarshalJSON", slog.Any("v", panicJSON{}), `"v":"[REDACTED]"`},
		{"failing MarshalJSON", slog.Any("v", badJSON{}), `"v":"[REDACTED]"`},
		{"pointer cycle", slog.Any("v", cyc), `"v":{"Name":"a","Next":{"Name":"b","Next":"[REDACTED]"}}`},
		{"map cycle", slog.Any("v", selfMap), `"v":{"k":"v","self":"[REDACTED]"}`},
		{"slice cycle", slog.Any("v", selfSlice), `"v":["x","[REDACTED]"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, n := Default().Attr(tc.attr)
			js := attrJSON(t, out)
			checkOutput(t, js, []string{"leaked-in-panic"}, []string{tc.want})
			if n < 1 {
				t.Errorf("count = %d, want at least 1", n)
			}
		})
	}
}

func TestAttrDepth(t *testing.T) {
	deep := slog.String("note", "fine")
	for range 20 {
		deep = slog.Group("g", deep)
	}
	out, n := Default().Attr(deep)
	js := attrJSON(t, out)
	if strings.Contains(js, "fine") || n != 1 || strings.Count(js, `"g"`) != DefaultMaxDepth+1 {
		t.Errorf("depth %d: n=%d %s", DefaultMaxDepth, n, js)
	}

	r, err := New(Options{MaxDepth: 2})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"a": map[string]any{"b": map[string]any{"c": "fine"}}}
	out, n = r.Attr(slog.Any("m", m))
	if js := attrJSON(t, out); js != `{"m":{"a":{"b":"[REDACTED]"}}}` || n != 1 {
		t.Errorf("MaxDepth 2: n=%d %s", n, js)
	}
	// Values within the limit are untouched.
	out, n = r.Attr(slog.Any("m", map[string]any{"a": 1}))
	if js := attrJSON(t, out); js != `{"m":{"a":1}}` || n != 0 {
		t.Errorf("MaxDepth 2, shallow: n=%d %s", n, js)
	}
}

func TestAttrFingerprint(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	r, err := New(Options{Mode: Fingerprint, FingerprintKey: key})
	if err != nil {
		t.Fatal(err)
	}
	fp := FingerprintOf(key, "hunter2")
	for _, a := range []slog.Attr{
		slog.String("password", "hunter2"),
		slog.Any("password", Secret("hunter2")),
		slog.Any("x", Secret("hunter2")),
		slog.Any("m", map[string]string{"password": "hunter2"}),
		slog.Any("c", creds{"u", "hunter2"}),
		slog.String("dsn", "postgres://u:hunter2@h/db"),
		slog.Any("err", errors.New("password=hunter2")),
		slog.Group("g", slog.String("db_password", "hunter2")),
	} {
		out, n := r.Attr(a)
		js := attrJSON(t, out)
		if n != 1 || strings.Contains(js, "hunter2") || !strings.Contains(js, fp) {
			t.Errorf("%v: n=%d %s, want fingerprint %s", a, n, js, fp)
		}
	}
	out, _ := r.Attr(slog.Int("otp", 1234))
	if got, want := out.Value.String(), FingerprintOf(key, "1234"); got != want {
		t.Errorf("int fingerprint %s, want %s", got, want)
	}
	out, _ = r.Attr(slog.Any("secrets", []string{"a"}))
	if got := out.Value.String(); got != Redacted {
		t.Errorf("composite under secret key: %s, want %s", got, Redacted)
	}
	// Secret map keys become their fingerprints, apart from each other and
	// in the same order every time (sorted as the fingerprints sort).
	m := map[Secret]string{"hunter2": "alice", "k2": "bob", "k3": "carol"}
	first := attrJSON(t, func() slog.Attr { a, _ := r.Attr(slog.Any("active", m)); return a }())
	if !strings.Contains(first, `"`+fp+`":"alice"`) || strings.Contains(first, "hunter2") || strings.Count(first, "hmac-sha256:") != 3 {
		t.Errorf("secret map keys: %s", first)
	}
	for range 20 {
		if a, _ := r.Attr(slog.Any("active", m)); attrJSON(t, a) != first {
			t.Fatalf("the same map logged as %s and as %s", first, attrJSON(t, a))
		}
	}
}

// TestAttrFastPathNoAlloc: attributes without secrets are returned as is
// and cost no allocation.
func TestAttrFastPathNoAlloc(t *testing.T) {
	type plain struct {
		N int
		B bool
	}
	type textual struct{ A, B string }
	r := Default()
	attrs := []slog.Attr{
		slog.String("method", "GET"), slog.Int("status", 200), slog.Bool("cached", false),
		slog.Duration("elapsed", time.Second), slog.Time("at", time.Now()), slog.Float64("f", 1.5),
		slog.Group("user", slog.String("id", "u-123"), slog.Int("age", 42)),
		slog.String("token_type", "bearer"), slog.String("url", "https://example.com/a?b=c"),
		slog.Any("plain", plain{1, true}), slog.Any("textual", textual{"x", "y"}),
		slog.Any("err", errors.New("not found")),
	}
	for _, a := range attrs {
		if out, n := r.Attr(a); n != 0 || !out.Equal(a) {
			t.Errorf("Attr(%v) = %v, %d; want unchanged", a, out, n)
		}
	}
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	if n := testing.AllocsPerRun(50, func() {
		for _, a := range attrs {
			r.Attr(a)
		}
	}); n != 0 {
		t.Errorf("fast path allocates %v times", n)
	}
}

func TestReplaceAttr(t *testing.T) {
	var buf strings.Builder
	r := Default()
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: r.ReplaceAttr}))
	l.With("api_key", "k-1").WithGroup("auth").Info("login with "+bearer,
		"user", "bob", "c", &creds{"u", "pw-1"})
	l.WithGroup("req").Info("x", slog.Group("h", "Cookie", "sid=abc"), "q", "/p?token=t-1")
	out := buf.String()
	checkOutput(t, out, []string{"k-1", "abcdef0123456789XYZ", "bob", "pw-1", "abc", "t-1"},
		[]string{"api_key=[REDACTED]", "msg=\"login with Bearer [REDACTED]\"", "auth.user=[REDACTED]",
			"req.h.Cookie=[REDACTED]", `req.q="/p?token=[REDACTED]"`})
}

// authErr prints its token without a key: the redactor removes the values
// of its secret fields from the message.
type authErr struct {
	User  string
	Token string
}

func (e *authErr) Error() string { return "auth failed for " + e.User + " with " + e.Token }

type leakyStringer struct {
	User     string
	Password string
}

func (s leakyStringer) String() string { return s.User + "/" + s.Password }

func TestAttrTaintedText(t *testing.T) {
	for _, tc := range []struct {
		name    string
		attr    slog.Attr
		secrets []string
		want    string
	}{
		{"error fields", slog.Any("err", &authErr{"bob", "tok-12345"}), []string{"tok-12345"},
			`"err":"auth failed for bob with [REDACTED]"`},
		{"wrapped error fields", slog.Any("err", fmt.Errorf("login: %w", &authErr{"bob", "tok-12345"})), []string{"tok-12345"},
			`"err":"login: auth failed for bob with [REDACTED]"`},
		{"short secret", slog.Any("err", &authErr{"bob", "ab"}), []string{"with ab"}, `"err":"[REDACTED]"`},
		{"stringer fields", slog.Any("s", leakyStringer{"bob", "hunter2"}), []string{"hunter2"}, `"s":"bob/[REDACTED]"`},
		{"empty secret field", slog.Any("s", struct {
			Note fmt.Stringer
			Key  Secret
		}{leakyStringer{"bob", "pw-42"}, ""}), []string{"pw-42"}, `"Note":"bob/[REDACTED]"`},
		{"attr as a value", slog.Any("a", slog.Any("v", &struct{ Password string }{"hunter2"})), []string{"hunter2"}, `"a":"v=&{[REDACTED]}"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, n := Default().Attr(tc.attr)
			checkOutput(t, attrJSON(t, out), tc.secrets, []string{tc.want})
			if n < 1 {
				t.Errorf("count = %d", n)
			}
		})
	}
}

// TestCleanAttrAgreesWithNeeds: the fast path of Attr, cleanAttr, says
// clean exactly when needs does.
func TestCleanAttrAgreesWithNeeds(t *testing.T) {
	r := Default()
	type creds struct{ Password string }
	var attrs []slog.Attr
	for _, k := range append(append([]string{}, secretKeys...), nameKeys...) {
		attrs = append(attrs, slog.String(k, "v-1"), slog.String(k, ""), slog.Int(k, 7), slog.Bool(k, true),
			slog.Group(k, slog.String("a", "b")), slog.Any(k, nil), slog.Any(k, creds{"x"}))
	}
	for _, v := range []string{"", "GET", "u-123", "obsidian_api_key", "127.0.0.1", "Bearer abcdefghij0123456789",
		"https://u:pw@h", "a=b&token=c", "request handled", Redacted, "eyJhbGciOi.eyJzdWIi.sig"} {
		attrs = append(attrs, slog.String("note", v), slog.Group("g", slog.String("note", v), slog.Int("n", 1)),
			slog.Group("g", slog.Group("h", slog.String("password", v))), slog.Any("e", errors.New(v)))
	}
	for _, a := range attrs {
		for _, d := range []int{0, 15, 16, 17} {
			if got, want := r.cleanAttr(a, d), !r.needs(a, d, false); got != want {
				t.Errorf("cleanAttr(%v, %d) = %v, needs says %v", a, d, got, !want)
			}
		}
	}
}

// SecretKey and SecretAttr are what a handler that opens groups itself
// needs: inside a group named a secret key every value goes, keys stay.
func TestSecretKeyAndSecretAttr(t *testing.T) {
	r := Default()
	for key, want := range map[string]bool{"credentials": true, "client_secret": true, "apiKey": true, "credential_key": false, "token_type": false, "request": false} {
		if got := r.SecretKey(key); got != want {
			t.Errorf("SecretKey(%q) = %v, want %v", key, got, want)
		}
	}
	for _, tc := range []struct {
		in   slog.Attr
		want string
		n    int
	}{
		{slog.Int("n", 7), "n=[REDACTED]", 1},
		{slog.String("new", "hunter2"), "new=[REDACTED]", 1},
		{slog.String("empty", ""), "empty=", 0},
		{slog.Group("g", slog.String("user", "bob"), slog.Bool("ok", true)), "g=[user=[REDACTED] ok=[REDACTED]]", 2},
		{slog.Any("s", Secret("x")), "s=[REDACTED]", 1},
	} {
		got, n := r.SecretAttr(tc.in)
		if got.String() != tc.want || n != tc.n {
			t.Errorf("SecretAttr(%v) = %v, %d; want %s, %d", tc.in, got, n, tc.want, tc.n)
		}
	}
}
