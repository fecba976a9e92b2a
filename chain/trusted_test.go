package chain

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// A trusted checkpoint is taken in every form one is kept in: the note
// (also with the newline jq -r adds, or CRLF line ends), the note as a
// JSON string, a line of the checkpoints file, a copy of the whole file
// (its newest note), also one copied while a line was appended. Each finds
// the rollback; anything else is an error that says which forms are taken.
func TestTrustedCheckpointForms(t *testing.T) {
	f := newSigned(t)
	f.session(t, 20, rotate.Options{}, 5)
	old := filepath.Join(t.TempDir(), "old")
	copyDir(t, f.dir, old)
	f.session(t, 20, rotate.Options{}, 5)
	file, err := os.ReadFile(filepath.Join(f.dir, CheckpointsFileName("")))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(file), "\n")
	lines = lines[:len(lines)-1] // each with its newline
	newest := lastNote(t, f.dir)
	str, _ := json.Marshal(string(newest))
	forms := map[string]string{
		"note":                 string(newest),
		"note, jq -r":          string(newest) + "\n",
		"note, CRLF":           strings.ReplaceAll(string(newest), "\n", "\r\n"),
		"JSON string":          string(str) + "\n",
		"line":                 lines[len(lines)-1],
		"line without newline": strings.TrimSuffix(lines[len(lines)-1], "\n"),
		"whole file":           string(file),
		"whole file, torn":     string(file) + lines[0][:30],
		"whole file, reversed": strings.Join(reverse(lines), ""),
	}
	for name, form := range forms {
		if rep := f.verify(t, []byte(form)); !rep.Intact || rep.AnchoredSeq != rep.LastSeq {
			t.Errorf("%s: the current directory does not verify:\n%s", name, reportText(rep))
		}
	}
	if err := os.RemoveAll(f.dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, old, f.dir)
	for name, form := range forms {
		if rep := f.verify(t, []byte(form)); rep.Intact || !hasClass(rep, Rollback) {
			t.Errorf("%s: the rolled-back directory is not ROLLBACK:\n%s", name, reportText(rep))
		}
	}

	for name, form := range map[string]string{
		"empty":         "\n",
		"text":          "hello\n",
		"note body":     string(newest[:strings.Index(string(newest), "\n\n")+1]),
		"broken line":   `{"seq":5,"epoch":0,"note":"x` + "\n",
		"torn line":     lines[0][:30],
		"bad JSON text": `"unterminated`,
	} {
		_, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: f.verifier, Trusted: []byte(form)})
		if !errors.Is(err, ErrTrustedCheckpoint) || !strings.Contains(err.Error(), "give the signed note (the \"note\" member of a line of audit.checkpoints: jq -r .note), a line of audit.checkpoints (tail -n 1), or a copy of the whole file") {
			t.Errorf("%s: error %v: want ErrTrustedCheckpoint, saying which forms are taken", name, err)
		}
	}

	// Signed by another key: the error names both keys.
	_, other := testSigner(t, "other-signer")
	_, err = Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: other, Trusted: file})
	if want := "it is signed by " + keyName(f.verifier) + ", not by the checkpoint key given (" + keyName(other) + ")"; !errors.Is(err, ErrTrustedCheckpoint) || !strings.Contains(err.Error(), want) {
		t.Errorf("other signer: error %v: want %q", err, want)
	}
	_, err = Verify(f.dir, VerifyOptions{Key: f.k0, Trusted: file})
	if !errors.Is(err, ErrTrustedCheckpoint) || !strings.Contains(err.Error(), "needs the checkpoint key") {
		t.Errorf("no checkpoint key: error %v", err)
	}
}

func reverse(s []string) []string {
	r := make([]string, len(s))
	for i, x := range s {
		r[len(s)-1-i] = x
	}
	return r
}
