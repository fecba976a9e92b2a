package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/redact"
)

const planted = "sk-live-9f8e7d6c5b4a39281706"

// Secrets never reach any leg — audit file, app log, sinks — while the
// names of things stay readable, and the record says how much was removed.
func TestRedactionOnEveryLeg(t *testing.T) {
	sink := &memSink{}
	f := newFixture(t, Options{Sinks: []Sink{sink}})
	l := slog.New(f.h)
	ctx := context.Background()
	audit := Logger(l)

	audit.InfoContext(ctx, "credential read", "credential_key", "obsidian_api_key", "api_key", planted)
	audit.With("password", planted).WithGroup("req").Info("login", "token_type", "bearer", "authorization", "Bearer "+planted)
	audit.Info("fetch https://user:"+planted+"@example.com/x?token="+planted+"&page=2", slog.Group("g", slog.Group("h", "client_secret", planted)))
	audit.Info("failed", "error", errors.New("upstream said: invalid token "+"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"), "secret", redact.Secret(planted))
	l.Info("plain app record", "apiKey", planted, "key_id", "k-1")
	f.h.Close()

	out := f.everything(sink)
	for _, leak := range []string{planted, "eyJhbGciOiJIUzI1NiJ9"} {
		if strings.Contains(out, leak) {
			t.Errorf("secret %q leaked:\n%s", leak, out)
		}
	}
	for _, name := range []string{"obsidian_api_key", `"credential_key"`, `"api_key"`, `"token_type":"bearer"`, `"key_id":"k-1"`, "page=2", "https://user:", "example.com", "upstream said: invalid token"} {
		if !strings.Contains(out, name) {
			t.Errorf("%q should stay readable", name)
		}
	}
	rs := f.records(t)
	if rs[0][redact.RedactedKey] != 1.0 || rs[0]["credential_key"] != "obsidian_api_key" || rs[0]["api_key"] != redact.Redacted {
		t.Errorf("record %v", rs[0])
	}
	if rs[1]["password"] != redact.Redacted || rs[1][redact.RedactedKey] == nil {
		t.Errorf("WithAttrs secret: %v", rs[1])
	}
	if len(sink.recs) != 4 {
		t.Errorf("sink got %d records", len(sink.recs))
	}
}

func TestNoRedactionIsExplicit(t *testing.T) {
	f := newFixture(t, Options{NoRedaction: true})
	Logger(slog.New(f.h)).Info("m", "password", planted)
	if r := f.records(t)[0]; r["password"] != planted {
		t.Errorf("NoRedaction record %v", r)
	}
}

// twoFaced is a LogValuer that is clean when the redactor resolves it and
// holds a secret when resolved again.
type twoFaced struct{ calls *int }

func (v twoFaced) LogValue() slog.Value {
	*v.calls++
	if *v.calls == 1 {
		return slog.StringValue("nothing to see")
	}
	return slog.GroupValue(slog.String("password", planted))
}

// Every leg logs the value the redactor inspected, not a second resolution.
func TestLogValuerResolvedOnce(t *testing.T) {
	for _, audit := range []bool{true, false} {
		f := newFixture(t, Options{})
		calls := 0
		l := slog.New(f.h)
		if audit {
			l = Logger(l)
		}
		l.Info("lazy", "v", twoFaced{&calls})
		f.h.Close()
		out := f.everything(nil)
		if strings.Contains(out, planted) || !strings.Contains(out, "nothing to see") {
			t.Errorf("audit=%v: %d resolutions; logged:\n%s", audit, calls, out)
		}
	}
}

