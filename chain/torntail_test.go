package chain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// nextLine returns the line the writer would have written after the last
// complete line of path, with body as its members after prev.
func nextLine(t *testing.T, path, body string) string {
	t.Helper()
	head := lastLine(t, path)
	return string(fixedPart(head.Seq+1, head.MAC)) + body
}

// crashTorn drops path's close record and leaves torn instead, as a crash
// does when torn is a prefix of the next line.
func crashTorn(t *testing.T, path string, torn func(next string) string) string {
	t.Helper()
	crashAfter(t, path, "")
	s := torn(nextLine(t, path, `"time":"2026-11-27T01:00:00.000000000Z","level":"INFO","msg":"next"`))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// Torn bytes must be what a crash leaves: a prefix of the line the writer
// was writing next, {"seq":<last+1>,"prev":"<last chain value>", and then
// anything (the record, torn anywhere). Other bytes, a planted record among
// them, fail (MODIFIED), before and after a writer resumed and sealed their
// length as prev_torn. Before the fix every one of them was TORN_TAIL.
func TestTornTailMustBeAPrefixOfTheNextLine(t *testing.T) {
	forged := `{"seq":3,"prev":"` + strings.Repeat("0", 64) + `","time":"2026-11-27T01:00:00.000000000Z","level":"INFO","msg":"grant admin to mallory","mac":"` + strings.Repeat("ab", 32) + `"}`
	// Each a function of the fixed part of seq 7's line.
	honest := []func(f string) string{
		func(f string) string { return f[:1] },
		func(f string) string { return f[:len(`{"seq":`)] },
		func(f string) string { return f[:len(`{"seq":7`)] },
		func(f string) string { return f[:len(`{"seq":7,`)] },
		func(f string) string { return f[:40] },
		func(f string) string { return f[:len(f)-1] },
		func(f string) string { return f },
		func(f string) string { return f + `"time":"2026-11-27T01:00:00` },
		func(f string) string {
			return f + `"msg":"a forged record, framed well","mac":"` + strings.Repeat("ab", 32) + `"}`
		},
	}
	dishonest := []func(f string) string{
		func(string) string { return "x" },
		func(string) string { return forged },
		func(string) string { return `{"seq":8` },
		func(string) string { return `{"seq":70` },
		func(string) string { return `{"seq":7}` },
		func(f string) string { return f[:len(f)-2] + "x" },
		func(f string) string { return f[:len(f)-1] + `"` },
		func(string) string { return `{"seq":7,"prev":"` + strings.Repeat("0", 64) + `",` },
		func(f string) string { return strings.ToUpper(f[:30]) },
	}
	check := func(tornOf func(fixed string) string, want Class) {
		t.Helper()
		for _, resumed := range []bool{false, true} {
			dir := t.TempDir()
			writeLog(t, dir, testKey, 5, rotate.Options{Now: fakeClock()})
			path := files(t, dir)[0]
			torn := crashTorn(t, path, func(next string) string { return tornOf(next[:len(fixedPart(7, [32]byte{}))]) })
			if resumed {
				writeLog(t, dir, testKey, 2, rotate.Options{Now: fakeClock()})
			}
			rep := verify(t, dir, testKey)
			if want == TornTail {
				if !rep.Intact || !hasClass(rep, TornTail) {
					t.Errorf("honest torn %q (resumed %v): %v\n%s", torn, resumed, classes(rep), reportText(rep))
				}
				continue
			}
			if rep.Intact || !hasClass(rep, want) {
				t.Errorf("torn %q (resumed %v): %v, want %s\n%s", torn, resumed, classes(rep), want, reportText(rep))
			}
		}
	}
	for _, s := range honest {
		check(s, TornTail)
	}
	for _, s := range dishonest {
		check(s, Modified)
	}
}

// A preallocated file ends at its first NUL: torn bytes before the NULs
// are judged as any torn bytes.
func TestTornTailBeforeNULs(t *testing.T) {
	for _, c := range []struct {
		torn  func(next string) string
		class Class
	}{
		{func(next string) string { return next[:50] }, TornTail},
		{func(next string) string { return "forged" }, Modified},
	} {
		dir := t.TempDir()
		writeLog(t, dir, testKey, 5, rotate.Options{Now: fakeClock()})
		path := files(t, dir)[0]
		crashTorn(t, path, func(next string) string { return c.torn(next) + string(make([]byte, 4096)) })
		rep := verify(t, dir, testKey)
		if !hasClass(rep, c.class) || rep.Intact != (c.class == TornTail) {
			t.Errorf("want %s: %v\n%s", c.class, classes(rep), reportText(rep))
		}
	}
}

// A file holding only torn bytes (a crash while its open record was
// written) must hold a prefix of the open record the next file then
// begins with: the seq and prev the chain stood at. That is checked
// whether the chain started before it or only after it (the files before
// it not walked: VerifyOptions.Last), and after the next writer sealed its
// length as prev_torn.
func TestTornOnlyFileMustBeAPrefixOfItsOpenRecord(t *testing.T) {
	for _, c := range []struct {
		name  string
		torn  func(open string) string
		class Class
	}{
		{"honest", func(o string) string { return o[:40] }, TornTail},
		{"honest short", func(o string) string { return o[:3] }, TornTail},
		{"honest long", func(o string) string { return o + `,"time":"2026-11-27T02:00:00.0` }, TornTail},
		{"another seq", func(o string) string { return strings.Replace(o, `"seq":`, `"seq":1`, 1) }, Modified},
		{"another prev", func(o string) string { return o[:40] + "x" }, Modified},
		{"text", func(string) string { return "grant admin to mallory" }, Modified},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			clock := fakeClock()
			writeLog(t, dir, testKey, 5, rotate.Options{Now: clock})
			crashAfter(t, files(t, dir)[0], "")
			head := lastLine(t, files(t, dir)[0])
			torn := filepath.Join(dir, "audit-20261127T020000.000000000Z.jsonl")
			open := fmt.Sprintf(`{"seq":%d,"prev":"%s","rec":"open"`, head.Seq+1, hex.EncodeToString(head.MAC[:]))
			if err := os.WriteFile(torn, []byte(c.torn(open)), 0o600); err != nil {
				t.Fatal(err)
			}
			writeLog(t, dir, testKey, 5, rotate.Options{Now: clock})
			for _, last := range []int{0, 2} {
				rep, err := Verify(dir, VerifyOptions{Key: testKey, Last: last})
				if err != nil {
					t.Fatal(err)
				}
				var inTorn bool
				for _, p := range rep.Problems() {
					inTorn = inTorn || p.Class == c.class && p.File == filepath.Base(torn)
				}
				if !inTorn || rep.Intact != (c.class == TornTail) {
					t.Errorf("Last %d: torn-only file holding %q: %v, want %s\n%s", last, c.torn(open), classes(rep), c.class, reportText(rep))
				}
			}
		})
	}
}

