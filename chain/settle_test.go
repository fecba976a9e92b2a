package chain

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/rotate"
)

// Retention can remove a file before the end of its last epoch is settled
// (synced, noted): under load the note-signing goroutine runs late. The
// pruned record accounts for the file; settling must go on without it,
// not fail (and retry, and fail) on the file that is gone.
func TestSettleAfterRetentionRemovedTheFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	signer, _ := testSigner(t, "settle")
	var mu sync.Mutex
	var errs []error
	onError := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	w, err := Open(Options{
		Key:         testKey,
		Rotate:      rotate.Options{Dir: dir, Now: fakeClock(), MaxBackups: 1, OnError: onError},
		Checkpoints: CheckpointOptions{Signer: signer, Origin: "test", OnError: onError},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The goroutine that settles epoch ends is held up, as a busy machine
	// holds it.
	w.settleMu.Lock()
	first := ""
	for i := range 3 {
		if err := w.Append(fmt.Appendf(nil, `"msg":"record %d"`, i), nil); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = w.w.Path()
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	// Retention (background) removes the first file.
	deadline := time.Now().Add(10 * time.Second)
	for !gone(first) {
		if time.Now().After(deadline) {
			t.Fatalf("retention did not remove %s", first)
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.settleMu.Unlock()
	if err := w.Checkpoint(); err != nil {
		t.Errorf("Checkpoint: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(dir, VerifyOptions{Key: testKey}); err != nil || !rep.Intact {
		t.Errorf("verify: %v %+v", err, rep.Problems())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Errorf("OnError: %v", err)
	}
}

func gone(path string) bool {
	_, err1 := os.Lstat(path)
	_, err2 := os.Lstat(path + ".gz")
	return os.IsNotExist(err1) && os.IsNotExist(err2)
}