// ContextAttrs carry request data (a user agent, a claimed id) as
// untrusted as the record's own: they are redacted on every leg, counted in
// the record's redacted=N, and a LogValuer among them is logged as the
// redactor saw it.
func TestContextAttrsRedacted(t *testing.T) {
	for _, audit := range []bool{true, false} {
		sink := &memSink{}
		calls := 0
		f := newFixture(t, Options{Sinks: []Sink{sink}, ContextAttrs: func(context.Context) []slog.Attr {
			return []slog.Attr{
				slog.String("user.id", "alice"),
				slog.String("api_key", planted),
				slog.String("user_agent", "probe/1.0 Bearer "+planted),
				slog.Any("lazy", twoFaced{&calls}),
			}
		}})
		l := slog.New(f.h)
		if audit {
			l = Logger(l)
		}
		ctx, _ := spanCtx()
		for i := range 3 {
			l.InfoContext(ctx, "request", "credential_key", "obsidian_api_key", "i", i)
		}
		f.h.Close()
		out := f.everything(sink)
		if strings.Contains(out, planted) {
			t.Errorf("audit=%v: a ContextAttrs secret leaked:\n%s", audit, out)
		}
		for _, name := range []string{`"user.id":"alice"`, `"api_key":"` + redact.Redacted + `"`, "probe/1.0 Bearer " + redact.Redacted, "obsidian_api_key", "nothing to see"} {
			if !strings.Contains(out, name) {
				t.Errorf("audit=%v: %q missing from:\n%s", audit, name, out)
			}
		}
		if audit {
			rs := f.records(t)
			if len(rs) != 3 || rs[0][redact.RedactedKey] != 2.0 || rs[1][redact.RedactedKey] != 3.0 {
				t.Errorf("records %v", rs)
			}
			if len(sink.recs) != 3 {
				t.Errorf("sink got %d records", len(sink.recs))
			}
		} else if n := strings.Count(out, `"`+redact.RedactedKey+`":`); n != 3 {
			t.Errorf("app log has %d redacted counts, want 3:\n%s", n, out)
		}
	}
}

// What is logged inside a group opened by WithGroup whose name is a secret
// key is redacted whatever its own keys say, as redact.Handler does; a group
// name that holds a secret by pattern loses it.
func TestSecretGroupRedacted(t *testing.T) {
	for _, audit := range []bool{true, false} {
		f := newFixture(t, Options{})
		l := slog.New(f.h)
		if audit {
			l = Logger(l)
		}
		creds := l.WithGroup("credentials")
		creds.Info("stored", "new", planted, slog.Group("g", "x", planted+"-g"))
		creds.With("value", planted+"-with").Info("changed", "n", 7)
		l.WithGroup("Bearer "+planted+"-name").Info("odd group", "k", "v")
		l.WithGroup("request").Info("plain group", "new", "visible")
		f.h.Close()
		out := f.everything(nil)
		if strings.Contains(out, planted) || strings.Contains(out, `"n":7`) {
			t.Errorf("audit=%v: a value inside a secret group leaked:\n%s", audit, out)
		}
		for _, want := range []string{`"credentials":{"new":"[REDACTED]","g":{"x":"[REDACTED]"}`, `"value":"[REDACTED]"`, `"n":"[REDACTED]"`, `"Bearer [REDACTED]":{"k":"v"`, `"request":{"new":"visible"`} {
			if !strings.Contains(out, want) {
				t.Errorf("audit=%v: %s missing from:\n%s", audit, want, out)
			}
		}
		if audit {
			rs := f.records(t)
			if g := rs[0]["credentials"].(map[string]any); g[redact.RedactedKey] != 2.0 {
				t.Errorf("record %v", rs[0])
			}
		}
	}
}

// After Close an audit record is not written, but its copy for the app log
// is still redacted (the attributes of an audit logger's record are checked
// while encoded, and a closed handler encodes nothing).
func TestClosedAuditRecordRedactedForApp(t *testing.T) {
	var errs []error
	f := newFixture(t, Options{OnError: func(err error) { errs = append(errs, err) }})
	audit := Logger(slog.New(f.h))
	f.h.Close()
	audit.InfoContext(context.Background(), "late login", "password", planted)
	if strings.Contains(f.app.String(), planted) || !strings.Contains(f.app.String(), `"password":"[REDACTED]"`) {
		t.Errorf("app log after Close:\n%s", f.app.String())
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrClosed) {
		t.Errorf("errors %v, want ErrClosed", errs)
	}
}

type upstreamErr struct{ User, Token string }

func (e *upstreamErr) Error() string { return "upstream rejected " + e.User + "/" + e.Token }

