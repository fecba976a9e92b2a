package query_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

// smallLog writes events r0..r9 into one file and closes it.
func smallLog(t *testing.T, key []byte) (dir, path string) {
	dir = t.TempDir()
	h := openLog(t, dir, key, rotate.Options{})
	for i := range 10 {
		if err := handler.Log(context.Background(), slog.New(h), handler.Event{Type: "test", Action: "write",
			Resource: fmt.Sprint("r", i), Status: handler.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	return dir, plainFile(t, dir)
}

// editLines rewrites the file at path through edit, which gets and returns
// its lines (without newlines).
func editLines(t *testing.T, path string, edit func([]string) []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	lines = edit(lines)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// verdicts returns resource → verified, and checks every event was seen once.
func verdicts(t *testing.T, r *query.Reader) map[string]bool {
	t.Helper()
	p := mustQuery(t, r, query.Request{Order: query.OldestFirst})
	v := map[string]bool{}
	for _, e := range p.Events {
		if _, dup := v[e.Resource]; dup {
			t.Errorf("%s twice", e.Resource)
		}
		v[e.Resource] = e.Verified
	}
	return v
}

// wantVerified checks that exactly the resources in bad are unverified.
func wantVerified(t *testing.T, v map[string]bool, n int, bad ...string) {
	t.Helper()
	if len(v) != n {
		t.Errorf("%d events, want %d: %v", len(v), n, v)
	}
	for res, ok := range v {
		if want := !contains(bad, res); ok != want {
			t.Errorf("%s: verified %v, want %v", res, ok, want)
		}
	}
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if x == y {
			return true
		}
	}
	return false
}

func TestVerifiedIntact(t *testing.T) {
	dir, _ := smallLog(t, testKey)
	wantVerified(t, verdicts(t, newReader(t, dir, testKey)), 10)
}

func TestVerifiedModifiedLine(t *testing.T) {
	dir, path := smallLog(t, testKey)
	editLines(t, path, func(l []string) []string {
		// line 1 is the open record; r4 is line 6
		l[5] = strings.Replace(l[5], `"status":"success"`, `"status":"failed"`, 1)
		return l
	})
	r := newReader(t, dir, testKey)
	wantVerified(t, verdicts(t, r), 10, "r4")
	// The edit is what a filter sees, flagged.
	p := mustQuery(t, r, query.Request{Filter: query.Filter{Status: "failed"}})
	if len(p.Events) != 1 || p.Events[0].Resource != "r4" || p.Events[0].Verified {
		t.Errorf("%+v", p)
	}
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: testKey})
	if err != nil || rep.Intact {
		t.Fatalf("chain.Verify agrees the file was modified: %v %v", rep, err)
	}
}

func TestVerifiedForgedLines(t *testing.T) {
	dir, path := smallLog(t, testKey)
	editLines(t, path, func(l []string) []string {
		// A copy of r2's line with another resource, after r2.
		forged := strings.Replace(l[3], `"resource":"r2"`, `"resource":"forged-copy"`, 1)
		// A line made up from scratch, after r6.
		made := fmt.Sprintf(`{"seq":8,"prev":"%s","msg":"x","event":"test","resource":"forged-new","mac":"%s"}`,
			strings.Repeat("ab", 32), strings.Repeat("cd", 32))
		out := append([]string{}, l[:4]...)
		out = append(out, forged)
		out = append(out, l[4:8]...)
		out = append(out, made)
		return append(out, l[8:]...)
	})
	wantVerified(t, verdicts(t, newReader(t, dir, testKey)), 12, "forged-copy", "forged-new")
}

func TestVerifiedDeletedAndAppended(t *testing.T) {
	dir, path := smallLog(t, testKey)
	var r8 string
	editLines(t, path, func(l []string) []string {
		r8 = l[9]
		// Delete r3 (line 5); append a copy of r8 after the close record.
		return append(append(append([]string{}, l[:4]...), l[5:]...), r8)
	})
	p := mustQuery(t, newReader(t, dir, testKey), query.Request{Order: query.OldestFirst})
	var got []string
	for _, e := range p.Events {
		got = append(got, fmt.Sprintf("%s:%v", e.Resource, e.Verified))
	}
	// r4 no longer links to its predecessor; the copy of r8 after the close
	// record was never sealed there.
	want := "r0:true r1:true r2:true r4:false r5:true r6:true r7:true r8:true r9:true r8:false"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestVerifiedReplacedByGarbage(t *testing.T) {
	dir, path := smallLog(t, testKey)
	editLines(t, path, func(l []string) []string {
		l[5] = "not a sealed line" // r4
		return l
	})
	v := verdicts(t, newReader(t, dir, testKey))
	if _, ok := v["r4"]; ok || v["r5"] || !v["r3"] || !v["r6"] {
		t.Errorf("%v", v)
	}
}

func TestVerifiedWithoutKey(t *testing.T) {
	dir, _ := smallLog(t, testKey)
	r := newReader(t, dir, nil)
	v := verdicts(t, r)
	if len(v) != 10 {
		t.Fatalf("%v", v)
	}
	for res, ok := range v {
		if ok {
			t.Errorf("%s verified without the key", res)
		}
	}
	// Querying still works.
	if p := mustQuery(t, r, query.Request{Filter: query.Filter{Resource: "r3"}}); len(p.Events) != 1 {
		t.Errorf("%+v", p)
	}
	// The wrong key verifies nothing either.
	wrong := bytes.Repeat([]byte{1}, chain.KeySize)
	for res, ok := range verdicts(t, newReader(t, dir, wrong)) {
		if ok {
			t.Errorf("%s verified with the wrong key", res)
		}
	}
}

func TestVerifiedUnkeyed(t *testing.T) {
	dir, path := smallLog(t, nil)
	wantVerified(t, verdicts(t, newReader(t, dir, nil)), 10)
	// A key given for unkeyed files: a downgrade, nothing verifies.
	for res, ok := range verdicts(t, newReader(t, dir, testKey)) {
		if ok {
			t.Errorf("%s verified as keyed", res)
		}
	}
	// Edit r4 and recompute its SHA-256: r4 verifies by itself, but r5 was
	// sealed over the original, which gives r4 away.
	editLines(t, path, func(l []string) []string {
		line := strings.Replace(l[5], `"status":"success"`, `"status":"denied"`, 1)
		sealed := line[:len(line)-74]
		sum := sha256.Sum256([]byte(sealed))
		l[5] = sealed + `,"mac":"` + hex.EncodeToString(sum[:]) + `"}`
		return l
	})
	wantVerified(t, verdicts(t, newReader(t, dir, nil)), 10, "r4")
}
