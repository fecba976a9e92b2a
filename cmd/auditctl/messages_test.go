package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
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

// signedTrail runs keygen and two sessions of a signed, forward-secure
// writer; old is a copy of the directory after the first.
func signedTrail(t *testing.T) (keyFile, k0, dir, old string) {
	t.Helper()
	tmp := t.TempDir()
	keyFile, dir = filepath.Join(tmp, "audit.key"), filepath.Join(tmp, "audit")
	if code, out, errs := runCmd("keygen", "-o", keyFile, "--name", "test"); code != 0 || !strings.Contains(out, "offline") {
		t.Fatalf("keygen: %d %q %q", code, out, errs)
	}
	k0 = keyFile + ".initial"
	data, _ := os.ReadFile(keyFile)
	os.WriteFile(k0, data, 0o600)
	signer, err := chain.ReadSignerFile(keyFile + ".signer")
	if err != nil {
		t.Fatal(err)
	}
	session := func() {
		w, err := chain.Open(chain.Options{KeyFile: keyFile, Rotate: rotate.Options{Dir: dir}, Checkpoints: chain.CheckpointOptions{Signer: signer, Every: 4}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			w.Append(fmt.Appendf(nil, `"msg":"r%d"`, i), nil)
		}
		w.Close()
	}
	session()
	old = filepath.Join(tmp, "old")
	os.Mkdir(old, 0o700)
	copyFiles(t, dir, old)
	session()
	return keyFile, k0, dir, old
}

// --trusted-checkpoint takes a copy of the checkpoints file or one of its
// lines, not only the note; anything else says which forms it takes.
func TestTrustedCheckpointFile(t *testing.T) {
	keyFile, k0, dir, old := signedTrail(t)
	ckpts, err := os.ReadFile(filepath.Join(dir, chain.CheckpointsFileName("")))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(ckpts), "\n")
	tmp := t.TempDir()
	forms := map[string]string{"copy": string(ckpts), "line": lines[len(lines)-2]}
	for name, text := range forms {
		path := filepath.Join(tmp, name)
		os.WriteFile(path, []byte(text), 0o644)
		forms[name] = path
	}
	args := func(d, trusted string) []string {
		return []string{"verify", "--key-file", k0, "--checkpoint-key", keyFile + ".pub", "--trusted-checkpoint", trusted, d}
	}
	for name, path := range forms {
		if code, out, errs := runCmd(args(dir, path)...); code != exitOK || !strings.Contains(out, "INTACT") {
			t.Errorf("%s: %d\n%s%s", name, code, out, errs)
		}
		if code, out, errs := runCmd(args(old, path)...); code != exitInvalid || !strings.Contains(out, "ROLLBACK") {
			t.Errorf("%s, rolled back: %d\n%s%s", name, code, out, errs)
		}
	}
	junk := filepath.Join(tmp, "junk")
	os.WriteFile(junk, []byte("not a checkpoint\n"), 0o644)
	code, _, errs := runCmd(args(dir, junk)...)
	if ok, missing := says(errs, "--trusted-checkpoint "+junk+": ", "not a signed note", "give the signed note", "a line of audit.checkpoints (tail -n 1), or a copy of the whole file"); code != exitUsage || !ok {
		t.Errorf("junk: %d %q: want %q", code, errs, missing)
	}
	code, _, errs = runCmd("verify", "--key-file", k0, "--trusted-checkpoint", forms["copy"], dir)
	if code != exitUsage || !strings.Contains(errs, "--trusted-checkpoint needs --checkpoint-key") {
		t.Errorf("without --checkpoint-key: %d %q", code, errs)
	}
}

