package chain

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// An append to the checkpoints file that fails part way (a short write,
// then EFBIG here, as ENOSPC would) leaves nothing behind: the notes are
// appended whole when the disk has room again, and the trail verifies.
// RLIMIT_FSIZE limits every file of the process, also the test log that
// `go test` has the binary append to (it failed the package with "file
// too large"): the test runs in a child process of its own.
const fsizeChild = "SLOGAUDIT_FSIZE_CHILD"

func TestCheckpointsAppendFailsCleanly(t *testing.T) {
	if os.Getenv(fsizeChild) != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCheckpointsAppendFailsCleanly$", "-test.v")
		cmd.Env = append(os.Environ(), fsizeChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		if bytes.Contains(out, []byte("--- SKIP")) {
			t.Skipf("child skipped:\n%s", out)
		}
		if !bytes.Contains(out, []byte("--- PASS: TestCheckpointsAppendFailsCleanly")) {
			t.Fatalf("child did not run the test:\n%s", out)
		}
		return
	}
	dir := t.TempDir()
	signer, verifier := testSigner(t, "test-signer")
	var errs []error
	w, err := Open(Options{Key: testKey,
		Checkpoints: CheckpointOptions{Signer: signer, Every: 1, Interval: -1, OnError: func(e error) { errs = append(errs, e) }},
		Rotate:      rotate.Options{Dir: dir, Preallocate: -1}})
	if err != nil {
		t.Fatal(err)
	}
	// Enough notes that the checkpoints file outgrows a fresh audit file.
	for range 10 {
		if err := w.Append([]byte(`"msg":"x"`), nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint(); err != nil { // settles the rotation's epoch end
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, CheckpointsFileName(""))
	fi, err := os.Stat(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	audit, err := os.Stat(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	if audit.Size()+1024 > fi.Size() {
		t.Fatalf("audit file %d bytes, checkpoints file %d", audit.Size(), fi.Size())
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	// Room for the audit file to grow, and for part of a note.
	limit := uint64(fi.Size() + 100)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Skip(err)
	}
	appendErr := w.Append([]byte(`"msg":"y"`), nil)
	ckptErr := w.Checkpoint()
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if appendErr != nil || ckptErr == nil {
		t.Fatalf("under the limit: append %v, checkpoint %v (want the checkpoint to fail)", appendErr, ckptErr)
	}
	// Nothing partial is left (the writer may have retried the note
	// already, whole, once the limit was lifted).
	entries, err := ReadCheckpointsFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Err != nil {
			t.Errorf("the failed append left line %d: %v", e.Line, e.Err)
		}
	}
	if err := w.Append([]byte(`"msg":"z"`), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(dir, VerifyOptions{Key: testKey, CheckpointKey: verifier})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Intact || len(rep.Problems()) != 0 {
		t.Errorf("after a failed append to the checkpoints file: %v", rep.Problems())
	}
}
