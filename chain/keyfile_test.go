package chain

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// keygenFiles writes what auditctl keygen -o FILE writes (FILE, FILE.signer,
// FILE.pub, with its modes) and the example's copy of K(0), FILE.initial.
func keygenFiles(t *testing.T) (file string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "audit.key")
	skey, vkey, err := GenerateSigner("test-signer")
	if err != nil {
		t.Fatal(err)
	}
	k0 := GenerateKey()
	for _, f := range []struct {
		path, text string
		mode       os.FileMode
	}{{file + ".signer", skey + "\n", 0o600}, {file + ".pub", vkey + "\n", 0o644}} {
		if err := os.WriteFile(f.path, []byte(f.text), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteKeyFile(file, k0); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(file+".initial", k0); err != nil {
		t.Fatal(err)
	}
	return file
}

// A key file that holds another of keygen's keys is named as what it is,
// before its mode is checked (the verifier key is 0644 by design: "chmod
// 600" would not help), and says where the key wanted is.
func TestReadKeyFileNamesOtherKeys(t *testing.T) {
	file := keygenFiles(t)
	pub, signer := file+".pub", file+".signer"
	_, err := ReadKeyFile(pub)
	assertErrorSays(t, "the verifier key as key file", err, "key file "+pub+" is the checkpoint verifier key test-signer+", "not a MAC key", "K(0)", "next to it: "+file+".initial, "+file)
	if err != nil && strings.Contains(err.Error(), "chmod") {
		t.Errorf("the verifier key as key file: %v advises a chmod", err)
	}
	if err := os.Chmod(pub, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ReadKeyFile(pub)
	assertErrorSays(t, "the verifier key (0600) as key file", err, pub, "checkpoint verifier key", "not a MAC key")
	_, err = ReadKeyState(signer)
	assertErrorSays(t, "the signer as key file", err, "key file "+signer+" is the checkpoint signer key", "not a MAC key", "next to it: "+file+".initial, "+file)

	_, err = ReadSignerFile(pub)
	assertErrorSays(t, "the verifier key as signer", err, "signer key "+pub+" is the checkpoint verifier key", "that is FILE.signer; next to it: "+signer)
	_, err = ReadSignerFile(file)
	assertErrorSays(t, "the MAC key as signer", err, "signer key "+file+" is a MAC key", "next to it: "+signer)
	_, err = ReadVerifierFile(signer)
	assertErrorSays(t, "the signer as verifier key", err, "verifier key "+signer+" is the checkpoint signer key", "that is FILE.pub; next to it: "+pub)
	_, err = ReadVerifierFile(file + ".initial")
	assertErrorSays(t, "K(0) as verifier key", err, "verifier key "+file+".initial is a MAC key", "next to it: "+pub)

	// The right files still read.
	if _, err := ReadKeyFile(file + ".initial"); err != nil {
		t.Error(err)
	}
	if _, err := ReadSignerFile(signer); err != nil {
		t.Error(err)
	}
	if _, err := ReadVerifierFile(pub); err != nil {
		t.Error(err)
	}
	// A file of the right kind that others may read is still refused.
	other := filepath.Join(t.TempDir(), "k0")
	if err := os.WriteFile(other, []byte(strings.Repeat("ab", KeySize)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadKeyFile(other)
	assertErrorSays(t, "a 0644 MAC key", err, other, "chmod 600")
}

// Every key-format error names the file.
func TestKeyFormatErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"short":     "abcdef\n",
		"not-hex":   strings.Repeat("zz", KeySize) + "\n",
		"state":     "slogaudit-key v2\nkey_id 0123\n",
		"state-key": "slogaudit-key v2\nkey_id 0123456789abcdef\nepoch 1\nkey 00\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ReadKeyFile(path)
		assertErrorSays(t, name, err, "chain: key file "+path+": ")
	}
	_, err := ReadKeyFile(filepath.Join(dir, "short"))
	assertErrorSays(t, "short", err, "must hold 64 hex digits", "it holds 7 bytes")
	_, err = ReadKeyFile(dir)
	assertErrorSays(t, "a directory", err, dir+" is not a regular file: it is a directory")
}

// Open with a key file that is not there says how to create one; with the
// verifier key as key file it says what that file is.
func TestOpenKeyFileMixUps(t *testing.T) {
	open := func(keyFile string) error {
		w, err := Open(Options{KeyFile: keyFile, Rotate: rotate.Options{Dir: t.TempDir(), Now: fakeClock()}})
		if err == nil {
			w.Close()
		}
		return err
	}
	missing := filepath.Join(t.TempDir(), "audit.key")
	assertErrorSays(t, "missing key file", open(missing), missing, "no such file", "create one with auditctl keygen -o "+missing)
	file := keygenFiles(t)
	assertErrorSays(t, "the verifier key as key file", open(file+".pub"), file+".pub is the checkpoint verifier key", "not a MAC key", "next to it:")
}

func assertErrorSays(t *testing.T, what string, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not say %q", what, err, w)
		}
	}
}