// A --key-file or --checkpoint-key of another keygen is a usage error
// (exit 2) that names the trail's key and the key given, not TAMPERED OR
// DAMAGED (exit 1); with something else found it still exits 1.
func TestVerifyWrongKeys(t *testing.T) {
	keyFile, k0, dir, otherFile, trailKey, otherKey := trailAndOtherKey(t)
	trail, given := chain.KeyID(trailKey), chain.KeyID(otherKey)
	pub, otherPub := keyFile+".pub", otherFile+".pub"
	vkey, _ := chain.ReadVerifierFile(pub)
	okey, _ := chain.ReadVerifierFile(otherPub)
	name := func(v note.Verifier) string {
		return fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())
	}
	for _, tc := range []struct {
		name     string
		key, ckp string
		code     int
		stderr   []string
		stdout   []string
	}{
		{"wrong K(0)", otherFile, pub, exitUsage,
			[]string{"auditctl verify: wrong key: the trail is sealed with key_id " + trail + ", the key given (--key-file " + otherFile + ") is key_id " + given},
			[]string{"WRONG_KEY", "key_id " + trail + " (the trail's; the key given is key_id " + given + "): NOT VERIFIED: WRONG KEY"}},
		{"wrong checkpoint key", k0, otherPub, exitUsage,
			[]string{"auditctl verify: wrong checkpoint key: checkpoints are signed by " + name(vkey) + ", --checkpoint-key " + otherPub + " is " + name(okey)},
			[]string{"WRONG_KEY", "NOT VERIFIED: WRONG KEY"}},
		{"right keys", k0, pub, exitOK, nil, []string{"INTACT"}},
	} {
		code, out, errs := runCmd("verify", "--key-file", tc.key, "--checkpoint-key", tc.ckp, dir)
		okErr, missErr := says(errs, tc.stderr...)
		okOut, missOut := says(out, tc.stdout...)
		if code != tc.code || !okErr || !okOut || strings.Contains(out, "TAMPERED") || strings.Contains(out, "no verifiable signatures") {
			t.Errorf("%s: exit %d (want %d), stderr missing %q, stdout missing %q:\n%s%s", tc.name, code, tc.code, missErr, missOut, out, errs)
		}
		if strings.Count(errs, "wrong") > 1 {
			t.Errorf("%s: said more than once:\n%s", tc.name, errs)
		}
		code, out, _ = runCmd("verify", "--json", "--key-file", tc.key, "--checkpoint-key", tc.ckp, dir)
		if code != tc.code || (tc.code == exitUsage) != strings.Contains(out, `"class": "WRONG_KEY"`) {
			t.Errorf("%s --json: exit %d (want %d):\n%s", tc.name, code, tc.code, out)
		}
	}

	// A line deleted as well: that is found, and the exit is 1.
	files, _ := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	data, _ := os.ReadFile(files[0])
	lines := strings.SplitAfter(string(data), "\n")
	os.WriteFile(files[0], []byte(strings.Join(append(lines[:2:2], lines[3:]...), "")), 0o600)
	for _, keys := range [][2]string{{otherFile, pub}, {k0, otherPub}} {
		code, out, errs := runCmd("verify", "--key-file", keys[0], "--checkpoint-key", keys[1], dir)
		if code != exitInvalid || !strings.Contains(out, "DELETED") || !strings.Contains(out, "TAMPERED OR DAMAGED") || !strings.Contains(errs, "wrong") {
			t.Errorf("keys %v and a deleted line: exit %d:\n%s%s", keys, code, out, errs)
		}
	}
}

// Every command's -h prints its synopsis (its arguments and exit codes)
// and then its flags, as query and tail did, not a bare flag list: on
// stdout, exit 0 (TestHelpExitsZero).
func TestHelpHasUsageLine(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"verify", []string{"] DIR\n", "exit 0 intact", "1 invalid, 2 usage", "or a key that is not the trail's", "-trusted-checkpoint FILE\n", "a line of DIR/audit.checkpoints"}},
		{"keygen", []string{"auditctl keygen -o FILE [--name SIGNER]", "exit 0, or 2 when one of", "-o FILE\n"}},
		{"fingerprint", []string{"auditctl fingerprint --key-file FILE [VALUE]", "exit 0, or 2 for usage and key errors", "-key-file FILE\n"}},
		{"query", []string{"auditctl query DIR", "exit 0", "2 usage or I/O error"}},
		{"tail", []string{"auditctl tail DIR", "exit 0 when stopped, 2 usage or I/O error"}},
	} {
		code, help, errs := runCmd(tc.cmd, "--help")
		ok, missing := says(help, tc.want...)
		if code != exitOK || errs != "" || !strings.HasPrefix(help, "usage:\n  auditctl "+tc.cmd+" ") || !strings.Contains(help, "\n\nflags:\n  -") || !ok {
			t.Errorf("%s --help: exit %d, missing %q:\n%s", tc.cmd, code, missing, help)
		}
		if strings.Contains(help, "Usage of") {
			t.Errorf("%s --help prints the bare flag list:\n%s", tc.cmd, help)
		}
	}
	// Used wrongly, keygen and fingerprint show the same.
	for _, args := range [][]string{{"keygen"}, {"fingerprint"}} {
		if code, _, errs := runCmd(args...); code != exitUsage || !strings.Contains(errs, "usage:\n  auditctl "+args[0]) || !strings.Contains(errs, "flags:") {
			t.Errorf("%v: exit %d:\n%s", args, code, errs)
		}
	}
}

