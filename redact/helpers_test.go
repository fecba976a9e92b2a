package redact

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// logJSON logs through r.Handler over a JSON handler and returns the line.
func logJSON(t testing.TB, r *Redactor, f func(l *slog.Logger)) string {
	t.Helper()
	var buf bytes.Buffer
	f(slog.New(r.Handler(slog.NewJSONHandler(&buf, nil))))
	out := buf.String()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("invalid JSON line: %s", line)
		}
	}
	return out
}

// attrJSON renders attributes as the JSON handler would inside a record.
func attrJSON(t testing.TB, as ...slog.Attr) string {
	t.Helper()
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(g []string, a slog.Attr) slog.Attr {
		if len(g) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
			return slog.Attr{}
		}
		return a
	}})
	slog.New(h).LogAttrs(t.Context(), slog.LevelInfo, "", as...)
	return strings.TrimSpace(buf.String())
}

// checkOutput fails unless out contains none of secrets and all of keep.
func checkOutput(t testing.TB, out string, secrets, keep []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("secret %q in output:\n%s", s, out)
		}
	}
	for _, k := range keep {
		if !strings.Contains(out, k) {
			t.Errorf("%q missing from output:\n%s", k, out)
		}
	}
}

// asJSON returns the JSON form of a value, for comparing shapes.
func asJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
