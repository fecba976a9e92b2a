package chain

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// compressedDir writes two sessions and returns the directory and the
// first file, compressed.
func compressedDir(t *testing.T) (dir, gz string) {
	t.Helper()
	dir, clock := t.TempDir(), fakeClock()
	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock})
	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock, Compress: true})
	for _, p := range files(t, dir) {
		if strings.HasSuffix(p, ".gz") {
			return dir, p
		}
	}
	t.Fatal("nothing compressed")
	return
}

func appendTo(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// gzip -d accepts zero bytes after the last member and decompresses the
// same content; FORMAT.md §1 says a verifier reads the members as gzip -d
// does. Before the fix Verify reported MODIFIED ("gzip: invalid header")
// and, as its look-ahead read failed first, a spurious MISSING in the next
// file; the writer's scan (resume, retention) failed on it too.
func TestGzipTrailingZerosAsGzipD(t *testing.T) {
	dir, gz := compressedDir(t)
	want, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	appendTo(t, gz, make([]byte, 512))
	if out, err := exec.Command("gzip", "-dc", gz).Output(); err == nil {
		zr, _ := gzip.NewReader(bytes.NewReader(want))
		var plain bytes.Buffer
		plain.ReadFrom(zr)
		if !bytes.Equal(out, plain.Bytes()) {
			t.Fatalf("gzip -dc reads the padded file differently")
		}
	}
	assertIntact(t, verify(t, dir, testKey))
	if _, err := scanFile(gz); err != nil {
		t.Errorf("scanFile: %v", err)
	}
	writeLog(t, dir, testKey, 1, rotate.Options{Now: fakeClock(), MaxBackups: 1})
	assertIntact(t, verify(t, dir, testKey))
}

// Bytes after the last member that are neither zero padding nor another
// member are reported, but only once: the lines read before the error are
// all checked (before the fix the last of them was not, and its absence
// showed as a spurious MISSING in the next file).
func TestGzipGarbageAfterMemberChecksEveryLineBefore(t *testing.T) {
	for _, junk := range [][]byte{[]byte("garbage"), append(make([]byte, 16), 'x')} {
		dir, gz := compressedDir(t)
		appendTo(t, gz, junk)
		rep := verify(t, dir, testKey)
		assertFinds(t, rep, Modified, "", 0)
		for _, p := range rep.Problems() {
			if p.Class != Modified && !p.Class.Warning() {
				t.Errorf("junk %q after the member: unexpected %+v", junk, p)
			}
		}
		if rep.Files[0].LastSeq != 7 || rep.Files[0].Lines != 7 {
			t.Errorf("junk %q: first file checked through seq %d (%d lines), want 7:\n%s", junk, rep.Files[0].LastSeq, rep.Files[0].Lines, reportText(rep))
		}
	}
}