// Event.Err (Log, Operation.End) is logged as the error, not as its text,
// so the redactor sees its fields: a secret one is cut from the message as
// it is from slog.Any("error", err).
func TestEventErrRedactedByFields(t *testing.T) {
	const tok = "q9w8e7r6t5y4u3i2"
	err := &upstreamErr{User: "bob", Token: tok}
	f := newFixture(t, Options{})
	l := slog.New(f.h)
	if lerr := Log(context.Background(), l, Event{Type: CredentialAccess, Action: "get", Status: StatusFailed, Err: err}); lerr != nil {
		t.Fatal(lerr)
	}
	var errp error = err
	Begin(context.Background(), l, Event{Type: AdminAction, Action: "start"}).End(&errp)
	f.h.Close()
	rs := f.records(t)
	if len(rs) != 3 {
		t.Fatalf("%d records", len(rs))
	}
	for _, r := range []map[string]any{rs[0], rs[2]} {
		if r[ErrorKey] != "upstream rejected bob/"+redact.Redacted {
			t.Errorf("record %v", r)
		}
	}
	if strings.Contains(f.app.String(), tok) {
		t.Errorf("app log:\n%s", f.app.String())
	}
}

// everything returns all the fixture's handler wrote: every file of the
// audit directory, the app log, and the bodies sink received (if any).
func (f *fixture) everything(sink *memSink) string {
	var all strings.Builder
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(f.dir, e.Name()))
		all.Write(data)
	}
	all.WriteString(f.app.String())
	if sink != nil {
		for _, r := range sink.recs {
			all.WriteString(r.body)
		}
	}
	return all.String()
}

// TestAppRecordsRedactedWherever: an app record goes to the app handler as
// it is only when nothing in it needs redacting; a secret anywhere in it (the
// message, the first or last of the attributes a record keeps inline, one
// past them, a group, a LogValuer's value) is redacted and counted, and a
// tag anywhere among the attributes still makes it an audit record.
func TestAppRecordsRedactedWherever(t *testing.T) {
	plain := []slog.Attr{slog.String("resource", "obsidian_api_key"), slog.Int("attempt", 3), slog.Bool("cached", false), slog.Duration("elapsed", time.Second), slog.String("credential_key", "obsidian_api_key"), slog.Int("n", 6)}
	secrets := map[string]slog.Attr{
		"key":       slog.String("api_key", planted),
		"value":     slog.String("note", "Authorization: Bearer "+planted),
		"group":     slog.Group("client", slog.String("password", planted)),
		"logvaluer": slog.Any("lazy", lazySecret{}),
	}
	for name, secret := range secrets {
		for _, at := range []int{0, 4, len(plain)} {
			t.Run(fmt.Sprintf("%s at %d", name, at), func(t *testing.T) {
				f := newFixture(t, Options{})
				l := slog.New(f.h)
				l.LogAttrs(context.Background(), slog.LevelInfo, "plain", slices.Insert(slices.Clone(plain), at, secret)...)
				l.LogAttrs(context.Background(), slog.LevelInfo, "clean", plain...)
				l.LogAttrs(context.Background(), slog.LevelInfo, "tagged", slices.Insert(slices.Clone(plain), at, secret, Audit)...)
				f.h.Close()
				if out := f.everything(nil); strings.Contains(out, planted) {
					t.Fatalf("secret leaked:\n%s", out)
				}
				lines := strings.Split(strings.TrimSpace(f.app.String()), "\n")
				if len(lines) != 3 || !strings.Contains(lines[0], `"msg":"plain"`) || !strings.Contains(lines[0], `"redacted":1`) ||
					!strings.Contains(lines[1], `"msg":"clean"`) || strings.Contains(lines[1], `"redacted"`) ||
					!strings.Contains(lines[2], `"msg":"tagged"`) || !strings.Contains(lines[2], `"audit":true`) {
					t.Errorf("app log:\n%s", f.app)
				}
				if rs := f.records(t); len(rs) != 1 || rs[0]["msg"] != "tagged" || rs[0][redact.RedactedKey] != 1.0 {
					t.Errorf("audit records: %v", rs)
				}
			})
		}
	}
	t.Run("message", func(t *testing.T) {
		f := newFixture(t, Options{})
		slog.New(f.h).LogAttrs(context.Background(), slog.LevelInfo, "retry with Authorization: Bearer "+planted, plain...)
		f.h.Close()
		if !strings.Contains(f.app.String(), `Bearer [REDACTED]","resource":"obsidian_api_key"`) || strings.Contains(f.app.String(), planted) {
			t.Errorf("app log:\n%s", f.app)
		}
	})
}

type lazySecret struct{}

func (lazySecret) LogValue() slog.Value { return slog.GroupValue(slog.String("token", planted)) }
