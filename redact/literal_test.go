package redact

import (
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// The verdicts kept for literals must never turn a check into a pass for
// text that could hold something else.

// cleanLiteral is a literal the default rules find nothing in, long enough
// to be scanned.
const cleanLiteral = "credential accessed by operator"

func literalsKnown(t *testing.T) {
	t.Helper()
	if lo, n := readOnly(); n == 0 {
		if runtime.GOOS == "linux" {
			t.Fatalf("read-only range unknown on linux (lo=%#x)", lo)
		}
		t.Skip("no read-only range on " + runtime.GOOS + ": every text is checked")
	}
}

func TestLiteralEntry(t *testing.T) {
	literalsKnown(t)
	r := Default()
	if e := r.lits.entry(cleanLiteral, litText); e == 0 {
		t.Errorf("literal %q: no entry, want one", cleanLiteral)
	}
	if e := r.lits.entry(cleanLiteral[4:9], litText); e == 0 {
		t.Errorf("substring of a literal: no entry, want one")
	}
	heap := strings.Clone(cleanLiteral)
	if e := r.lits.entry(heap, litText); e != 0 {
		t.Errorf("heap copy of a literal: entry %#x, want none", e)
	}
	b := []byte(cleanLiteral)
	b[0] = 'C' // written to, so a copy: the compiler may leave bytes never written in read-only data
	if e := r.lits.entry(bytesString(b), litText); e != 0 {
		t.Errorf("string over a []byte: entry %#x, want none", e)
	}
	if e := r.lits.entry("", litText); e != 0 {
		t.Errorf("empty string: entry %#x, want none", e)
	}
	if a, b := r.lits.entry(cleanLiteral, litText), r.lits.entry(cleanLiteral, litKey); a == b {
		t.Errorf("text and key verdicts share entry %#x", a)
	}
}

func TestLiteralKeptOnlyWhenClean(t *testing.T) {
	literalsKnown(t)
	r := mustNew(t, Options{})
	const dirty = "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789"
	for range 3 { // a second check must not be served from the memo
		if got, n := r.String(dirty); n != 1 || strings.Contains(got, "abcdefghij") {
			t.Fatalf("String(%q) = %q, %d; want the token redacted", dirty, got, n)
		}
		if r.lits.clean(r.lits.entry(dirty, litText)) {
			t.Fatalf("a literal with a secret was kept as clean")
		}
		if a, n := r.Attr(slog.String("password", "hunter2-literal")); n != 1 || a.Value.String() == "hunter2-literal" {
			t.Fatalf("password literal: %v, %d; want redacted", a, n)
		}
		if r.lits.clean(r.lits.entry("password", litKey)) {
			t.Fatalf("a secret key was kept as clean")
		}
	}
	// A clean prefix of a literal says nothing about the whole.
	const kv = "password=hunter2-literal"
	if _, n := r.String(kv[:len("password")]); n != 0 {
		t.Fatalf("String(%q) redacted %d", kv[:len("password")], n)
	}
	if got, n := r.String(kv); n != 1 || strings.Contains(got, "hunter2") {
		t.Fatalf("String(%q) = %q, %d after its clean prefix; want the value redacted", kv, got, n)
	}
	if _, n := r.String(cleanLiteral); n != 0 {
		t.Fatalf("String(%q) redacted %d", cleanLiteral, n)
	}
	if !r.lits.clean(r.lits.entry(cleanLiteral, litText)) {
		t.Errorf("clean literal text not kept")
	}
	if !r.Clean(slog.String("client", cleanLiteral)) {
		t.Fatalf("clean literal attribute not clean")
	}
	// The key steps after the first, which most keys never reach.
	if r.secretKeyRest("client") || !r.lits.clean(r.lits.entry("client", litKey)) {
		t.Errorf("clean literal key not kept")
	}
	if !r.secretKeyRest("password") || r.lits.clean(r.lits.entry("password", litKey)) {
		t.Errorf("secret literal key kept as clean")
	}
}

// TestLiteralPerRedactor: a verdict belongs to the rules that made it.
func TestLiteralPerRedactor(t *testing.T) {
	literalsKnown(t)
	loose, strict := mustNew(t, Options{}), mustNew(t, Options{Keys: []string{"client"}})
	for range 2 {
		if a, n := loose.Attr(slog.String("client", "acme-corp")); n != 0 || a.Value.String() != "acme-corp" {
			t.Fatalf("default rules: client = %v, %d; want kept", a, n)
		}
		if a, n := strict.Attr(slog.String("client", "acme-corp")); n != 1 || a.Value.String() == "acme-corp" {
			t.Fatalf("rule client: client = %v, %d; want redacted", a, n)
		}
	}
}

// TestLiteralSlotOverwrite: slots hold one verdict each; an entry is clean
// only while its own slot holds exactly it.
func TestLiteralSlotOverwrite(t *testing.T) {
	var l literals
	e1 := uint64(1)<<21 | 5<<1 | litText
	e2 := e1
	for litSlot(e2) != litSlot(e1) || e2 == e1 {
		e2 += 1 << 21
	}
	l.keep(e1)
	if !l.clean(e1) || l.clean(e2) {
		t.Fatalf("after keep(e1): clean(e1)=%v clean(e2)=%v", l.clean(e1), l.clean(e2))
	}
	l.keep(e2)
	if l.clean(e1) || !l.clean(e2) {
		t.Fatalf("after keep(e2): clean(e1)=%v clean(e2)=%v", l.clean(e1), l.clean(e2))
	}
	l.keep(0)
	if l.clean(0) {
		t.Fatalf("entry 0 (not a literal) is clean")
	}
}

func TestLiteralConcurrent(t *testing.T) {
	r := mustNew(t, Options{})
	keys := []string{"client", "resource", "password", "session", "address", "api_key", "version"}
	vals := []string{cleanLiteral, "127.0.0.1", "token=abcdef0123456789", "obsidian_api_key", "https://u:pw@host/x"}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k, v := keys[(i+g)%len(keys)], vals[(i*3+g)%len(vals)]
				want := Default().keys.secret(k) || strings.Contains(v, "token=") || strings.Contains(v, "pw@")
				if got := !r.Clean(slog.String(k, v)); got != want {
					t.Errorf("Clean(%s=%q) dirty=%v, want %v", k, v, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestFindReadOnly(t *testing.T) {
	const maps = `00400000-00615000 r-xp 00000000 08:01 1234       /srv/bin/app
00615000-00851000 r--p 00215000 08:01 1234       /srv/bin/app
00851000-00890000 rw-p 00451000 08:01 1234       /srv/bin/app
c000000000-c004000000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--p 00000000 00:00 0
7f0000001000-7f0000002000 r--p 00000000 08:01 99 /srv/bin/app (deleted)
`
	for _, tc := range []struct {
		p      uint64
		lo, n  uintptr
		reason string
	}{
		{0x00700000, 0x00615000, 0x23c000, "read-only data"},
		{0x00500000, 0x00400000, 0x215000, "text (read-only, executable)"},
		{0x00615000, 0x00615000, 0x23c000, "first byte"},
		{0x00850fff, 0x00615000, 0x23c000, "last byte"},
		{0x00851000, 0, 0, "writable data"},
		{0xc000001000, 0, 0, "heap"},
		{0x7f0000000800, 0, 0, "anonymous read-only"},
		{0x7f0000001800, 0x7f0000001000, 0x1000, "deleted executable, still read-only"},
		{0x00100000, 0, 0, "not mapped"},
	} {
		lo, n := findReadOnly(strings.NewReader(maps), tc.p)
		if lo != tc.lo || n != tc.n {
			t.Errorf("%s (%#x): got [%#x, +%#x), want [%#x, +%#x)", tc.reason, tc.p, lo, n, tc.lo, tc.n)
		}
	}
	if lo, n := findReadOnly(strings.NewReader("garbage\n00400000 r--p\nzz-yy r--p 0 0 1 x\n"), 0x400000); n != 0 {
		t.Errorf("malformed maps: got [%#x, +%#x), want unknown", lo, n)
	}
}

func mustNew(t testing.TB, opts Options) *Redactor {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLiteralEntryWithinRange: a string that starts in the range and runs
// past its end (into the next mapping, writable data in a non-PIE build)
// has no entry.
func TestLiteralEntryWithinRange(t *testing.T) {
	var buf [32]byte
	l := literals{lo: uintptr(unsafe.Pointer(&buf[0])), n: 16} // buf[:16] stands for the range
	for _, tc := range []struct {
		from, n int
		want    bool
	}{
		{0, 16, true}, {4, 12, true}, {15, 1, true},
		{12, 5, false}, {12, 16, false}, {0, 17, false}, {16, 1, false},
	} {
		s := unsafe.String(&buf[tc.from], tc.n)
		if got := l.entry(s, litText) != 0; got != tc.want {
			t.Errorf("[%d, +%d) in [0, +16): entry %v, want %v", tc.from, tc.n, got, tc.want)
		}
	}
}
