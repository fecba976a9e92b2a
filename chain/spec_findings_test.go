package chain_test

// Where the independent verifier (spec_test.go) and Verify disagreed: two
// bugs in Verify (NUL bytes followed by a line, a note's wrong digest with
// K(0)) and two classes FORMAT.md now states as Verify gives them.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// probeChain writes one file of n records (epochs of `every` lines) with a
// signer and returns the directory, K(0), the signer and the verifier.
func probeChain(t *testing.T, n, every int) (string, []byte, note.Signer, note.Verifier) {
	dir := filepath.Join(t.TempDir(), "audit")
	k0 := chain.GenerateKey()
	s, v := specSigner(t, "probe")
	specSession(t, chain.Options{Key: k0, Rotate: rotate.Options{Dir: dir, Now: specClock()}, Checkpoints: chain.CheckpointOptions{Signer: s, Every: every, Interval: -1, Origin: "probe"}}, n)
	return dir, k0, s, v
}

func probeClasses(rep *chain.Report) []chain.Class {
	var cs []chain.Class
	for _, p := range rep.Problems() {
		if !slices.Contains(cs, p.Class) {
			cs = append(cs, p.Class)
		}
	}
	return cs
}

// §5: "NUL bytes followed by anything but NUL bytes are an edit (MODIFIED)".
func TestNULThenBytesIsModified(t *testing.T) {
	dir, k0, _, v := probeChain(t, 5, -1)
	p := specPaths(t, dir)[0]
	data, _ := os.ReadFile(p)
	os.WriteFile(p, append(append(data, make([]byte, 100)...), 'x'), 0o600)
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: k0, CheckpointKey: v})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Intact || !slices.Contains(probeClasses(rep), chain.Modified) {
		t.Errorf("NUL bytes followed by 'x' at the end of a file: intact %v, classes %v; want MODIFIED", rep.Intact, probeClasses(rep))
	}
}

// §6: a note's digest is skipped only when it is zero; a signed note whose
// digest contradicts its epoch's lines does not match the chain.
func TestWrongDigestIsBadCheckpoint(t *testing.T) {
	dir, k0, s, v := probeChain(t, 12, 5)
	path := filepath.Join(dir, "audit.checkpoints")
	data, _ := os.ReadFile(path)
	ls := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	i := len(ls) - 1
	var e struct {
		Seq, Epoch uint64
		Note       string
	}
	json.Unmarshal([]byte(ls[i]), &e)
	text := e.Note[:strings.Index(e.Note, "\n\n")+1]
	text = regexp.MustCompile(`digest [^\n]*`).ReplaceAllString(text, "digest "+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)))
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(struct {
		Seq   uint64 `json:"seq"`
		Epoch uint64 `json:"epoch"`
		Note  string `json:"note"`
	}{e.Seq, e.Epoch, string(msg)})
	ls[i] = string(line)
	os.WriteFile(path, []byte(strings.Join(ls, "\n")+"\n"), 0o600)
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: k0, CheckpointKey: v})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Intact || !slices.Contains(probeClasses(rep), chain.BadCheckpoint) || slices.Contains(probeClasses(rep), chain.Modified) {
		t.Errorf("the last note's digest contradicts its epoch's lines, whose MACs check out: intact %v, classes %v; want BAD_CHECKPOINT", rep.Intact, probeClasses(rep))
	}
}

// §7: an exact duplicate within its epoch is REORDERED.
func TestExactDuplicateIsReordered(t *testing.T) {
	dir, k0, _, v := probeChain(t, 8, -1) // one epoch per file
	p := specPaths(t, dir)[0]
	specEditLines(t, p, func(ls []string) []string { return slices.Insert(ls, 5, ls[2]) })
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: k0, CheckpointKey: v})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Intact || !slices.Contains(probeClasses(rep), chain.Reordered) {
		t.Errorf("an exact duplicate of line 3 inserted after line 5 (same epoch): classes %v; want REORDERED", probeClasses(rep))
	}
}

// §7: an authentic line moved into a later epoch fails that epoch's MAC:
// DELETED where it was, INSERTED where it is.
func TestLineMovedAcrossEpoch(t *testing.T) {
	dir, k0, _, v := probeChain(t, 8, 3) // open, r, r, checkpoint | r, r, r, checkpoint | …
	p := specPaths(t, dir)[0]
	specEditLines(t, p, func(ls []string) []string {
		l := ls[2] // an audit record of epoch 0
		ls = slices.Delete(ls, 2, 3)
		return slices.Insert(ls, 4, l) // after the checkpoint: in epoch 1
	})
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: k0, CheckpointKey: v})
	if err != nil {
		t.Fatal(err)
	}
	cs := probeClasses(rep)
	if rep.Intact || !slices.Contains(cs, chain.Deleted) || !slices.Contains(cs, chain.Inserted) {
		var b strings.Builder
		for _, p := range rep.Problems() {
			fmt.Fprintf(&b, "  %s line %d seq %d: %s\n", p.Class, p.Line, p.Seq, p.Detail)
		}
		t.Errorf("an authentic line moved later across an epoch boundary: classes %v; want DELETED and INSERTED:\n%s", cs, b.String())
	}
}
