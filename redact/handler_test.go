package redact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestHandlerRules runs every kind of rule through Handler over a JSON
// handler, at the top level, in groups, in nested groups, and in attributes
// added by WithAttrs and inside WithGroup, and checks the output bytes: the
// secret is gone and its key (or the name of a secret) is there.
func TestHandlerRules(t *testing.T) {
	type rule struct {
		name   string
		attr   func(secret string) slog.Attr
		secret string
		keep   string // a key or name that must stay readable
	}
	rules := []rule{
		{"key rule", func(s string) slog.Attr { return slog.String("api_key", s) }, "k-key-rule", `"api_key":"[REDACTED]"`},
		{"key rule camel", func(s string) slog.Attr { return slog.String("clientSecret", s) }, "k-camel", `"clientSecret":"[REDACTED]"`},
		{"name of a secret", func(s string) slog.Attr {
			return slog.Group("k", slog.String("credential_key", "obsidian_api_key"), slog.String("token", s))
		}, "k-name", `"credential_key":"obsidian_api_key"`},
		{"bearer", func(s string) slog.Attr { return slog.String("hdr", "Authorization: Bearer "+s) }, "bearerTok0123456789", `"hdr":"Authorization: Bearer [REDACTED]"`},
		{"jwt", func(s string) slog.Attr { return slog.String("note", "jwt "+s) }, testJWT, `"note":"jwt [REDACTED]"`},
		{"aws", func(s string) slog.Attr { return slog.String("note", "id "+s) }, testAWS, `"note":"id [REDACTED]"`},
		{"github", func(s string) slog.Attr { return slog.String("note", s) }, testGHP, `"note":"[REDACTED]"`},
		{"slack", func(s string) slog.Attr { return slog.String("note", s) }, testSlack, `"note":"[REDACTED]"`},
		{"url password", func(s string) slog.Attr { return slog.String("dsn", "mysql://root:"+s+"@db/x") }, "pw-url-1", `"dsn":"mysql://root:[REDACTED]@db/x"`},
		{"query token", func(s string) slog.Attr { return slog.String("url", "/cb?state=1&access_token="+s) }, "qtok1", `"url":"/cb?state=1&access_token=[REDACTED]"`},
		{"key rule pass", func(s string) slog.Attr { return slog.String("db_pass", s) }, "k-pass", `"db_pass":"[REDACTED]"`},
		{"key rule pw", func(s string) slog.Attr { return slog.String("userPw", s) }, "k-pw", `"userPw":"[REDACTED]"`},
		{"name of a pass", func(s string) slog.Attr {
			return slog.Group("k", slog.Int("pass_count", 3), slog.String("bypass", "cache"), slog.String("pass", s))
		}, "k-pass-name", `"pass_count":3,"bypass":"cache"`},
		{"query pass", func(s string) slog.Attr { return slog.String("url.query", "pass="+s+"&pass_count=3") }, "QPASS16", `"url.query":"pass=[REDACTED]&pass_count=3"`},
		{"query pw", func(s string) slog.Attr { return slog.String("url.query", "x=1&pw="+s+"&pw_policy=strict") }, "QPW17", `"url.query":"x=1&pw=[REDACTED]&pw_policy=strict"`},
		{"query encoded letter", func(s string) slog.Attr { return slog.String("url.query", "pass%77ord="+s+"&pass%77ord%5Fpolicy=x") }, "QENC1", `"url.query":"pass%77ord=[REDACTED]&pass%77ord%5Fpolicy=x"`},
		{"query encoded separator", func(s string) slog.Attr {
			return slog.String("url.query", "access%5Ftoken%5Ftype=bearer&access%5Ftoken="+s)
		}, "QENC2", `"url.query":"access%5Ftoken%5Ftype=bearer&access%5Ftoken=[REDACTED]"`},
		{"query encoded dash", func(s string) slog.Attr { return slog.String("url.query", "API%2DKEY="+s+"&api%2dkey%2did=k1") }, "QENC3", `"url.query":"API%2DKEY=[REDACTED]&api%2dkey%2did=k1"`},
		{"query plus", func(s string) slog.Attr { return slog.String("url.query", "api+key+id=k1&api+key="+s) }, "QPLUS1", `"url.query":"api+key+id=k1&api+key=[REDACTED]"`},
		{"query bad escape", func(s string) slog.Attr { return slog.String("url.query", "api%zzkey=k1&pass%="+s) }, "QBAD1", `"url.query":"api%zzkey=k1&pass%=[REDACTED]"`},
		{"error message", func(s string) slog.Attr { return slog.Any("err", errors.New("auth failed for token="+s)) }, "errtok1", `"err":"auth failed for token=[REDACTED]"`},
		{"url value", func(s string) slog.Attr { return slog.Any("u", mustURL("https://u:"+s+"@h/")) }, "pw-url-2", `"u":"https://u:[REDACTED]@h/"`},
		{"map", func(s string) slog.Attr { return slog.Any("m", map[string]any{"x": map[string]string{"password": s}}) }, "pw-map", `"m":{"x":{"password":"[REDACTED]"}}`},
		{"struct", func(s string) slog.Attr { return slog.Any("c", []*creds{{"u", s}}) }, "pw-struct", `"password":"[REDACTED]"`},
		{"secret type", func(s string) slog.Attr { return slog.Any("s", Secret(s)) }, "pw-secret", `"s":"[REDACTED]"`},
	}
	wrappers := []struct {
		name string
		log  func(l *slog.Logger, a slog.Attr)
	}{
		{"top", func(l *slog.Logger, a slog.Attr) { l.LogAttrs(context.Background(), slog.LevelInfo, "m", a) }},
		{"group", func(l *slog.Logger, a slog.Attr) { l.Info("m", slog.Group("g", a)) }},
		{"nested groups", func(l *slog.Logger, a slog.Attr) { l.Info("m", slog.Group("g", slog.Group("h", a))) }},
		{"WithAttrs", func(l *slog.Logger, a slog.Attr) { l.With(a).Info("m") }},
		{"WithGroup", func(l *slog.Logger, a slog.Attr) { l.WithGroup("g").Info("m", a) }},
		{"WithGroup WithAttrs", func(l *slog.Logger, a slog.Attr) { l.WithGroup("g").With(a).WithGroup("h").Info("m") }},
	}
	for _, rl := range rules {
		for _, wr := range wrappers {
			t.Run(rl.name+"/"+wr.name, func(t *testing.T) {
				out := logJSON(t, Default(), func(l *slog.Logger) { wr.log(l, rl.attr(rl.secret)) })
				checkOutput(t, out, []string{rl.secret}, []string{rl.keep, `"redacted":1`})
			})
		}
	}
}