// FORMAT.md §7: a sealed line followed by other bytes instead of its
// newline is MODIFIED. Verify took the last `"}` of the torn bytes as the
// end of the line it checked, so foreign bytes ending in `"}` made an
// authentic, acknowledged last line a mere TORN_TAIL (and the next writer
// dropped it and reused its seq). Also for a line Verify streams.
func TestSealedLineThenForeignBytesFails(t *testing.T) {
	src := t.TempDir()
	writeLog(t, src, testKey, 5, rotate.Options{Now: fakeClock()})
	path := files(t, src)[0]
	lines := readLines(t, path)
	lines = lines[:len(lines)-2]                          // a crash: no close record
	last := strings.TrimSuffix(lines[len(lines)-1], "\n") // seq 6, authentic
	for _, foreign := range []string{`x`, `"}`, `,"x":"y"}`, `,"mac":"` + strings.Repeat("ab", 32) + `"}`, last} {
		data := strings.Join(lines[:len(lines)-1], "") + last + foreign
		dir := copyDirWith(t, src, filepath.Base(path), []byte(data))
		for _, limit := range []int{noStreaming, 64} {
			var rep *Report
			withLongLine(limit, 128, func() { rep = verify(t, dir, testKey) })
			if rep.Intact || !hasClass(rep, Modified) || rep.LastSeq != 5 {
				t.Errorf("seq 6 followed by %q (lines streamed from %d bytes): %v, last seq %d\n%s", foreign, limit, classes(rep), rep.LastSeq, reportText(rep))
			}
		}
	}
}