// query and tail given a --key-file (or --checkpoint-key) that is not the
// trail's say so in verify's words when events do not verify: the key the
// trail is sealed with, the key given, and that no event could be verified
// with it; not only that events are not verified. When every event
// verifies (with the right keys, or by the signed checkpoints of a closed
// trail) they say nothing more.
func TestQueryAndTailWrongKeys(t *testing.T) {
	keyFile, k0, dir, otherFile, trailKey, otherKey := trailAndOtherKey(t)
	for _, tc := range []struct {
		name       string
		keys       []string
		wrong      int  // lines verify says wrong key in
		unverified bool // query and tail print events not verified
	}{
		{"wrong K(0)", []string{"--key-file", otherFile}, 1, true},
		{"both wrong", []string{"--key-file", otherFile, "--checkpoint-key", otherFile + ".pub"}, 2, true},
		{"wrong K(0), checkpoints verify every event", []string{"--key-file", otherFile, "--checkpoint-key", keyFile + ".pub"}, 1, false},
		{"right keys", []string{"--key-file", k0, "--checkpoint-key", keyFile + ".pub"}, 0, false},
	} {
		_, _, verifyErrs := runCmd(append([]string{"verify"}, append(tc.keys, dir)...)...)
		var said []string // verify's words, without its name
		for _, line := range strings.Split(strings.TrimSuffix(verifyErrs, "\n"), "\n") {
			if s, ok := strings.CutPrefix(line, "auditctl verify: wrong "); ok {
				said = append(said, "wrong "+s)
			}
		}
		if len(said) != tc.wrong {
			t.Fatalf("%s: verify says wrong key %d times, want %d:\n%s", tc.name, len(said), tc.wrong, verifyErrs)
		}
		if tc.wrong > 0 {
			if ok, missing := says(verifyErrs, "wrong key: the trail is sealed with key_id "+chain.KeyID(trailKey)+", the key given (--key-file "+otherFile+") is key_id "+chain.KeyID(otherKey)+": no event could be verified with it"); !ok {
				t.Errorf("%s: verify's words lack %q:\n%s", tc.name, missing, verifyErrs)
			}
		}
		if !tc.unverified {
			said = nil // nothing to explain
		}

		code, out, errs := runCmd(append([]string{"query"}, append(tc.keys, dir)...)...)
		if code != exitOK || strings.Count(out, "\n") != 20 {
			t.Errorf("%s: query: exit %d, %d events:\n%s", tc.name, code, strings.Count(out, "\n"), out)
		}
		if !tc.unverified && (errs != "" || strings.Contains(out, "✗")) {
			t.Errorf("%s: query says %q\n%s", tc.name, errs, out)
		}
		for _, s := range said {
			if strings.Count(errs, "auditctl query: "+s+"\n") != 1 {
				t.Errorf("%s: query does not say once %q:\n%s", tc.name, "auditctl query: "+s, errs)
			}
		}

		tailOut, tailErrs, stop := startTail(t, append(tc.keys, "-n", "3", dir)...)
		waitLines(t, tailOut, 3)
		waitLines(t, tailErrs, len(said))
		if code := stop(); code != exitOK {
			t.Errorf("%s: tail: exit %d", tc.name, code)
		}
		if len(said) == 0 && tailErrs.String() != "" {
			t.Errorf("%s: tail says %q", tc.name, tailErrs)
		}
		for _, s := range said {
			if strings.Count(tailErrs.String(), "auditctl tail: "+s+"\n") != 1 {
				t.Errorf("%s: tail does not say once %q:\n%s", tc.name, "auditctl tail: "+s, tailErrs)
			}
		}
	}
}

