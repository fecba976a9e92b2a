package chain

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/internal/testfs"
	"github.com/slogaudit/slogaudit/rotate"
)

// withLongLine sets the streaming threshold and head size for one call.
func withLongLine(limit, head int, f func()) {
	oldL, oldH := longLine, longHead
	longLine, longHead = limit, head
	defer func() { longLine, longHead = oldL, oldH }()
	f()
}

// noStreaming is a threshold no line reaches: the path Verify took before
// long lines were streamed.
const noStreaming = 1 << 62

var measureAlloc = true

// verifyAlloc verifies dir and reports the bytes allocated meanwhile.
func verifyAlloc(dir string, key []byte) (*Report, uint64, error) {
	if !measureAlloc {
		rep, err := Verify(dir, VerifyOptions{Key: key})
		return rep, 0, err
	}
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	rep, err := Verify(dir, VerifyOptions{Key: key})
	runtime.ReadMemStats(&b)
	return rep, b.TotalAlloc - a.TotalAlloc, err
}

// compareStreamed verifies dir the old way (every line in memory) and
// streaming lines longer than limit, and fails unless both report the
// same. It returns the streaming report and both allocations.
func compareStreamed(t *testing.T, dir string, key []byte, limit, head int) (rep *Report, oldAlloc, newAlloc uint64) {
	t.Helper()
	var oldRep, newRep *Report
	var oldErr, newErr error
	withLongLine(noStreaming, head, func() { oldRep, oldAlloc, oldErr = verifyAlloc(dir, key) })
	withLongLine(limit, head, func() { newRep, newAlloc, newErr = verifyAlloc(dir, key) })
	if fmt.Sprint(oldErr) != fmt.Sprint(newErr) {
		t.Fatalf("error: old %v, streamed %v", oldErr, newErr)
	}
	if !reflect.DeepEqual(oldRep, newRep) {
		var o, n strings.Builder
		if oldRep != nil {
			oldRep.WriteText(&o)
		}
		if newRep != nil {
			newRep.WriteText(&n)
		}
		t.Fatalf("reports differ\nold:\n%s\nstreamed:\n%s", o.String(), n.String())
	}
	return newRep, oldAlloc, newAlloc
}

// copyDirWith copies the files of src into a new directory, replacing the
// content of the file named name with data.
func copyDirWith(t *testing.T, src, name string, data []byte) string {
	t.Helper()
	dst := t.TempDir()
	testfs.CopyFiles(t, src, dst, map[string][]byte{name: data})
	return dst
}

// TestLongLineSameFindings streams every line of a small log (threshold
// 140 bytes, head 128: the smallest that holds the fixed members) through
// the long-line path, edited in every way below, and requires the same
// report as holding each line whole.
func TestLongLineSameFindings(t *testing.T) {
	for _, key := range [][]byte{testKey, nil} {
		src := t.TempDir()
		w := openWriter(t, src, key, rotate.Options{})
		for i := range 8 {
			if err := w.Append(fmt.Appendf(nil, `"msg":"record %d","i":%d,"pad":"%s"`, i, i, strings.Repeat("x", 40*i)), nil); err != nil {
				t.Fatal(err)
			}
			if i == 3 {
				if err := w.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		fs := files(t, src)
		if len(fs) != 1 {
			t.Fatalf("%d files", len(fs))
		}
		name := filepath.Base(fs[0])
		orig, err := os.ReadFile(fs[0])
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitAfter(orig, []byte("\n"))
		lines = lines[:len(lines)-1]
		var cases [][]byte
		cases = append(cases, orig)
		step := 1
		if testing.Short() || raceEnabled {
			step = 5
		}
		for i := 0; i < len(orig); i += step {
			for _, c := range []byte{orig[i] ^ 1, '"', '}', '\n', 0} {
				b := bytes.Clone(orig)
				b[i] = c
				cases = append(cases, b)
			}
			cases = append(cases, orig[:i])
			cases = append(cases, append(bytes.Clone(orig[:i]), orig[i+1:]...))
		}
		for k := range lines {
			without := bytes.Join(append(append([][]byte{}, lines[:k]...), lines[k+1:]...), nil)
			cases = append(cases, without)
			dup := bytes.Join(append(append(append([][]byte{}, lines[:k+1]...), lines[k]), lines[k+1:]...), nil)
			cases = append(cases, dup)
			if k+1 < len(lines) {
				sw := append(append([][]byte{}, lines[:k]...), lines[k+1], lines[k])
				cases = append(cases, bytes.Join(append(sw, lines[k+2:]...), nil))
			}
			noNL := bytes.Join(lines[:k+1], nil)
			noNL = append(noNL[:len(noNL)-1], `junk without "} or a newline`...)
			cases = append(cases, noNL)
		}
		cases = append(cases, append(bytes.Clone(orig), `{"seq":99,"prev":"x"}`...))
		measureAlloc = false
		defer func() { measureAlloc = true }()
		for i, c := range cases {
			dir := copyDirWith(t, src, name, c)
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				if t.Name() == os.Getenv("LLDEBUG") {
					os.WriteFile("/tmp/lldebug", c, 0o600)
				}
				compareStreamed(t, dir, key, 140, 128)
			})
		}
		t.Logf("key %v: %d cases", key != nil, len(cases))
	}
}