func TestHandlerMessageAndCount(t *testing.T) {
	out := logJSON(t, Default(), func(l *slog.Logger) {
		l.With("password", "pw-1", "user", "bob").WithGroup("req").Info(
			"login via https://bob:pw-2@example.com with "+testGHP,
			"token", "pw-3", "method", "POST")
	})
	checkOutput(t, out, []string{"pw-1", "pw-2", "pw-3", testGHP},
		[]string{`"msg":"login via https://bob:[REDACTED]@example.com with [REDACTED]"`,
			`"password":"[REDACTED]"`, `"user":"bob"`, `"req":{"token":"[REDACTED]","method":"POST","redacted":4}`})
}

func TestHandlerCleanRecord(t *testing.T) {
	out := logJSON(t, Default(), func(l *slog.Logger) {
		l.With("service", "api").Info("request handled", "status", 200, "token_type", "bearer")
	})
	checkOutput(t, out, nil, []string{`"msg":"request handled"`, `"service":"api"`, `"status":200`, `"token_type":"bearer"`})
	if strings.Contains(out, RedactedKey) {
		t.Errorf("clean record got a count: %s", out)
	}

	h := Default().Handler(slog.NewJSONHandler(io.Discard, nil))
	l := slog.New(h)
	ctx := context.Background()
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	if n := testing.AllocsPerRun(50, func() {
		l.LogAttrs(ctx, slog.LevelInfo, "request handled", benchAttrs...)
	}); n != 0 {
		t.Errorf("clean record allocates %v times", n)
	}
}

func TestHandlerSecretGroup(t *testing.T) {
	out := logJSON(t, Default(), func(l *slog.Logger) {
		l.WithGroup("credentials").With("user", "u-1").Info("m", "pin", "p-1", slog.Group("g", "x", "x-1"))
	})
	checkOutput(t, out, []string{"u-1", "p-1", "x-1"},
		[]string{`"credentials":{"user":"[REDACTED]","pin":"[REDACTED]","g":{"x":"[REDACTED]"},"redacted":3}`})
}

