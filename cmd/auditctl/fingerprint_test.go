package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/redact"
)

// The fingerprint auditctl prints is the one the handler wrote in place of
// the secret, so a leaked token can be looked up in the trail.
func TestFingerprintFindsTheLeakedToken(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "fp.key")
	if code, _, errs := runCmd("keygen", "-o", keyFile); code != 0 {
		t.Fatal(errs)
	}
	key, _ := chain.ReadKeyFile(keyFile)
	red, err := redact.New(redact.Options{Mode: redact.Fingerprint, FingerprintKey: key})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h, err := handler.New(handler.Options{Dir: dir, Redactor: red, App: slog.DiscardHandler})
	if err != nil {
		t.Fatal(err)
	}
	const leaked = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	handler.Log(context.Background(), slog.New(h), handler.Event{Type: handler.CredentialAccess, Action: "get", Status: handler.StatusSuccess,
		Attrs: []slog.Attr{slog.String("token", leaked)}})
	h.Close()

	code, out, errs := runCmd("fingerprint", "--key-file", keyFile, leaked)
	fp := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(fp, "hmac-sha256:") || len(fp) != len("hmac-sha256:")+16 {
		t.Fatalf("fingerprint: %d %q %q", code, out, errs)
	}
	if !strings.Contains(errs, "warning") {
		t.Errorf("no warning for a value given as an argument: %q", errs)
	}
	stdin = strings.NewReader(leaked + "\n")
	if _, out2, errs2 := runCmd("fingerprint", "--key-file", keyFile); strings.TrimSpace(out2) != fp || errs2 != "" {
		t.Errorf("stdin fingerprint %q != %q (stderr %q)", out2, fp, errs2)
	}
	code, out, _ = runCmd("query", "--key-file", keyFile, "--json", dir)
	if code != 0 || !strings.Contains(out, fp) || strings.Contains(out, leaked) {
		t.Errorf("trail does not hold the fingerprint (or holds the token): %s", out)
	}
	if code, _, _ := runCmd("fingerprint", dir); code != exitUsage {
		t.Errorf("without --key-file: %d", code)
	}
}

// Any key redact takes for fingerprints (16 bytes or more) can be given to
// auditctl fingerprint, in hex or raw; shorter keys, and key files others
// may read, are refused.
func TestFingerprintKeyFile(t *testing.T) {
	const value = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	dir := t.TempDir()
	key16 := []byte("0123456789abcdef") // 16 raw bytes that are all hex digits
	key20 := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, '\n'}
	for _, tc := range []struct {
		name    string
		content []byte
		mode    os.FileMode
		key     []byte // nil: refused
	}{
		{"hex16", []byte(hex.EncodeToString(key16) + "\n"), 0o600, key16},
		{"hex32", []byte(strings.ToUpper(hex.EncodeToString(bytes.Repeat(key16, 2)))), 0o600, bytes.Repeat(key16, 2)},
		{"raw16", key16, 0o600, key16},
		{"raw20", key20, 0o600, key20},
		{"raw15", key16[:15], 0o600, nil},
		{"hex15", []byte(hex.EncodeToString(key16[:15])), 0o600, []byte(hex.EncodeToString(key16[:15]))}, // 30 hex digits: too few for hex, 30 raw bytes
		{"readable", key16, 0o640, nil},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, tc.content, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		stdin = strings.NewReader(value)
		code, out, errs := runCmd("fingerprint", "--key-file", p)
		if tc.key == nil {
			if code != exitUsage || out != "" || errs == "" {
				t.Errorf("%s: %d %q %q, want refused", tc.name, code, out, errs)
			}
			continue
		}
		if want := redact.FingerprintOf(tc.key, value); code != exitOK || strings.TrimSpace(out) != want {
			t.Errorf("%s: %d %q %q, want %s", tc.name, code, out, errs, want)
		}
	}
}