// tail -n 0 says it at the first new event that does not verify.
func TestTailWrongKeyAtFirstNewEvent(t *testing.T) {
	keyFile, _, dir, _ := signedTrail(t)
	otherFile := filepath.Join(t.TempDir(), "other.key")
	if code, _, errs := runCmd("keygen", "-o", otherFile); code != 0 {
		t.Fatal(errs)
	}
	out, errs, stop := startTail(t, "--key-file", otherFile, "-n", "0", "--poll", "10ms", dir)
	time.Sleep(50 * time.Millisecond)
	if errs.String() != "" {
		t.Errorf("before any event: %q", errs)
	}
	w, err := chain.Open(chain.Options{KeyFile: keyFile, Rotate: rotate.Options{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]byte(`"msg":"new"`), nil); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitLines(t, out, 1)
	waitLines(t, errs, 1)
	stop()
	if ok, missing := says(errs.String(), "auditctl tail: wrong key: the trail is sealed with key_id ", "no event could be verified"); !ok {
		t.Errorf("tail says %q, lacks %q", errs, missing)
	}
}

// chain's errors, as verify and query print them, say "chain: " once: a
// chain error wrapped in another does not repeat it.
func TestChainErrorsSayChainOnce(t *testing.T) {
	keyFile, k0, dir, _ := signedTrail(t)
	tmp := t.TempDir()
	trusted := func(name, content string) []string {
		path := filepath.Join(tmp, name)
		os.WriteFile(path, []byte(content), 0o644)
		return []string{"verify", "--key-file", k0, "--checkpoint-key", keyFile + ".pub", "--trusted-checkpoint", path, dir}
	}
	for _, args := range [][]string{
		trusted("empty", "\n"),
		trusted("text", "not a checkpoint\n"),
		trusted("line", `{"seq":1,"epoch":0,"note":"hello\n\n— x\n"}`+"\n"),
		{"verify", "--key-file", keyFile + ".pub", dir},
		{"verify", "--key-file", k0, "--checkpoint-key", keyFile + ".signer", dir},
		{"verify", "--key-file", filepath.Join(tmp, "missing"), dir},
		{"verify", dir},
		{"query", "--key-file", keyFile + ".signer", dir},
	} {
		code, _, errs := runCmd(args...)
		if code != exitUsage || !strings.Contains(errs, "chain: ") {
			t.Errorf("%q: exit %d, stderr %q: want exit 2 and chain's error", args, code, errs)
		}
		for _, line := range strings.Split(errs, "\n") {
			if strings.Count(line, "chain: ") > 1 {
				t.Errorf("%q: %q says \"chain: \" more than once", args, line)
			}
		}
	}
}

// trailAndOtherKey is signedTrail plus the key file of another keygen
// (otherFile), and the K(0) of each: the trail's and the other's.
func trailAndOtherKey(t *testing.T) (keyFile, k0, dir, otherFile string, trailKey, otherKey []byte) {
	t.Helper()
	keyFile, k0, dir, _ = signedTrail(t)
	otherFile = filepath.Join(t.TempDir(), "other.key")
	if code, _, errs := runCmd("keygen", "-o", otherFile, "--name", "other"); code != 0 {
		t.Fatal(errs)
	}
	var err error
	if trailKey, err = chain.ReadKeyFile(k0); err != nil {
		t.Fatal(err)
	}
	if otherKey, err = chain.ReadKeyFile(otherFile); err != nil {
		t.Fatal(err)
	}
	return keyFile, k0, dir, otherFile, trailKey, otherKey
}

// A wrong --checkpoint-key is named for what it costs: with the right
// K(0) the events still verify by their MACs (verify says only that no
// signature could be checked); without K(0), query names the key too,
// which it cannot ask Verify about.
func TestWrongCheckpointKeyWords(t *testing.T) {
	_, k0, dir, otherFile, _, _ := trailAndOtherKey(t)
	_, _, errs := runCmd("verify", "--key-file", k0, "--checkpoint-key", otherFile+".pub", dir)
	if !strings.Contains(errs, "wrong checkpoint key") || !strings.Contains(errs, "no checkpoint signature could be checked with it (the events' MACs are checked") ||
		strings.Contains(errs, "no event could be verified") {
		t.Errorf("verify with K(0) and a wrong --checkpoint-key:\n%s", errs)
	}
	code, out, errs := runCmd("query", "--checkpoint-key", otherFile+".pub", dir)
	if code != 0 || out == "" || !strings.Contains(errs, "wrong checkpoint key: checkpoints are signed by") ||
		!strings.Contains(errs, "so no event is verified by the checkpoints") || !strings.Contains(errs, "a key given is not the trail's") {
		t.Errorf("query with only a wrong --checkpoint-key: exit %d\n%s", code, errs)
	}
}
