package chain

import (
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// resealUnkeyed rewrites the unkeyed file at path from seq first with prev
// first, each line's body mapped by edit, as anyone can (sha256).
func resealUnkeyed(t *testing.T, path string, seq uint64, prev [32]byte, edit func(i int, body string) string) {
	t.Helper()
	var out strings.Builder
	for i, raw := range strings.SplitAfter(strings.TrimSuffix(string(mustRead(t, path)), "\n"), "\n") {
		l, err := ParseLine([]byte(strings.TrimSuffix(raw, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		_, afterPrev, _ := parseHead(l.Raw)
		body := edit(i, string(l.Sealed[afterPrev:]))
		s := fmt.Sprintf(`{"seq":%d,"prev":"%x"%s`, seq, prev, body)
		prev = sha256.Sum256([]byte(s))
		fmt.Fprintf(&out, `%s,"mac":"%x"}`+"\n", s, prev)
		seq++
	}
	if err := os.WriteFile(path, []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Forms the writer never writes, which a reader of FORMAT.md would judge
// otherwise than encoding/json does, are not sealed records: seq 0 (it
// already failed: not as "not a sealed line"), a first line with a
// predecessor, a special record with a duplicate member or a member
// spelled in another case. Before, the last four verified INTACT. Members a
// special record does not have are still ignored.
func TestVerifyRejectsFormsTheWriterNeverWrites(t *testing.T) {
	var one [32]byte
	one[0] = 1
	for _, c := range []struct {
		name  string
		seq   uint64
		prev  [32]byte
		edit  func(i int, body string) string
		class Class // "": intact
	}{
		{"untouched", 1, [32]byte{}, nil, ""},
		{"unknown member in open record", 1, [32]byte{}, func(i int, b string) string {
			if i == 0 {
				return b + `,"later":1`
			}
			return b
		}, ""},
		{"seq 0", 0, [32]byte{}, nil, Modified},
		{"seq 1 with a prev", 1, one, nil, Modified},
		{"duplicate file in close record", 1, [32]byte{}, func(i int, b string) string {
			if strings.HasPrefix(b, `,"rec":"close"`) {
				return strings.Replace(b, `"file":`, `"file":"other.jsonl","file":`, 1)
			}
			return b
		}, Modified},
		{"File in open record", 1, [32]byte{}, func(i int, b string) string {
			if i == 0 {
				return strings.Replace(b, `"file":`, `"File":`, 1)
			}
			return b
		}, Modified},
		{"duplicate epoch in open record", 1, [32]byte{}, func(i int, b string) string {
			if i == 0 {
				return strings.Replace(b, `"epoch":0`, `"epoch":0,"epoch":0`, 1)
			}
			return b
		}, Modified},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLog(t, dir, nil, 3, rotate.Options{Now: fakeClock()})
			edit := c.edit
			if edit == nil {
				edit = func(_ int, b string) string { return b }
			}
			resealUnkeyed(t, files(t, dir)[0], c.seq, c.prev, edit)
			rep := verify(t, dir, nil)
			if c.class == "" {
				assertIntact(t, rep)
				return
			}
			if rep.Intact || !hasClass(rep, c.class) {
				t.Errorf("want %s: %v\n%s", c.class, classes(rep), reportText(rep))
			}
		})
	}
}