// TestLongLineAuthentic: a 20 MiB record written by the Writer verifies
// INTACT, allocating far less than its size.
func TestLongLineAuthentic(t *testing.T) {
	for _, key := range [][]byte{testKey, nil} {
		dir := t.TempDir()
		w := openWriter(t, dir, key, rotate.Options{})
		big := strings.Repeat("0123456789abcdef", 20<<20/16)
		for i, body := range []string{`"msg":"before"`, `"msg":"big","data":"` + big + `"`, `"msg":"after"`} {
			if err := w.Append([]byte(body), nil); err != nil {
				t.Fatal(i, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rep, oldAlloc, newAlloc := compareStreamed(t, dir, key, longLine, longHead)
		if !rep.Intact || rep.Files[0].Lines < 5 {
			var b strings.Builder
			rep.WriteText(&b)
			t.Fatalf("not intact:\n%s", b.String())
		}
		t.Logf("key %v: 20 MiB record: allocated %.1f MiB holding lines whole, %.2f MiB streaming", key != nil, float64(oldAlloc)/(1<<20), float64(newAlloc)/(1<<20))
		if newAlloc > 8<<20 {
			t.Errorf("streaming allocated %d bytes for a 20 MiB line", newAlloc)
		}
	}
}

// TestLongLineForged: 64 MiB forged lines (in the chain, inserted, and at
// the end without a newline) are reported as before, with bounded memory,
// and the lines after them are still checked.
func TestLongLineForged(t *testing.T) {
	src := t.TempDir()
	writeLog(t, src, testKey, 6, rotate.Options{})
	fs := files(t, src)
	name := filepath.Base(fs[0])
	orig, err := os.ReadFile(fs[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(orig, []byte("\n"))
	lines = lines[:len(lines)-1] // open, 6 records, close
	junk := bytes.Repeat([]byte("A"), 64<<20)
	forge := func(l []byte) []byte { // l with its body padded to 64 MiB, MAC unchanged
		pl, err := ParseLine(bytes.TrimSuffix(l, []byte("\n")))
		if err != nil {
			t.Fatal(err)
		}
		var b []byte
		b = append(b, pl.Sealed...)
		b = append(b, `,"pad":"`...)
		b = append(b, junk...)
		b = append(b, `"`...)
		b = append(b, pl.Raw[len(pl.Sealed):]...)
		return append(b, '\n')
	}
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	lastSeal := func(l []byte) [32]byte {
		pl, err := ParseLine(bytes.TrimSuffix(l, []byte("\n")))
		if err != nil {
			t.Fatal(err)
		}
		return pl.MAC
	}
	all := func(from, to int) []byte { return join(lines[from:to]...) }
	n := len(lines)
	cases := []struct {
		name  string
		data  []byte
		class Class
	}{
		{"modified", join(all(0, 3), forge(lines[3]), all(4, n)), Modified},
		{"inserted", join(all(0, 3), forge(lines[3]), all(3, n)), Inserted},
		{"garbage line", join(all(0, 3), junk, []byte("\n"), all(3, n)), Modified},
		{"after close, no newline", join(all(0, n), junk), Inserted},
		{"torn tail", join(all(0, n-1), fixedPart(8, lastSeal(lines[n-2])), []byte(`"msg":"`), junk), TornTail},
		{"foreign torn tail", join(all(0, n-1), junk), Modified},
		{"sealed line then foreign bytes ending in quote brace", join(all(0, n-1), bytes.TrimSuffix(lines[n-1], []byte("\n")), junk, []byte(`"}`)), Modified},
		{"sealed line then foreign bytes", join(all(0, n-1), bytes.TrimSuffix(lines[n-1], []byte("\n")), junk), Modified},
		{"forged tail, no newline", join(all(0, n-1), bytes.TrimSuffix(forge(lines[n-1]), []byte("\n"))), TornTail},
	}
	for _, c := range cases {
		dir := copyDirWith(t, src, name, c.data)
		rep, oldAlloc, newAlloc := compareStreamed(t, dir, testKey, longLine, longHead)
		var found bool
		for _, p := range rep.Problems() {
			found = found || p.Class == c.class
		}
		if !found {
			var b strings.Builder
			rep.WriteText(&b)
			t.Errorf("%s: no %s:\n%s", c.name, c.class, b.String())
		}
		if newAlloc > 8<<20 {
			t.Errorf("%s: streaming allocated %d bytes", c.name, newAlloc)
		}
		t.Logf("%s: %v; allocated %.1f MiB holding lines whole, %.2f MiB streaming; last seq %d", c.name, c.class, float64(oldAlloc)/(1<<20), float64(newAlloc)/(1<<20), rep.LastSeq)
	}
}
