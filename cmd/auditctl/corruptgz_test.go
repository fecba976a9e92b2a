package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"strings"
	"testing"
)

// A compressed audit file that no longer decompresses (one flipped byte of
// its trailer) is a finding: verify prints its report, the other files
// checked, and exits 1 (invalid), not 2 (usage or I/O error).
func TestVerifyCorruptGzIsInvalid(t *testing.T) {
	dir, keyFile, files := setup(t)
	// compress the first file as rotation would
	b, _ := os.ReadFile(files[0])
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(b)
	zw.Close()
	gz := z.Bytes()
	if code, out, errs := runCmd("verify", "--key-file", keyFile, dir); code != 0 {
		t.Fatalf("before: %d %s %s", code, out, errs)
	}
	gz[len(gz)-6] ^= 1 // the CRC-32/ISIZE trailer; the content reads fine
	os.WriteFile(files[0]+".gz", gz, 0o600)
	os.Remove(files[0])
	code, out, errs := runCmd("verify", "--key-file", keyFile, dir)
	if code != exitInvalid || !strings.Contains(out, "cannot be read to its end") || !strings.Contains(out, "TAMPERED OR DAMAGED") {
		t.Errorf("a corrupt .gz audit file: exit %d, want %d (invalid)\nstdout: %s\nstderr: %s", code, exitInvalid, out, errs)
	}
}
