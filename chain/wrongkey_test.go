package chain

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/rotate"
)

func countClass(rep *Report, c Class) int {
	n := 0
	for _, p := range rep.Problems() {
		if p.Class == c {
			n++
		}
	}
	return n
}

// A K(0) that is not the trail's is WRONG_KEY, said once and naming the
// trail's key_id, and the report fails only for it (WrongKeyOnly): a key
// mix-up, not an incident. What else is found still counts.
func TestWrongInitialKey(t *testing.T) {
	f := newSigned(t)
	f.session(t, 20, rotate.Options{MaxBytes: 1500}, 5)
	f.session(t, 10, rotate.Options{}, 5)
	other := GenerateKey()
	rep, err := Verify(f.dir, VerifyOptions{Key: other, CheckpointKey: f.verifier})
	if err != nil {
		t.Fatal(err)
	}
	text := reportText(rep)
	trail, given := KeyID(f.k0), KeyID(other)
	if rep.Intact || !rep.WrongKeyOnly() || countClass(rep, WrongKey) != 1 || rep.TrailKeyID != trail || rep.KeyID != given ||
		countClass(rep, BadKey) != len(files(t, f.dir)) {
		t.Fatalf("wrong K(0): intact %v, wrong key only %v, trail %q, given %q:\n%s", rep.Intact, rep.WrongKeyOnly(), rep.TrailKeyID, rep.KeyID, text)
	}
	for _, want := range []string{
		"FAIL WRONG_KEY: the trail is sealed with key_id " + trail + ", the key given is key_id " + given + ": no line could be checked with it",
		"key_id " + trail + " (the trail's; the key given is key_id " + given + "): NOT VERIFIED: WRONG KEY\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the report does not say %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "TAMPERED") {
		t.Errorf("a wrong key reads as tampering:\n%s", text)
	}
	var back Report
	if b, err := json.Marshal(rep); err != nil || json.Unmarshal(b, &back) != nil || !back.WrongKeyOnly() || back.TrailKeyID != trail {
		t.Errorf("JSON: %v; round trip says wrong key only %v, trail %q", err, back.WrongKeyOnly(), back.TrailKeyID)
	}

	// The right key: no WRONG_KEY.
	if rep := f.verify(t, nil); countClass(rep, WrongKey) != 0 || rep.TrailKeyID != "" || !rep.Intact {
		t.Errorf("right keys:\n%s", reportText(rep))
	}

	// A line deleted too: that is still found and fails the report.
	fs := files(t, f.dir)
	lines := readLines(t, fs[0])
	writeLines(t, fs[0], slices.Delete(lines, 3, 4))
	rep, err = Verify(f.dir, VerifyOptions{Key: other, CheckpointKey: f.verifier})
	if err != nil {
		t.Fatal(err)
	}
	if rep.WrongKeyOnly() || !hasClass(rep, Deleted) || !hasClass(rep, WrongKey) || !strings.Contains(reportText(rep), "TAMPERED OR DAMAGED") {
		t.Errorf("wrong K(0) and a deleted line:\n%s", reportText(rep))
	}
}

// Files sealed without a key, given a key, are a downgrade (BAD_KEY), not
// a wrong key.
func TestDowngradeIsNotWrongKey(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, nil, 5, rotate.Options{})
	rep := verify(t, dir, testKey)
	if !hasClass(rep, BadKey) || hasClass(rep, WrongKey) || rep.WrongKeyOnly() {
		t.Errorf("unkeyed files verified with a key:\n%s", reportText(rep))
	}
}

