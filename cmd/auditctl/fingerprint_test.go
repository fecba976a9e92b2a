package main

import (
	"context"
	"log/slog"
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
