package chain

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/rotate"
)

var testKey = bytes.Repeat([]byte{0x42}, KeySize)

// fakeClock advances one millisecond per call, so file names and times are
// distinct and reproducible.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func openWriter(t *testing.T, dir string, key []byte, ro rotate.Options) *Writer {
	t.Helper()
	ro.Dir = dir
	if ro.Now == nil {
		ro.Now = fakeClock()
	}
	w, err := Open(Options{Key: key, Rotate: ro})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// writeLog writes n records and closes the writer.
func writeLog(t *testing.T, dir string, key []byte, n int, ro rotate.Options) {
	t.Helper()
	w := openWriter(t, dir, key, ro)
	for i := range n {
		if err := w.Append(fmt.Appendf(nil, `"msg":"record %d","i":%d`, i, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func verify(t *testing.T, dir string, key []byte) *Report {
	t.Helper()
	rep, err := Verify(dir, VerifyOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	fs, err := rotate.List(dir, DefaultPrefix, DefaultExt)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(data), "\n")
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

func assertIntact(t *testing.T, rep *Report) {
	t.Helper()
	for _, p := range rep.Problems() {
		if !p.Class.Warning() {
			t.Errorf("unexpected problem: %+v", p)
		}
	}
	if !rep.Intact {
		t.Fatal("report is not intact")
	}
}

// assertFinds checks that rep failed with a problem of class c in file, at
// line (0: any line).
func assertFinds(t *testing.T, rep *Report, c Class, file string, line int) {
	t.Helper()
	if rep.Intact {
		t.Errorf("report is intact, want %s", c)
	}
	for _, p := range rep.Problems() {
		if p.Class == c && (file == "" || p.File == file) && (line == 0 || p.Line == line) {
			return
		}
	}
	var buf bytes.Buffer
	rep.WriteText(&buf)
	t.Fatalf("no %s in %s line %d; report:\n%s", c, file, line, buf.String())
}

func TestSealAndParse(t *testing.T) {
	for _, key := range [][]byte{nil, testKey} {
		s := newSealer(keyState(key), 0, fakeClock(), state{})
		body := []byte(`"msg":"hello","n":1`)
		want := s.Len(body, nil)
		line := s.seal(nil, body)
		if len(line) != want {
			t.Errorf("Len = %d, seal wrote %d", want, len(line))
		}
		if !bytes.HasSuffix(line, []byte("\"}\n")) {
			t.Fatalf("line %q", line)
		}
		l, err := ParseLine(line[:len(line)-1])
		if err != nil {
			t.Fatal(err)
		}
		if l.Seq != 1 || l.Prev != [32]byte{} || macOf(key, l.Sealed) != l.MAC {
			t.Errorf("parsed %+v", l)
		}
		if !bytes.HasSuffix(l.Sealed, body) {
			t.Errorf("sealed part %q does not end with the body", l.Sealed)
		}
		l2, err := ParseLine(bytes.TrimSuffix(s.seal(nil, nil), []byte("\n")))
		if err != nil || l2.Seq != 2 || l2.Prev != l.MAC {
			t.Errorf("second line %+v, %v", l2, err)
		}
	}
}

func TestParseLineRejects(t *testing.T) {
	s := newSealer(keyState(testKey), 0, fakeClock(), state{})
	good := string(bytes.TrimSuffix(s.seal(nil, []byte(`"msg":"x"`)), []byte("\n")))
	for _, bad := range []string{
		"",
		"{}",
		strings.Replace(good, `{"seq":1`, `{"seq":01`, 1),
		strings.Replace(good, `{"seq":1`, `{"seq":-1`, 1),
		strings.Replace(good, `{"seq":1`, `{"seq":99999999999999999999999`, 1),
		strings.Replace(good, `"prev":"0`, `"prev":"A`, 1),
		good[:len(good)-1],
		good + " ",
		strings.Replace(good, `,"mac":"`, `,"mac" :"`, 1),
		strings.Replace(good, `,"msg"`, ` "msg"`, 1),
	} {
		if _, err := ParseLine([]byte(bad)); err == nil {
			t.Errorf("ParseLine(%q) succeeded", bad)
		}
	}
}

func TestRoundTripIntact(t *testing.T) {
	for _, key := range [][]byte{nil, testKey} {
		dir := t.TempDir()
		writeLog(t, dir, key, 50, rotate.Options{})
		rep := verify(t, dir, key)
		assertIntact(t, rep)
		if rep.FirstSeq != 1 || rep.LastSeq != 52 || rep.Lines != 52 {
			t.Errorf("report %+v", rep)
		}
		if len(rep.Problems()) != 0 {
			t.Errorf("problems: %+v", rep.Problems())
		}
	}
}

func TestResumeContinuesChain(t *testing.T) {
	dir := t.TempDir()
	clock := fakeClock()
	for range 3 {
		writeLog(t, dir, testKey, 10, rotate.Options{Now: clock})
	}
	fs := files(t, dir)
	if len(fs) != 3 {
		t.Fatalf("%d files, want 3", len(fs))
	}
	rep := verify(t, dir, testKey)
	assertIntact(t, rep)
	if rep.LastSeq != 36 || len(rep.Problems()) != 0 {
		t.Errorf("last seq %d, problems %+v", rep.LastSeq, rep.Problems())
	}
	// The second file's open record names the first file.
	l, _ := ParseLine([]byte(strings.TrimSuffix(readLines(t, fs[1])[0], "\n")))
	var oi OpenInfo
	if err := l.Decode(&oi); err != nil || oi.PrevFile != filepath.Base(fs[0]) || oi.File != filepath.Base(fs[1]) || l.Seq != 13 {
		t.Errorf("open record %+v seq %d err %v", oi, l.Seq, err)
	}
}

func TestResumeRefusesOtherKey(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, testKey, 3, rotate.Options{})
	other := bytes.Repeat([]byte{7}, KeySize)
	for _, key := range [][]byte{nil, other} {
		_, err := Open(Options{Key: key, Rotate: rotate.Options{Dir: dir}})
		if err == nil || !strings.Contains(err.Error(), "key_id") {
			t.Errorf("Open with another key: %v", err)
		}
	}
}

func TestResumeRefusesTamperedTail(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, testKey, 3, rotate.Options{})
	path := files(t, dir)[0]
	lines := readLines(t, path)
	last := len(lines) - 2 // the close record; lines ends with ""
	lines[last] = strings.Replace(lines[last], `"reason":"close"`, `"reason":"CLOSE"`, 1)
	writeLines(t, path, lines)
	_, err := Open(Options{Key: testKey, Rotate: rotate.Options{Dir: dir}})
	if err == nil || !strings.Contains(err.Error(), "fails its MAC") {
		t.Errorf("Open over a tampered tail: %v", err)
	}
}

// crashAfter rewrites a closed log to look as a crash would leave it: the
// close record gone and half a line at the end.
func crashAfter(t *testing.T, path, torn string) {
	t.Helper()
	lines := readLines(t, path)
	lines = lines[:len(lines)-2] // drop the close record and the final ""
	writeLines(t, path, append(lines, torn))
}

// A crash leaves a file without a close record and a torn last line; the
// next writer continues from the last whole line and records the torn bytes.
func TestTornTailRecovery(t *testing.T) {
	dir := t.TempDir()
	clock := fakeClock()
	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock})
	path := files(t, dir)[0]
	// A crash while seq 7 was written: its first bytes.
	torn := crashTorn(t, path, func(next string) string { return next[:30] })

	// Before the restart, verify sees the torn tail as a warning only.
	rep := verify(t, dir, testKey)
	assertIntact(t, rep)
	assertWarns(t, rep, TornTail)

	w := openWriter(t, dir, testKey, rotate.Options{Now: clock})
	var pos Position
	if err := w.Append([]byte(`"msg":"after"`), &pos); err != nil {
		t.Fatal(err)
	}
	if pos.Seq != 8 { // open + 5 records; the new open record is 7
		t.Errorf("seq after restart = %d, want 8", pos.Seq)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	l, _ := ParseLine([]byte(strings.TrimSuffix(readLines(t, files(t, dir)[1])[0], "\n")))
	var oi OpenInfo
	if err := l.Decode(&oi); err != nil || oi.PrevTorn != int64(len(torn)) || oi.PrevFile != filepath.Base(path) {
		t.Errorf("open record after crash: %+v %v", oi, err)
	}
	rep = verify(t, dir, testKey)
	assertIntact(t, rep)
	assertWarns(t, rep, TornTail)

	// The next file's open record says how many torn bytes the crash
	// left: bytes added to them (or taken away) later are an edit.
	for _, edit := range []string{torn + `0000`, torn[:len(torn)-3]} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.LastIndexByte(data, '\n') + 1
		if err := os.WriteFile(path, append(data[:at:at], edit...), 0o600); err != nil {
			t.Fatal(err)
		}
		rep = verify(t, dir, testKey)
		if rep.Intact || !hasClass(rep, Modified) {
			t.Errorf("torn tail changed to %q: intact %v, %+v", edit, rep.Intact, rep.Problems())
		}
	}
}

func hasClass(rep *Report, c Class) bool {
	for _, p := range rep.Problems() {
		if p.Class == c {
			return true
		}
	}
	return false
}

func assertWarns(t *testing.T, rep *Report, c Class) {
	t.Helper()
	for _, p := range rep.Problems() {
		if p.Class == c {
			return
		}
	}
	t.Errorf("no %s warning in %+v", c, rep.Problems())
}

// tamperLog writes three files of ten records each (lines: open, 10
// records, close) and returns the directory and the file paths.
func tamperLog(t *testing.T, key []byte) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	clock := fakeClock()
	for range 3 {
		writeLog(t, dir, key, 10, rotate.Options{Now: clock})
	}
	return dir, files(t, dir)
}