// A checkpoint key that verifies no note, whose notes name another signer,
// is WRONG_KEY once, naming both keys, instead of a BAD_CHECKPOINT per note
// and an UNANCHORED window from seq 0; the notes are judged as without a
// checkpoint key, so a cut trail is still TRUNCATED. One note signed by
// another key among notes the key verifies is BAD_CHECKPOINT, as before.
func TestWrongCheckpointKey(t *testing.T) {
	f := newSigned(t)
	f.session(t, 20, rotate.Options{MaxBytes: 1500}, 5)
	f.session(t, 10, rotate.Options{}, 5)
	_, other := testSigner(t, "other-signer")
	rep, err := Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: other})
	if err != nil {
		t.Fatal(err)
	}
	text := reportText(rep)
	if rep.Intact || !rep.WrongKeyOnly() || countClass(rep, WrongKey) != 1 || hasClass(rep, BadCheckpoint) || rep.NotesSigned ||
		!slices.Equal(rep.CheckpointSigners, []string{keyName(f.verifier)}) {
		t.Fatalf("wrong checkpoint key: signers %v:\n%s", rep.CheckpointSigners, text)
	}
	for _, want := range []string{
		"FAIL WRONG_KEY: the checkpoints are signed by " + keyName(f.verifier) + ", the checkpoint key given is " + keyName(other) + ": no note verifies with it",
		"checkpoints (not checked: signed by another key than the one given)",
		": NOT VERIFIED: WRONG KEY\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the report does not say %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "no verifiable signatures") || strings.Contains(text, "notes were removed") {
		t.Errorf("the wrong key is reported note by note:\n%s", text)
	}

	// The newest file removed as well: TRUNCATED, by the notes beyond it.
	fs := files(t, f.dir)
	saved, _ := os.ReadFile(fs[len(fs)-1])
	os.Remove(fs[len(fs)-1])
	rep, err = Verify(f.dir, VerifyOptions{Key: f.k0, CheckpointKey: other})
	if err != nil {
		t.Fatal(err)
	}
	if !hasClass(rep, Truncated) || !hasClass(rep, WrongKey) || rep.WrongKeyOnly() || !strings.Contains(reportText(rep), "TAMPERED OR DAMAGED") {
		t.Errorf("wrong checkpoint key, newest file removed:\n%s", reportText(rep))
	}
	os.WriteFile(fs[len(fs)-1], saved, 0o600)

	// One note signed by another key: BAD_CHECKPOINT, not WRONG_KEY.
	s2, _ := testSigner(t, "other-signer")
	path := filepath.Join(f.dir, CheckpointsFileName(""))
	data, _ := os.ReadFile(path)
	ls := strings.SplitAfter(string(data), "\n")
	last := len(ls) - 2
	var ce checkpointEntry
	if err := json.Unmarshal([]byte(ls[last]), &ce); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCheckpoint([]byte(ce.Note), f.verifier)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Sign(&note.Note{Text: string(c.Body())}, s2)
	if err != nil {
		t.Fatal(err)
	}
	ce.Note = string(n)
	b, _ := json.Marshal(ce)
	ls[last] = string(b) + "\n"
	os.WriteFile(path, []byte(strings.Join(ls, "")), 0o600)
	rep = f.verify(t, nil)
	if !hasClass(rep, BadCheckpoint) || hasClass(rep, WrongKey) || rep.WrongKeyOnly() {
		t.Errorf("one note signed by another key:\n%s", reportText(rep))
	}
}

// A line deleted inside an epoch between two matching notes is DELETED,
// and the note of its epoch, which is there but no longer matches, is
// reported once: not also as dropped from the checkpoints file, nor as a
// wrong note "whose MACs check out". A note really dropped from the
// checkpoints file is still reported as such.
func TestDeletedLineNotAlsoDroppedNote(t *testing.T) {
	f := newSigned(t)
	f.session(t, 30, rotate.Options{}, 5)
	es, err := ReadCheckpointsFile(filepath.Join(f.dir, CheckpointsFileName("")))
	if err != nil || len(es) < 4 {
		t.Fatalf("%d notes, %v", len(es), err)
	}
	fs := files(t, f.dir)
	if len(fs) != 1 {
		t.Fatalf("%d files", len(fs))
	}
	orig := readLines(t, fs[0])
	del := es[1].Seq + 2 // inside the epoch that ends at es[2]
	writeLines(t, fs[0], slices.Delete(slices.Clone(orig), int(del-1), int(del)))
	rep := f.verify(t, nil)
	text := reportText(rep)
	if !hasClass(rep, Deleted) || strings.Contains(text, "(dropped)") || strings.Contains(text, "whose MACs check out") ||
		!strings.Contains(text, "differ from what its signed checkpoint") {
		t.Errorf("line seq %d deleted:\n%s", del, text)
	}

	// The opposite case: the lines as they were, a note dropped.
	writeLines(t, fs[0], orig)
	path := filepath.Join(f.dir, CheckpointsFileName(""))
	data, _ := os.ReadFile(path)
	ls := strings.SplitAfter(string(data), "\n")
	os.WriteFile(path, []byte(strings.Join(slices.Delete(ls, 2, 3), "")), 0o600)
	rep = f.verify(t, nil)
	if text := reportText(rep); !strings.Contains(text, droppedText(es[2].Seq)) {
		t.Errorf("note of seq %d dropped:\n%s", es[2].Seq, text)
	}
}

func droppedText(seq uint64) string {
	return "the epoch ending at seq " + strconv.FormatUint(seq, 10) + " has no note in the checkpoints file (dropped)"
}

// CheckpointSigners names what Verify names (Report.CheckpointSigners)
// without the files or K(0): the signers of notes the key does not
// verify; nothing when it verifies one, or there are no notes.
func TestCheckpointSigners(t *testing.T) {
	f := newSigned(t)
	f.session(t, 20, rotate.Options{MaxBytes: 1500}, 5)
	_, other := testSigner(t, "other-signer")
	if got, err := CheckpointSigners(f.dir, "", other); err != nil || !slices.Equal(got, []string{keyName(f.verifier)}) {
		t.Errorf("another key: %v, %v; want %s", got, err, keyName(f.verifier))
	}
	if got, err := CheckpointSigners(f.dir, "", f.verifier); err != nil || got != nil {
		t.Errorf("the signer's key: %v, %v; want nothing", got, err)
	}
	if got, err := CheckpointSigners(t.TempDir(), "", other); err != nil || got != nil {
		t.Errorf("no notes: %v, %v; want nothing", got, err)
	}
}