// A record may hold a member "mac" with 64 hex digits in a group: a crash
// that tears its line just after that group leaves bytes that end like a
// sealed line but are not one (the MAC does not match): TORN_TAIL. The
// whole line followed by foreign bytes is MODIFIED, found past that decoy.
func TestTornLineWithNestedMACMember(t *testing.T) {
	src := t.TempDir()
	w := openWriter(t, src, testKey, rotate.Options{Now: fakeClock()})
	decoy := `"g":{"a":1,"mac":"` + strings.Repeat("cd", 32) + `"}`
	for _, b := range []string{`"msg":"a"`, `"msg":"b",` + decoy + `,"z":2`} {
		if err := w.Append([]byte(b), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := files(t, src)[0]
	lines := readLines(t, path)
	lines = lines[:len(lines)-2] // no close record
	full := strings.TrimSuffix(lines[len(lines)-1], "\n")
	cut := strings.Index(full, decoy) + len(decoy)
	before := strings.Join(lines[:len(lines)-1], "")
	for _, c := range []struct {
		torn  string
		class Class
	}{
		{full[:cut], TornTail},
		{full[:cut] + `,"z":`, TornTail},
		{full + `"}`, Modified},
		{full + `,"x":"y"}`, Modified},
	} {
		dir := copyDirWith(t, src, filepath.Base(path), []byte(before+c.torn))
		for _, limit := range []int{noStreaming, 64} {
			var rep *Report
			withLongLine(limit, 128, func() { rep = verify(t, dir, testKey) })
			if !hasClass(rep, c.class) || rep.Intact != (c.class == TornTail) {
				t.Errorf("torn %q (streamed from %d bytes): %v, want %s\n%s", c.torn, limit, classes(rep), c.class, reportText(rep))
			}
		}
	}
}

// sealedScan finds the same line end however the bytes are split into
// writes: a candidate may straddle any boundary.
func TestSealedScanChunks(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, testKey, 1, rotate.Options{Now: fakeClock()})
	l := lastLine(t, files(t, dir)[0])
	decoy := `,"mac":"` + strings.Repeat("ef", 32) + `"}`
	seal := string(l.Sealed)
	data := seal[:len(seal)-1] + decoy + seal[len(seal)-1:] // not the sealed line
	authentic := string(l.Raw)
	for _, c := range []struct {
		data string
		end  int64
	}{
		{data + decoy, -1},
		{authentic + decoy + decoy, int64(len(authentic))},
		{authentic, int64(len(authentic))},
		{authentic[:len(authentic)-1], -1},
	} {
		_, afterPrev, err := parseHead([]byte(c.data))
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{1, 2, 7, lineTail - 1, lineTail, lineTail + 1, 100, len(c.data)} {
			sc := sealedScan{end: -1, afterPrev: int64(afterPrev), comma: c.data[afterPrev] == ',', h: hmac.New(sha256.New, testKey)}
			for b := []byte(c.data); len(b) > 0; b = b[min(size, len(b)):] {
				sc.Write(b[:min(size, len(b))])
			}
			if sc.end != c.end {
				t.Errorf("writes of %d bytes: end %d, want %d", size, sc.end, c.end)
			}
		}
	}
}

// The checkpoints file: a whole note line followed by foreign bytes that
// end in '}' is an edit (BAD_CHECKPOINT), not a torn line that hides the
// note.
func TestCheckpointsLineThenForeignBraceFails(t *testing.T) {
	p, k0, _, verifier := signedLog(t, 20, 5, rotate.Options{})
	path := filepath.Join(p.dir, CheckpointsFileName(""))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, foreign := range []string{`x`, `}`, `{"seq":1}`} {
		if err := os.WriteFile(path, append(data[:len(data)-1:len(data)-1], foreign...), 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(p.dir, VerifyOptions{Key: k0, CheckpointKey: verifier})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Intact || !hasClass(rep, BadCheckpoint) {
			t.Errorf("the last note followed by %q: %v\n%s", foreign, classes(rep), reportText(rep))
		}
	}
}
