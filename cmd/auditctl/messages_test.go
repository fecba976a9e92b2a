package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// says reports whether text holds every one of wants, and the first that
// it lacks.
func says(text string, wants ...string) (bool, string) {
	for _, w := range wants {
		if !strings.Contains(text, w) {
			return false, w
		}
	}
	return true, ""
}

// The checkpoint verifier key given as --key-file is named as such (before
// its mode: it is 0644 by design), and so is the signer; a key file that is
// not there says what --key-file takes and how a new one is made.
func TestKeyFileMixUps(t *testing.T) {
	dir, keyFile, _ := setup(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"verifier key", []string{"verify", "--key-file", keyFile + ".pub", dir},
			[]string{"key file " + keyFile + ".pub is the checkpoint verifier key", "not a MAC key", "K(0)", "next to it: " + keyFile}},
		{"signer key", []string{"verify", "--key-file", keyFile + ".signer", dir},
			[]string{"key file " + keyFile + ".signer is the checkpoint signer key", "not a MAC key"}},
		{"signer as checkpoint key", []string{"verify", "--key-file", keyFile, "--checkpoint-key", keyFile + ".signer", dir},
			[]string{"verifier key " + keyFile + ".signer is the checkpoint signer key", "next to it: " + keyFile + ".pub"}},
		{"missing key file", []string{"verify", "--key-file", keyFile + ".nope", dir},
			[]string{keyFile + ".nope", "no such file", "--key-file takes the trail's initial key K(0)", "create one with auditctl keygen -o FILE"}},
		{"query: verifier key", []string{"query", "--key-file", keyFile + ".pub", dir},
			[]string{"auditctl query: chain: key file " + keyFile + ".pub is the checkpoint verifier key"}},
		{"query: missing key file", []string{"query", "--key-file", keyFile + ".nope", dir},
			[]string{"auditctl keygen -o FILE"}},
		{"fingerprint: verifier key", []string{"fingerprint", "--key-file", keyFile + ".pub", "v"},
			[]string{"key file " + keyFile + ".pub is a checkpoint verifier key", "not a fingerprint key"}},
		{"fingerprint: signer key", []string{"fingerprint", "--key-file", keyFile + ".signer", "v"},
			[]string{"key file " + keyFile + ".signer is a checkpoint signer key"}},
	} {
		code, out, errs := runCmd(tc.args...)
		if ok, missing := says(errs, tc.want...); code != exitUsage || out != "" || !ok || strings.Contains(errs, "chmod") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q: want exit %d and %q, no chmod", tc.name, code, out, errs, exitUsage, missing)
		}
	}
	// chmod 600 does not turn the verifier key into a MAC key.
	pub := filepath.Join(t.TempDir(), "copy.pub")
	data, _ := os.ReadFile(keyFile + ".pub")
	os.WriteFile(pub, data, 0o600)
	code, _, errs := runCmd("verify", "--key-file", pub, dir)
	if ok, missing := says(errs, pub, "checkpoint verifier key", "not a MAC key"); code != exitUsage || !ok {
		t.Errorf("verifier key, 0600: exit %d, %q: want %q", code, errs, missing)
	}
}