func TestHandlerLevelsAndEnabled(t *testing.T) {
	var buf strings.Builder
	h := Default().Handler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Error("Enabled does not follow the wrapped handler")
	}
	if h.WithGroup("") != h || h.WithAttrs(nil) != h {
		t.Error("empty WithGroup/WithAttrs should return the handler")
	}
}

// TestHandlerKeepsRecord: time, level and source survive a rewritten record.
func TestHandlerKeepsRecord(t *testing.T) {
	var buf strings.Builder
	l := slog.New(Default().Handler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{AddSource: true})))
	l.Warn("m", "password", "x")
	var m map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &m); err != nil {
		t.Fatal(err)
	}
	if m["level"] != "WARN" || m["source"] == nil || m["time"] == nil {
		t.Errorf("record fields lost: %v", m)
	}
	if src, _ := m["source"].(map[string]any); !strings.HasSuffix(src["file"].(string), "handler_test.go") {
		t.Errorf("source = %v", m["source"])
	}
	tm, err := time.Parse(time.RFC3339Nano, m["time"].(string))
	if err != nil || time.Since(tm) > time.Minute {
		t.Errorf("time = %v (%v)", m["time"], err)
	}
}

// TestHandlerConcurrent: a Redactor and its handler are shared by goroutines.
func TestHandlerConcurrent(t *testing.T) {
	l := slog.New(Default().Handler(slog.NewJSONHandler(io.Discard, nil)))
	done := make(chan struct{})
	for i := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := range 200 {
				l.Info("m", "i", i, "j", j, "acct", newAccount(), "password", "x")
			}
		}()
	}
	for range 4 {
		<-done
	}
}

// TestCleanRecord: CleanRecord holds exactly when the message holds nothing
// String would replace and every attribute is Clean, whether the dirty part
// is the message, an attribute among the five a record keeps inline, one
// past them, or one inside a group; a value it does not inspect (a
// LogValuer) is not clean.
func TestCleanRecord(t *testing.T) {
	r := Default()
	clean := []slog.Attr{
		slog.String("resource", "obsidian_api_key"), slog.Int("attempt", 3), slog.Bool("cached", false),
		slog.Duration("elapsed", time.Millisecond), slog.Group("client", slog.String("address", "127.0.0.1")),
		slog.String("credential_key", "obsidian_api_key"), slog.String("token_type", "bearer"),
	}
	dirty := map[string]slog.Attr{
		"secret key":   slog.String("api_key", "k-123"),
		"value":        slog.String("note", "jwt "+testJWT),
		"in a group":   slog.Group("client", slog.String("password", "hunter2")),
		"any value":    slog.Any("creds", map[string]string{"password": "hunter2"}),
		"log valuer":   slog.Any("lazy", lazyValue{}),
		"secret value": slog.Any("s", Secret("x")),
	}
	record := func(msg string, as ...slog.Attr) slog.Record {
		rec := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
		rec.AddAttrs(as...)
		return rec
	}
	check := func(name string, rec slog.Record, want bool) {
		t.Helper()
		if got := r.CleanRecord(rec); got != want {
			t.Errorf("%s: CleanRecord = %v, want %v", name, got, want)
		}
		// The same verdict as its parts.
		parts := true
		if _, n := r.String(rec.Message); n > 0 {
			parts = false
		}
		rec.Attrs(func(a slog.Attr) bool {
			parts = parts && r.Clean(a)
			return true
		})
		if parts != want {
			t.Errorf("%s: String and Clean say clean=%v, want %v", name, parts, want)
		}
	}
	check("empty", record(""), true)
	check("clean", record("credential accessed", clean...), true)
	check("secret in message", record("retry with Authorization: Bearer tok0123456789abcdef", clean[:2]...), false)
	for name, a := range dirty {
		for _, at := range []int{0, 4, len(clean)} { // first, last inline, past the inline five
			as := slices.Insert(slices.Clone(clean), at, a)
			check(fmt.Sprintf("%s at %d", name, at), record("credential accessed", as...), false)
		}
	}
}

type lazyValue struct{}

func (lazyValue) LogValue() slog.Value { return slog.StringValue("fine") }
