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
	if code, out, errs := runCmd("verify", "--key-file", keyFile, dir); code != 0 {
		t.Fatalf("before: %d %s %s", code, out, errs)
	}
	compressDamaged(t, files[0], func(gz []byte) { gz[len(gz)-6] ^= 1 }) // the CRC-32 trailer; the content reads fine
	code, out, errs := runCmd("verify", "--key-file", keyFile, dir)
	if code != exitInvalid || !strings.Contains(out, "cannot be read to its end") || !strings.Contains(out, "TAMPERED OR DAMAGED") {
		t.Errorf("a corrupt .gz audit file: exit %d, want %d (invalid)\nstdout: %s\nstderr: %s", code, exitInvalid, out, errs)
	}
}

// A file that cannot be read to its end makes query say so and exit 2: the
// events it holds past the damage are missing from the answer.
func TestQueryUnreadableFile(t *testing.T) {
	dir, keyFile, files := setup(t)
	compressDamaged(t, files[0], func(gz []byte) { gz[0] ^= 0xff }) // not a gzip header any more
	code, out, errs := runCmd("query", "--key-file", keyFile, dir)
	if code != exitUsage || !strings.Contains(errs, "could not be read to their end") || out == "" {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

// compressDamaged replaces the audit file at path by its .gz, as rotation
// would, with damage done to the compressed bytes.
func compressDamaged(t *testing.T, path string, damage func(gz []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(b)
	zw.Close()
	gz := z.Bytes()
	damage(gz)
	if err := os.WriteFile(path+".gz", gz, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
