package chain

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// Append refuses a body the format reserves or cannot hold, and writes
// nothing: before, each was sealed and acknowledged, and the honest trail
// then failed verification (a reserved record kind is judged as one; a raw
// newline splits the line; a NUL ends the file's content).
func TestAppendRefusesBodiesThatBreakTheFormat(t *testing.T) {
	for _, body := range []string{
		`"rec":"checkpoint","time":"2026-11-27T01:00:00.000000000Z","epoch":0,"file":"x"`,
		`"rec":"pruned","file":"x","through_seq":1,"through_chain":"00"`,
		`"rec":"open","time":"2026-11-27T01:00:00.000000000Z"`,
		`"rec":"close","reason":"close"`,
		`"rec":"openx"`, // ParseLine classifies by prefix
		"\"msg\":\"two\nlines\"",
		"\"msg\":\"nul\x00here\"",
	} {
		t.Run(fmt.Sprintf("%.24q", body), func(t *testing.T) {
			dir := t.TempDir()
			w := openWriter(t, dir, testKey, rotate.Options{})
			if err := w.Append([]byte(`"msg":"before"`), nil); err != nil {
				t.Fatal(err)
			}
			err := w.Append([]byte(body), nil)
			if !errors.Is(err, ErrBadBody) {
				t.Errorf("Append(%q) = %v, want ErrBadBody", body, err)
			}
			if err := w.Append([]byte(`"msg":"after"`), nil); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			rep := verify(t, dir, testKey)
			assertIntact(t, rep)
			if rep.Lines != 4 { // open, before, after, close
				t.Errorf("%d lines, want 4:\n%s", rep.Lines, reportText(rep))
			}
		})
	}
}

// Bodies that only look close to reserved ones are audit records.
func TestAppendAcceptsOrdinaryBodies(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, testKey, rotate.Options{})
	for _, body := range []string{``, `"rec":"user"`, `"msg":"x","rec":"checkpoint"`, `"recs":"open"`, `"msg":"line\nescaped"`} {
		if err := w.Append([]byte(body), nil); err != nil {
			t.Errorf("Append(%q): %v", body, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	assertIntact(t, verify(t, dir, testKey))
}

// BenchmarkAppend measures the hot path of every audit record with a body
// as the handler writes it.
func BenchmarkAppend(b *testing.B) {
	dir := b.TempDir()
	w, err := Open(Options{Key: testKey, Rotate: rotate.Options{Dir: dir, MaxBytes: 64 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	body := []byte(`"time":"2026-11-27T12:00:01.000000000Z","level":"INFO","msg":"start mcp_server obsidian: success","event":"admin_action","action":"start","resource_type":"mcp_server","resource":"obsidian","status":"success","user.id":"` + strings.Repeat("a", 40) + `"`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := w.Append(body, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	w.Close()
}

// BenchmarkAppendCheckBody measures Append's body check alone.
func BenchmarkAppendCheckBody(b *testing.B) {
	body := []byte(`"time":"2026-11-27T12:00:01.000000000Z","level":"INFO","msg":"start mcp_server obsidian: success","event":"admin_action","action":"start","resource_type":"mcp_server","resource":"obsidian","status":"success","user.id":"` + strings.Repeat("a", 40) + `"`)
	for range b.N {
		if checkBody(body) != nil {
			b.Fatal("refused")
		}
	}
}
