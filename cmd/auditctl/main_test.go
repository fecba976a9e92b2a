package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/internal/testfs"
	"github.com/slogaudit/slogaudit/rotate"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.key")
	code, out, errs := runCmd("keygen", "-o", path)
	if code != 0 || !strings.Contains(out, "key_id") {
		t.Fatalf("keygen: %d %q %q", code, out, errs)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	key, err := chain.ReadKeyFile(path)
	if err != nil || len(key) != chain.KeySize {
		t.Fatalf("read key: %v", err)
	}
	if code, _, errs := runCmd("keygen", "-o", path); code != exitUsage || !strings.Contains(errs, "exists") {
		t.Errorf("keygen over an existing file: %d %q", code, errs)
	}
	// A keygen that fails writes nothing: the key's companions are not
	// left behind to make the next attempt fail.
	other := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(other, []byte("in the way\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCmd("keygen", "-o", other); code != exitUsage {
		t.Errorf("keygen over an existing key: %d", code)
	}
	for _, p := range []string{other + ".signer", other + ".pub"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a failed keygen left %s", p)
		}
	}
	if code, _, _ := runCmd("keygen"); code != exitUsage {
		t.Errorf("keygen without -o: %d", code)
	}
}

// setup writes a keyed log of three files and returns the dir and key file.
func setup(t *testing.T) (dir, keyFile string, files []string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "audit")
	keyFile = filepath.Join(t.TempDir(), "k")
	if code, _, errs := runCmd("keygen", "-o", keyFile); code != 0 {
		t.Fatal(errs)
	}
	key, _ := chain.ReadKeyFile(keyFile)
	for f := range 3 {
		w, err := chain.Open(chain.Options{Key: key, Rotate: rotate.Options{Dir: dir}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := w.Append(fmt.Appendf(nil, `"msg":"f%d r%d"`, f, i), nil); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
	}
	files, _ = rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	if len(files) != 3 {
		t.Fatalf("%d files", len(files))
	}
	return dir, keyFile, files
}

func TestVerifyIntactAndJSON(t *testing.T) {
	dir, keyFile, _ := setup(t)
	code, out, errs := runCmd("verify", "--key-file", keyFile, dir)
	if code != exitOK || !strings.Contains(out, "INTACT") || strings.Count(out, "OK ") != 3 {
		t.Fatalf("verify: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd("verify", dir, "--json", "--key-file", keyFile) // flags after DIR
	var rep chain.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || !rep.Intact || rep.LastSeq != 21 {
		t.Fatalf("--json: %d %v %s", code, err, out)
	}
}

// The end of the trail in the text report: an open newest file is an INFO
// line (exit 0); a newest file closed for rotation with no newer file is
// TRUNCATED (exit 1).
func TestVerifyEndOfTrail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	keyFile := filepath.Join(t.TempDir(), "k")
	if code, _, errs := runCmd("keygen", "-o", keyFile); code != 0 {
		t.Fatal(errs)
	}
	key, _ := chain.ReadKeyFile(keyFile)
	w, err := chain.Open(chain.Options{Key: key, Rotate: rotate.Options{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := w.Append(fmt.Appendf(nil, `"msg":"r%d"`, i), nil); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, _ := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	info := "INFO newest file " + filepath.Base(files[1]) + " is open (no close record): the writer is running, or stopped without Close\n"
	code, out, _ := runCmd("verify", "--key-file", keyFile, dir)
	if code != exitOK || !strings.Contains(out, "\n"+info) || !strings.Contains(out, "INTACT") {
		t.Fatalf("open newest file: %d\n%s", code, out)
	}
	w.Close()
	code, out, _ = runCmd("verify", "--key-file", keyFile, dir)
	if code != exitOK || strings.Contains(out, "INFO") {
		t.Fatalf("closed trail: %d\n%s", code, out)
	}
	os.Remove(files[1])
	code, out, _ = runCmd("verify", "--key-file", keyFile, dir)
	if code != exitInvalid || !strings.Contains(out, "FAIL TRUNCATED "+filepath.Base(files[0])+" seq 4: the newest file was closed for rotation (reason \"rotate\")") {
		t.Fatalf("newest file removed after a rotation: %d\n%s", code, out)
	}
}

func TestVerifyReportsTampering(t *testing.T) {
	dir, keyFile, files := setup(t)
	data, _ := os.ReadFile(files[1])
	os.WriteFile(files[1], bytes.Replace(data, []byte(`f1 r2`), []byte(`f1 r9`), 1), 0o600)
	code, out, _ := runCmd("verify", "--key-file", keyFile, dir)
	name := filepath.Base(files[1])
	if code != exitInvalid || !strings.Contains(out, "FAIL "+name) || !strings.Contains(out, "MODIFIED line 4 seq 11") {
		t.Fatalf("verify: %d\n%s", code, out)
	}
	code, out, _ = runCmd("verify", "--json", "--key-file", keyFile, dir)
	var rep chain.Report
	json.Unmarshal([]byte(out), &rep)
	ps := rep.Problems()
	if code != exitInvalid || rep.Intact || len(ps) != 1 || ps[0].File != name || ps[0].Line != 4 || ps[0].Class != chain.Modified {
		t.Fatalf("--json: %d %+v", code, ps)
	}
}

func TestVerifyUsageErrors(t *testing.T) {
	dir, keyFile, _ := setup(t)
	for _, args := range [][]string{
		{"verify"},
		{"verify", dir, dir},
		{"verify", dir}, // keyed files, no key
		{"verify", "--key-file", filepath.Join(t.TempDir(), "missing"), dir},
		{"verify", "--key-file", keyFile, t.TempDir()}, // no files
		{"verify", "--bogus", dir},
		{"frobnicate"},
		{},
	} {
		if code, _, errs := runCmd(args...); code != exitUsage || errs == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
	os.Chmod(keyFile, 0o644)
	if code, _, errs := runCmd("verify", "--key-file", keyFile, dir); code != exitUsage || !strings.Contains(errs, "chmod 600") {
		t.Errorf("world-readable key: %d %q", code, errs)
	}
}

// The keygen → service → verify workflow of FORMAT.md §6–7: K(0) copied
// offline, the key file evolving, checkpoints signed, and a rollback found
// with the checkpoint the auditor kept.
func TestVerifyCheckpointsAndRollback(t *testing.T) {
	keyFile, k0, dir, old := signedTrail(t)
	tmp := t.TempDir()
	args := []string{"verify", "--key-file", k0, "--checkpoint-key", keyFile + ".pub", dir}
	if code, out, errs := runCmd(args...); code != 0 || !strings.Contains(out, "signatures verified") {
		t.Fatalf("verify: %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCmd("verify", "--key-file", keyFile, dir); code != exitUsage || !strings.Contains(errs, "K(0)") {
		t.Errorf("verify with the evolved key: %d %q", code, errs)
	}
	es, _ := chain.ReadCheckpointsFile(filepath.Join(dir, chain.CheckpointsFileName("")))
	trusted := filepath.Join(tmp, "trusted.note")
	os.WriteFile(trusted, es[len(es)-1].Note, 0o644)
	os.RemoveAll(dir)
	os.Mkdir(dir, 0o700)
	copyFiles(t, old, dir)
	code, out, errs := runCmd(append([]string{"verify", "--trusted-checkpoint", trusted}, args[1:]...)...)
	if code != exitInvalid || !strings.Contains(out, "ROLLBACK") {
		t.Errorf("rolled-back dir: %d\n%s%s", code, out, errs)
	}
}

func copyFiles(t *testing.T, from, to string) {
	t.Helper()
	testfs.CopyFiles(t, from, to, nil)
}

// Without K(0), a forward-secure trail's events are verified by the digests
// of its signed checkpoints.
func TestQueryVerifiesByCheckpoints(t *testing.T) {
	tmp := t.TempDir()
	keyFile, dir := filepath.Join(tmp, "audit.key"), filepath.Join(tmp, "audit")
	if code, _, errs := runCmd("keygen", "-o", keyFile, "--name", "test"); code != 0 {
		t.Fatalf("keygen: %s", errs)
	}
	signer, err := chain.ReadSignerFile(keyFile + ".signer")
	if err != nil {
		t.Fatal(err)
	}
	w, err := chain.Open(chain.Options{KeyFile: keyFile, Rotate: rotate.Options{Dir: dir}, Checkpoints: chain.CheckpointOptions{Signer: signer, Every: 4}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		w.Append(fmt.Appendf(nil, `"msg":"r%d","event":"test","action":"a","status":"success"`, i), nil)
	}
	w.Close()
	if code, out, errs := runCmd("query", "--checkpoint-key", keyFile+".pub", dir); code != 0 || errs != "" || strings.Count(out, "\n") != 10 {
		t.Errorf("with the checkpoint key: %d %q\n%s", code, errs, out)
	}
	if code, _, errs := runCmd("query", dir); code != 0 || !strings.Contains(errs, "10 of 10 events not verified") {
		t.Errorf("without keys: %d %q", code, errs)
	}
}

// TestUsageListsEveryFlag keeps the usage text in step with the flag sets:
// each command's synopsis in usage names every flag the command registers
// (as -h lists them), and no flag it does not register.
func TestUsageListsEveryFlag(t *testing.T) {
	// The synopsis of each command: its line in usage and the lines up to
	// the next command's.
	synopsis := map[string]string{}
	var cmd string
	for _, line := range strings.Split(usage, "\n") {
		if rest, ok := strings.CutPrefix(line, "  auditctl "); ok {
			cmd, _, _ = strings.Cut(rest, " ")
		}
		if cmd != "" {
			synopsis[cmd] += line + "\n"
		}
	}
	defined := regexp.MustCompile(`(?m)^  -([A-Za-z0-9][\w-]*)`)
	mentioned := regexp.MustCompile(`[\s\[]--?([A-Za-z0-9][\w-]*)`)
	for _, cmd := range []string{"keygen", "verify", "query", "tail", "fingerprint"} {
		text, ok := synopsis[cmd]
		if !ok {
			t.Errorf("usage has no line for %s:\n%s", cmd, usage)
			continue
		}
		code, help, _ := runCmd(cmd, "-h")
		flags := map[string]bool{}
		for _, m := range defined.FindAllStringSubmatch(help, -1) {
			flags[m[1]] = true
		}
		if code != exitOK || len(flags) == 0 {
			t.Fatalf("%s -h: %d %q", cmd, code, help)
		}
		for f := range flags {
			if !regexp.MustCompile(`[\s\[]--?` + regexp.QuoteMeta(f) + `[\s\]=]`).MatchString(text) {
				t.Errorf("usage of %s does not mention -%s:\n%s", cmd, f, text)
			}
		}
		for _, m := range mentioned.FindAllStringSubmatch(text, -1) {
			if !flags[m[1]] {
				t.Errorf("usage of %s mentions -%s, which it does not define:\n%s", cmd, m[1], text)
			}
		}
	}
}
