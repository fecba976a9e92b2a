package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/internal/jsonenc/spec"
	"github.com/slogaudit/slogaudit/rotate"
)

// escapedInAudit reports whether an audit line may carry r only escaped
// (FORMAT.md §2), from Go's Unicode tables rather than jsonenc's list.
var escapedInAudit = spec.Escaped

// EscapedInAudit is escapedInAudit for package handler_test (FuzzEncode).
var EscapedInAudit = escapedInAudit

// hostile holds the characters of the security review's probe (U+202E,
// U+009B, U+0085, DEL) and the first and last character of each range the
// encoder escapes beyond what log/slog escapes, in ASCII text.
const hostile = "evil\u202etxt.exe\u009b31m\u0085\x7f|\u0080\u009f\u00ad\u061c\u180e\u200b\u200f" +
	"\u2028\u2029\u202a\u202e\u2060\u2064\u2066\u2069\u206a\u206f\ufeff" +
	"\U0001bca0\U0001bca3\U0001d173\U0001d17a\U000e0001\U000e0020\U000e007f|end"

type hostileText struct{}

func (hostileText) MarshalText() ([]byte, error) { return []byte(hostile), nil }

// rawEscapable returns the characters of data that an audit file may hold
// only escaped (newlines end lines; NUL bytes are a preallocated file's
// unwritten end).
func rawEscapable(data []byte) []rune {
	var raw []rune
	for _, r := range string(bytes.TrimRight(data, "\x00")) {
		if r != '\n' && escapedInAudit(r) {
			raw = append(raw, r)
		}
	}
	return raw
}

// Text from outside with control, bidi and invisible format characters in
// every place a record can carry it (message, keys, group names, values,
// errors, values marshaled with encoding/json, a json.RawMessage, an
// Event's members) reaches the file only escaped, and the file decodes to
// what log/slog's JSONHandler writes raw for the same record, and verifies.
func TestAuditLineEscapesControlAndFormatCharacters(t *testing.T) {
	if n := len(rawEscapable([]byte(hostile))); n != 29 {
		t.Fatalf("hostile holds %d characters to escape, want 29", n)
	}
	type req struct {
		Path string
		M    map[string]string
	}
	log := func(h slog.Handler) {
		l := slog.New(h).With("pre"+hostile, hostile).WithGroup("g" + hostile)
		l.Info(hostile,
			slog.String("s", hostile),
			slog.String(hostile, "key"),
			slog.Any("err", errors.New(hostile)),
			slog.Any("struct", req{Path: hostile, M: map[string]string{hostile: hostile}}),
			slog.Any("text", hostileText{}),
			slog.Any("raw", json.RawMessage(`{"raw":"`+hostile+`"}`)),
			slog.Group("grp", slog.String("in"+hostile, hostile)),
		)
	}
	for _, noRedaction := range []bool{true, false} {
		f := newFixture(t, Options{AuditOnlyToFile: true, NoRedaction: noRedaction})
		log(f.h.WithAttrs([]slog.Attr{Audit}))
		err := Log(context.Background(), slog.New(f.h), Event{Type: CredentialAccess, Action: "get", ResourceType: "credential",
			Resource: hostile, Status: StatusDenied, Reason: hostile, Err: errors.New(hostile)})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.h.Close(); err != nil {
			t.Fatal(err)
		}
		paths, err := rotate.List(f.dir, chain.DefaultPrefix, chain.DefaultExt)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.Valid(data) {
				t.Errorf("%s is not UTF-8", p)
			}
			if raw := rawEscapable(data); len(raw) > 0 {
				t.Errorf("noRedaction %v: %s holds %U raw:\n%s", noRedaction, p, raw, data)
			}
		}
		if rep, err := chain.Verify(f.dir, chain.VerifyOptions{Key: testKey}); err != nil || !rep.Intact {
			t.Fatalf("verify: %v %+v", err, rep)
		}
		recs := f.records(t)
		if len(recs) != 2 {
			t.Fatalf("%d records, want 2", len(recs))
		}
		if !noRedaction {
			continue // what the redactor leaves is its business; the bytes are checked above
		}

		var buf bytes.Buffer
		log(slog.NewJSONHandler(&buf, nil))
		var want map[string]any
		if err := json.Unmarshal(buf.Bytes(), &want); err != nil {
			t.Fatal(err)
		}
		got := recs[0]
		delete(got, "time")
		delete(want, "time")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("record decodes to\n%+q\nslog's to\n%+q", got, want)
		}
		if got["msg"] != hostile || got["g"+hostile].(map[string]any)["s"] != hostile {
			t.Errorf("record decodes to %+q", got)
		}
		ev := recs[1]
		for _, k := range []string{ResourceKey, ReasonKey, ErrorKey} {
			if ev[k] != hostile {
				t.Errorf("event member %s decodes to %+q", k, ev[k])
			}
		}
	}
}

// A trail whose older lines carry these characters raw (as the encoder
// wrote them before it escaped them) still verifies, with new lines
// (escaped) after them: the writer that resumes it, and the verifier, take
// the sealed bytes as they are.
func TestRawLinesOfOlderWritersStillVerify(t *testing.T) {
	dir := t.TempDir()
	old := []byte(`"time":"2026-11-27T12:00:00.000000000Z","level":"WARN","msg":"` + hostile + `","resource":"` + hostile + `"`)
	w, err := chain.Open(chain.Options{Key: testKey, Rotate: rotate.Options{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(old, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Dir: dir, Key: testKey, AuditOnlyToFile: true, NoRedaction: true})
	if err != nil {
		t.Fatal(err)
	}
	slog.New(h).Warn(hostile, Audit, "resource", hostile)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: testKey})
	if err != nil || !rep.Intact {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	f := &fixture{dir: dir}
	recs := f.records(t)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for i, r := range recs {
		if r["msg"] != hostile || r["resource"] != hostile {
			t.Errorf("record %d decodes to %+q", i, r)
		}
	}
	paths, err := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	if err != nil || len(paths) != 2 {
		t.Fatalf("files %v, %v", paths, err)
	}
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if raw := len(rawEscapable(data)) > 0; raw != (i == 0) || raw && !bytes.Contains(data, old) {
			t.Errorf("file %d: raw characters %v:\n%s", i, raw, data)
		}
	}
}

// BenchmarkAppendJSONMarshal: a value the encoder writes with
// encoding/json (a struct, as slog's JSON handler writes it).
func BenchmarkAppendJSONMarshal(b *testing.B) {
	type request struct {
		Method, Path, UserAgent string
		Status                  int
	}
	v := request{"GET", "/credentials/obsidian_api_key", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", 200}
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	for b.Loop() {
		buf = appendJSONMarshal(buf[:0], v)
	}
}
