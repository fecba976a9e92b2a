package chain

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/rotate"
)

// prefixAt finds where a part of an error message says "chain: ": at its
// start, or after the ": ", "; " or "(" that begins a wrapped error.
var prefixAt = regexp.MustCompile(`(?:^|: |; |\()chain: `)

// saysChainOnce reports whether every error of msg (errors.Join puts one a
// line) begins with "chain: " and says it nowhere else: an error of this
// package wrapped in another says what the outer one adds, then its own
// words without the prefix ("chain: trusted checkpoint: bad checkpoint: …",
// not "… checkpoint: chain: bad checkpoint: …").
func saysChainOnce(msg string) bool {
	for _, line := range strings.Split(msg, "\n") {
		at := prefixAt.FindAllStringIndex(line, -1)
		if len(at) != 1 || at[0][0] != 0 {
			return false
		}
	}
	return true
}

// Every error path of the table says "chain: " once, at its start, and
// unwraps as it did when it said it twice: the same sentinel and typed
// errors are found in it, and no other.
func TestErrorsSayChainOnce(t *testing.T) {
	f := newSigned(t)
	f.session(t, 10, rotate.Options{}, 4)
	signed := lastNote(t, f.dir)
	_, otherVerifier := testSigner(t, "other-signer")
	// Signed by the right key, but not a checkpoint.
	notCheckpoint, err := note.Sign(&note.Note{Text: "not a checkpoint\n"}, f.signer)
	if err != nil {
		t.Fatal(err)
	}
	// A checkpoint whose text changed after it was signed.
	changed := []byte(strings.Replace(string(signed), "\nepoch ", "\nepoch 1", 1))
	trusted := func(data []byte, key note.Verifier) error {
		_, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: key, Trusted: data})
		return err
	}

	keys := keygenFiles(t)
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "missing")
	file := func(name, content string, mode os.FileMode) string {
		path := filepath.Join(tmp, name)
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	evolved := filepath.Join(tmp, "evolved")
	if err := WriteKeyState(evolved, KeyState{ID: KeyID(f.k0), Epoch: 3, Key: GenerateKey()}); err != nil {
		t.Fatal(err)
	}
	readKey := func(path string) error { _, err := ReadKeyFile(path); return err }
	readSigner := func(path string) error { _, err := ReadSignerFile(path); return err }
	readVerifier := func(path string) error { _, err := ReadVerifierFile(path); return err }
	verify := func(dir string, key []byte) error { _, err := Verify(dir, VerifyOptions{Key: key}); return err }
	open := func(opts Options) error {
		w, err := Open(opts)
		if err == nil {
			w.Close()
		}
		return err
	}

	var (
		invalidSig *note.InvalidSignatureError
		pathErr    *fs.PathError
	)
	sentinels := []error{ErrTrustedCheckpoint, ErrBadCheckpoint, ErrKeyRequired, ErrNoFiles, ErrBadBody, fs.ErrNotExist}
	types := map[string]func(error) bool{
		"*note.InvalidSignatureError": func(err error) bool { return errors.As(err, &invalidSig) },
		"*fs.PathError":               func(err error) bool { return errors.As(err, &pathErr) },
	}
	for _, tc := range []struct {
		name string
		err  error
		is   []error  // the sentinels it wraps, of sentinels
		as   []string // the typed errors it wraps, of types
	}{
		{"trusted: empty", trusted([]byte("\n"), f.verifier), []error{ErrTrustedCheckpoint, ErrBadCheckpoint}, nil},
		{"trusted: text", trusted([]byte("hello\n"), f.verifier), []error{ErrTrustedCheckpoint, ErrBadCheckpoint}, nil},
		{"trusted: bad JSON string", trusted([]byte(`"unterminated`), f.verifier), []error{ErrTrustedCheckpoint, ErrBadCheckpoint}, nil},
		{"trusted: not a checkpoints file line", trusted([]byte(`{"x":1}`+"\n"), f.verifier), []error{ErrTrustedCheckpoint, ErrBadCheckpoint}, nil},
		{"trusted: a line whose note is malformed", trusted([]byte(`{"seq":1,"epoch":0,"note":"hello\n\n— x\n"}`+"\n"), f.verifier), []error{ErrTrustedCheckpoint, ErrBadCheckpoint}, nil},
		{"trusted: a line whose note is no note", trusted([]byte(`{"seq":1,"epoch":0,"note":"hello"}`+"\n"), f.verifier), []error{ErrTrustedCheckpoint, ErrBadCheckpoint}, nil},
		{"trusted: signed, not a checkpoint", trusted(notCheckpoint, f.verifier), []error{ErrTrustedCheckpoint, ErrBadCheckpoint}, nil},
		{"trusted: changed after signing", trusted(changed, f.verifier), []error{ErrTrustedCheckpoint, ErrBadCheckpoint}, []string{"*note.InvalidSignatureError"}},
		{"trusted: another signer", trusted(signed, otherVerifier), []error{ErrTrustedCheckpoint}, nil},
		{"trusted: no checkpoint key", trusted(signed, nil), []error{ErrTrustedCheckpoint}, nil},
		{"TrustedNote: a line whose note is malformed", func() error {
			_, err := TrustedNote([]byte(`{"seq":1,"epoch":0,"note":"hello\n\n— x\n"}` + "\n"))
			return err
		}(), []error{ErrBadCheckpoint}, nil},
		{"OpenCheckpoint: changed after signing", func() error { _, err := OpenCheckpoint(changed, f.verifier); return err }(), []error{ErrBadCheckpoint}, []string{"*note.InvalidSignatureError"}},

		{"key file: the verifier key", readKey(keys + ".pub"), nil, nil},
		{"key file: the signer", readKey(keys + ".signer"), nil, nil},
		{"key file: missing", readKey(missing), []error{fs.ErrNotExist}, []string{"*fs.PathError"}},
		{"key file: a directory", readKey(tmp), nil, nil},
		{"key file: mode 0644", readKey(file("k0644", strings.Repeat("ab", KeySize), 0o644)), nil, nil},
		{"key file: not hex", readKey(file("nothex", strings.Repeat("zz", KeySize), 0o600)), nil, nil},
		{"key file: malformed state", readKey(file("state", keyStateHeader+"\nkey_id 0123\n", 0o600)), nil, nil},
		{"key file: evolved", readKey(evolved), nil, nil},
		{"ParseKey: short", func() error { _, err := ParseKey([]byte("abc")); return err }(), nil, nil},
		{"ParseKeyState: short", func() error { _, err := ParseKeyState([]byte("abc")); return err }(), nil, nil},
		{"signer: the verifier key", readSigner(keys + ".pub"), nil, nil},
		{"signer: the MAC key", readSigner(keys), nil, nil},
		{"signer: missing", readSigner(missing), []error{fs.ErrNotExist}, []string{"*fs.PathError"}},
		{"signer: malformed", readSigner(file("signer", "PRIVATE+KEY+x+y\n", 0o600)), nil, nil},
		{"verifier: the signer", readVerifier(keys + ".signer"), nil, nil},
		{"verifier: the MAC key", readVerifier(keys), nil, nil},
		{"verifier: missing", readVerifier(missing), []error{fs.ErrNotExist}, []string{"*fs.PathError"}},
		{"verifier: malformed", readVerifier(file("verifier", "hello\n", 0o644)), nil, nil},

		{"verify: keyed, no key", verify(f.dir, nil), []error{ErrKeyRequired}, nil},
		{"verify: no files", verify(t.TempDir(), f.k0), []error{ErrNoFiles}, nil},
		{"verify: missing directory", verify(missing, f.k0), []error{fs.ErrNotExist}, []string{"*fs.PathError"}},
		{"verify: short key", verify(f.dir, []byte("short")), nil, nil},
		{"open: key file missing", open(Options{KeyFile: missing, Rotate: rotate.Options{Dir: t.TempDir()}}), []error{fs.ErrNotExist}, []string{"*fs.PathError"}},
		{"open: the verifier key as key file", open(Options{KeyFile: keys + ".pub", Rotate: rotate.Options{Dir: t.TempDir()}}), nil, nil},
		{"open: another key", open(Options{Key: GenerateKey(), Rotate: rotate.Options{Dir: f.dir}}), nil, nil},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !saysChainOnce(tc.err.Error()) {
			t.Errorf("%s: %q does not say \"chain: \" once, at its start", tc.name, tc.err)
		}
		for _, s := range sentinels {
			if want := slices.Contains(tc.is, s); errors.Is(tc.err, s) != want {
				t.Errorf("%s: errors.Is(%q, %q) is %v", tc.name, tc.err, s, !want)
			}
		}
		for name, as := range types {
			if want := slices.Contains(tc.as, name); as(tc.err) != want {
				t.Errorf("%s: errors.As(%q, %s) is %v", tc.name, tc.err, name, !want)
			}
		}
	}
}