func TestVerifyFindsTampering(t *testing.T) {
	edit := func(i int, f func(lines []string) []string) func(t *testing.T, fs []string) {
		return func(t *testing.T, fs []string) {
			writeLines(t, fs[i], f(readLines(t, fs[i])))
		}
	}
	tests := []struct {
		name  string
		key   []byte
		edit  func(t *testing.T, fs []string)
		class Class
		file  int // index of the file the problem is reported in
		line  int
	}{
		{"modified field", testKey, edit(1, func(ls []string) []string {
			ls[4] = strings.Replace(ls[4], `"i":3`, `"i":4`, 1)
			return ls
		}), Modified, 1, 5},
		{"modified seq", testKey, edit(1, func(ls []string) []string {
			ls[4] = strings.Replace(ls[4], `{"seq":17,`, `{"seq":18,`, 1)
			return ls
		}), Modified, 1, 5},
		{"deleted line", testKey, edit(1, func(ls []string) []string {
			return append(ls[:4:4], ls[5:]...)
		}), Deleted, 1, 5},
		{"deleted last record before close", testKey, edit(1, func(ls []string) []string {
			return append(ls[:10:10], ls[11:]...)
		}), Deleted, 1, 11},
		{"inserted forged line", testKey, edit(1, func(ls []string) []string {
			l, _ := ParseLine([]byte(strings.TrimSuffix(ls[3], "\n")))
			forged := fmt.Sprintf(`{"seq":%d,"prev":"%x","msg":"forged","mac":"%s"}`+"\n", l.Seq+1, l.MAC, strings.Repeat("ab", 32))
			return append(ls[:4:4], append([]string{forged}, ls[4:]...)...)
		}), Inserted, 1, 5},
		{"duplicated line", testKey, edit(1, func(ls []string) []string {
			return append(ls[:4:4], append([]string{ls[3]}, ls[4:]...)...)
		}), Inserted, 1, 5},
		{"swapped lines", testKey, edit(1, func(ls []string) []string {
			ls[3], ls[4] = ls[4], ls[3]
			return ls
		}), Reordered, 1, 4},
		{"line moved to the end", testKey, edit(1, func(ls []string) []string {
			moved := ls[3]
			ls = append(ls[:3:3], ls[4:]...)
			return append(ls[:len(ls)-2:len(ls)-2], moved, ls[len(ls)-2], "")
		}), Reordered, 1, 11},
		{"hash recomputed without the key", testKey, edit(1, func(ls []string) []string {
			ls[4] = resealSHA256(t, strings.Replace(ls[4], `"i":3`, `"i":4`, 1))
			return ls
		}), Modified, 1, 5},
		{"hash recomputed, unkeyed log", nil, edit(1, func(ls []string) []string {
			ls[4] = resealSHA256(t, strings.Replace(ls[4], `"i":3`, `"i":4`, 1))
			return ls
		}), Modified, 1, 5},
		{"deleted middle file", testKey, func(t *testing.T, fs []string) {
			os.Remove(fs[1])
		}, Missing, 2, 1},
		{"renamed file", testKey, func(t *testing.T, fs []string) {
			os.Rename(fs[1], strings.Replace(fs[1], "000Z.jsonl", "001Z.jsonl", 1))
		}, Renamed, 2, 1},
		{"line after close", testKey, edit(1, func(ls []string) []string {
			return append(ls[:len(ls)-1:len(ls)-1], ls[3], "")
		}), Inserted, 1, 13},
		{"blank line inserted", testKey, edit(1, func(ls []string) []string {
			return append(ls[:4:4], append([]string{"\n"}, ls[4:]...)...)
		}), Modified, 1, 5},
		{"newline replaced at the end", testKey, edit(2, func(ls []string) []string {
			ls[len(ls)-2] = strings.TrimSuffix(ls[len(ls)-2], "\n") + " "
			return ls
		}), Modified, 2, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, fs := tamperLog(t, tt.key)
			tt.edit(t, fs)
			rep := verify(t, dir, tt.key)
			assertFinds(t, rep, tt.class, filepath.Base(fs[tt.file]), tt.line)
		})
	}
}

