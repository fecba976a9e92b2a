package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverRenders(t *testing.T) {
	s := Secret("hunter2")
	type wrap struct {
		S Secret
		P *Secret
	}
	w := wrap{S: s, P: &s}

	var outs []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%-8v", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(f, s), fmt.Sprintf(f, w), fmt.Sprintf(f, []Secret{s}))
	}
	outs = append(outs, fmt.Sprint(s), fmt.Sprintln(s, &s), s.String(), s.GoString())
	for _, v := range []any{s, &s, w, map[string]Secret{"k": s}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	txt, _ := s.MarshalText()
	outs = append(outs, string(txt))
	// slog without the redactor: JSON and text handlers.
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "s", s, "w", w)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "s", s, "w", w, "p", &s)
	outs = append(outs, buf.String())

	for _, o := range outs {
		if strings.Contains(o, "hunter2") || strings.Contains(o, "68756e74657232") /* hex */ {
			t.Errorf("secret rendered: %s", o)
		}
	}
	if got := fmt.Sprintf("%#v", s); got != `redact.Secret("[REDACTED]")` {
		t.Errorf("%%#v = %s", got)
	}
	if got := fmt.Sprintf("%q", s); got != `"[REDACTED]"` {
		t.Errorf("%%q = %s", got)
	}
	if string(s) != "hunter2" {
		t.Error("conversion to string must give the value")
	}
}
