package redact_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/slogaudit/slogaudit/redact"
)

// noTime drops the time so that the examples' output is stable.
func noTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func ExampleRedactor_Handler() {
	h := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime})
	logger := slog.New(redact.Default().Handler(h))

	logger.Info("login",
		"user", "bob",
		"password", "hunter2", // secret by key: the key stays, the value goes
		"password_policy", "strict", // the name of a secret: kept
		"dsn", "postgres://app:s3cret@db:5432/app", // URL password
	)
	// Output:
	// {"level":"INFO","msg":"login","user":"bob","password":"[REDACTED]","password_policy":"strict","dsn":"postgres://app:[REDACTED]@db:5432/app","redacted":2}
}

func ExampleRedactor_Attr() {
	r := redact.Default()
	type creds struct {
		User   string `json:"user"`
		APIKey string `json:"api_key"`
		KeyID  string `json:"key_id"`
	}
	a, n := r.Attr(slog.Any("account", creds{User: "bob", APIKey: "k-123", KeyID: "kid-1"}))
	fmt.Println(a, n)

	a, n = r.Attr(slog.Any("err", errors.New(`Get "https://api.example.com/v1?access_token=abc123": 401`)))
	fmt.Println(a, n)

	a, n = r.Attr(slog.String("method", "GET")) // nothing to do: returned as is
	fmt.Println(a, n)
	// Output:
	// account=[user=bob api_key=[REDACTED] key_id=kid-1] 1
	// err=Get "https://api.example.com/v1?access_token=[REDACTED]": 401 1
	// method=GET 0
}

// A handler of one's own can pass a record that holds nothing to redact on
// as it is, and redact only the others.
func ExampleRedactor_CleanRecord() {
	r := redact.Default()
	clean := slog.NewRecord(time.Time{}, slog.LevelInfo, "credential read", 0)
	clean.AddAttrs(slog.String("credential_key", "obsidian_api_key"), slog.Int("attempt", 1))
	dirty := slog.NewRecord(time.Time{}, slog.LevelInfo, "credential stored", 0)
	dirty.AddAttrs(slog.String("credential_key", "obsidian_api_key"), slog.String("password", "hunter2"))
	fmt.Println(r.CleanRecord(clean), r.CleanRecord(dirty))
	// Output:
	// true false
}

func ExampleRedactor_String() {
	msg, n := redact.Default().String("retrying with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln")
	fmt.Println(msg, n)
	// Output:
	// retrying with Authorization: Bearer [REDACTED] 1
}

func ExampleRedactor_ReplaceAttr() {
	r := redact.Default()
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			return r.ReplaceAttr(groups, noTime(groups, a))
		},
	})
	slog.New(h).WithGroup("req").Info("proxy", "url", "https://u:pw@example.com/", "Cookie", "sid=1")
	// Output:
	// level=INFO msg=proxy req.url=https://u:[REDACTED]@example.com/ req.Cookie=[REDACTED]
}

func ExampleNew_fingerprint() {
	key := []byte("a key of 16 bytes or more, kept secret")
	r, err := redact.New(redact.Options{Mode: redact.Fingerprint, FingerprintKey: key})
	if err != nil {
		panic(err)
	}
	a, _ := r.Attr(slog.String("api_key", "k-123"))
	b, _ := r.Attr(slog.String("url", "https://example.com/?api_key=k-123"))
	fmt.Println(a)
	fmt.Println(b)
	// The same secret has the same fingerprint, so records can be correlated.
	fmt.Println(a.Value.String() == redact.FingerprintOf(key, "k-123"))
	// Output:
	// api_key=hmac-sha256:aec90a6a1bbae42b
	// url=https://example.com/?api_key=hmac-sha256:aec90a6a1bbae42b
	// true
}

func ExampleNew_rules() {
	r, err := redact.New(redact.Options{
		Keys:      []string{"pin"},     // also redact card_pin, PIN, ...
		AllowKeys: []string{"session"}, // a session name here, not a session id
	})
	if err != nil {
		panic(err)
	}
	for _, k := range []string{"card_pin", "pin_length", "session", "session_id"} {
		a, _ := r.Attr(slog.String(k, "v"))
		fmt.Println(a)
	}
	// Output:
	// card_pin=[REDACTED]
	// pin_length=v
	// session=v
	// session_id=[REDACTED]
}

func ExampleSecret() {
	type config struct {
		User     string
		Password redact.Secret
	}
	c := config{User: "app", Password: "hunter2"}
	fmt.Printf("%v %+v %#v\n", c.Password, c, c.Password)
	// string(c.Password) is the value, for the code that needs it.
	fmt.Println(len(string(c.Password)))
	// Output:
	// [REDACTED] {User:app Password:[REDACTED]} redact.Secret("[REDACTED]")
	// 7
}