// resealSHA256 recomputes a line's MAC as plain SHA-256, as a forger without
// the key would.
func resealSHA256(t *testing.T, line string) string {
	l, err := ParseLine([]byte(strings.TrimSuffix(line, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`%s,"mac":"%x"}`+"\n", l.Sealed, macOf(nil, l.Sealed))
}

func TestVerifyKeys(t *testing.T) {
	dir, _ := tamperLog(t, testKey)
	if _, err := Verify(dir, VerifyOptions{}); !errors.Is(err, ErrKeyRequired) {
		t.Errorf("keyed log without key: %v", err)
	}
	rep := verify(t, dir, bytes.Repeat([]byte{1}, KeySize))
	assertFinds(t, rep, BadKey, "", 1)
	if n := len(rep.Problems()); n != 4 || countClass(rep, BadKey) != 3 || countClass(rep, WrongKey) != 1 || !rep.WrongKeyOnly() {
		t.Errorf("wrong key: %d problems, want BAD_KEY per file and one WRONG_KEY: %+v", n, rep.Problems())
	}

	// A log rewritten without a key does not pass for a keyed one.
	unkeyed, _ := tamperLog(t, nil)
	rep = verify(t, unkeyed, testKey)
	assertFinds(t, rep, BadKey, "", 1)

	if _, err := Verify(t.TempDir(), VerifyOptions{}); !errors.Is(err, ErrNoFiles) {
		t.Errorf("empty dir: %v", err)
	}
}

// Flipping any bit of any byte of a log must make verification fail.
func TestVerifyEveryFlippedByte(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, testKey, 3, rotate.Options{})
	path := files(t, dir)[0]
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range orig {
		for _, bit := range []byte{0x01, 0x20, 0x80} {
			data := bytes.Clone(orig)
			data[i] ^= bit
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(dir, VerifyOptions{Key: testKey})
			if err == nil && rep.Intact {
				t.Fatalf("flipping bit %#x of byte %d (%q) went unnoticed", bit, i, orig[i])
			}
		}
	}
}

func TestRotationAndCompressionVerify(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, testKey, 200, rotate.Options{MaxBytes: 2000, Compress: true})
	fs := files(t, dir)
	if len(fs) < 5 {
		t.Fatalf("%d files, want several", len(fs))
	}
	gz := 0
	for _, f := range fs {
		if strings.HasSuffix(f, ".gz") {
			gz++
			zf, _ := os.Open(f)
			if _, err := gzip.NewReader(zf); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			zf.Close()
		}
	}
	if gz != len(fs)-1 {
		t.Errorf("%d of %d files compressed, want all but the last", gz, len(fs))
	}
	rep := verify(t, dir, testKey)
	assertIntact(t, rep)
	if rep.LastSeq != uint64(200+2*len(fs)) {
		t.Errorf("last seq %d with %d files", rep.LastSeq, len(fs))
	}
	os.Remove(fs[len(fs)/2])
	assertFinds(t, verify(t, dir, testKey), Missing, BaseName(fs[len(fs)/2+1]), 1)
}

func TestConcurrentAppend(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, dir, testKey, rotate.Options{Sync: rotate.SyncAlways, MaxBytes: 50_000})
	const goroutines, each = 16, 100
	var wg sync.WaitGroup
	seqs := make([][]uint64, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pos Position
			for i := range each {
				if err := w.Append(fmt.Appendf(nil, `"g":%d,"i":%d`, g, i), &pos); err != nil {
					t.Error(err)
					return
				}
				seqs[g] = append(seqs[g], pos.Seq)
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, ss := range seqs {
		for i, s := range ss {
			if seen[s] {
				t.Fatalf("seq %d returned twice", s)
			}
			seen[s] = true
			if i > 0 && s <= ss[i-1] {
				t.Fatalf("seqs of one goroutine not increasing: %v", ss)
			}
		}
	}
	rep := verify(t, dir, testKey)
	assertIntact(t, rep)
	if rep.Lines != goroutines*each+2*len(rep.Files) {
		t.Errorf("%d lines in %d files", rep.Lines, len(rep.Files))
	}
}

// keyState is the state of initial key k, or the unkeyed state for nil.
func keyState(k []byte) KeyState {
	if k == nil {
		return KeyState{}
	}
	return NewKeyState(k)
}
