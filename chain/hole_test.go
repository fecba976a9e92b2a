package chain

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// A power loss under SyncNone can leave a page of acknowledged records as
// zeros while later pages of the memory-mapped file made it to the disk.
// The resuming writer goes on from the last line before the zeros, and
// keeps what follows them in the file, reports the hole (OnError and
// Writer.Hole, with the seqs lost and stranded), and Verify finds the file
// MODIFIED: nothing acknowledged vanishes without a word. (It used to cut
// the file at the first zero byte, silently, and verify said INTACT.)
func TestResumeKeepsRecordsAfterAHole(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	dir, name, disk, content := powerLoss(t, key, rotate.SyncNone)
	strandedLines := bytes.Count(disk[8192:content], []byte("\n"))
	var mu sync.Mutex
	var reported []error
	w2, err := Open(Options{Key: key, Rotate: rotate.Options{Dir: dir, Sync: rotate.SyncNone, Now: fakeClock()},
		Checkpoints: CheckpointOptions{OnError: func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }}})
	if err != nil {
		t.Fatal(err)
	}
	hole := w2.Hole()
	if err := w2.Append([]byte(`"msg":"after the restart"`), nil); err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}

	// Which seqs: the last whole line before the zeros, the first and last
	// lines after them.
	before := bytes.Split(disk[:bytes.LastIndexByte(disk[:4096], '\n')], []byte("\n"))
	lastBefore, err := ParseLine(before[len(before)-1])
	if err != nil {
		t.Fatal(err)
	}
	after := bytes.Split(disk[bytes.IndexByte(disk[8192:], '\n')+8193:content-1], []byte("\n"))
	firstAfter, err1 := ParseLine(after[0])
	lastAfter, err2 := ParseLine(after[len(after)-1])
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	want := Hole{File: name, Offset: 4096, Data: 8192, End: int64(content), Size: int64(len(disk)), ChainSeq: lastBefore.Seq, FirstSeq: firstAfter.Seq, LastSeq: lastAfter.Seq}
	if hole == nil || *hole != want {
		t.Fatalf("Hole() = %+v, want %+v (%d stranded lines)", hole, want, strandedLines)
	}
	mu.Lock()
	msg := fmt.Sprint(reported)
	mu.Unlock()
	for _, s := range []string{"power loss", name, fmt.Sprintf("then %d bytes", content-8192), fmt.Sprintf("seq %d-%d stranded", firstAfter.Seq, lastAfter.Seq), fmt.Sprintf("goes on from seq %d", lastBefore.Seq)} {
		if !strings.Contains(msg, s) {
			t.Errorf("OnError heard %q, which does not say %q", msg, s)
		}
	}
	kept, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil || !bytes.Equal(kept, disk) {
		t.Errorf("the file with the hole changed (%d bytes, was %d): %v", len(kept), len(disk), err)
	}
	rep := verify(t, dir, key)
	if rep.Intact {
		t.Errorf("verify: INTACT with %d acknowledged lines stranded after a hole: %+v", strandedLines, rep.Problems())
	}
	assertFinds(t, rep, Modified, name, 0)
	// The chain itself goes on: the new file continues from the line
	// before the hole.
	if got := rep.Files[len(rep.Files)-1]; got.FirstSeq != lastBefore.Seq+1 {
		t.Errorf("the new file starts at seq %d, want %d", got.FirstSeq, lastBefore.Seq+1)
	}
}

// Zeros with nothing after them (space preallocated and never written, as
// after any crash) are cut without a report.
func TestResumeCutsTrailingZeros(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	dir := t.TempDir()
	w := openWriter(t, dir, key, rotate.Options{Sync: rotate.SyncNone})
	for i := range 20 {
		if err := w.Append(fmt.Appendf(nil, `"i":%d`, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	path := w.w.Path()
	disk, _ := os.ReadFile(path)
	w.Close()
	if err := os.WriteFile(path, disk, 0o600); err != nil { // as the crash left it
		t.Fatal(err)
	}
	content := bytes.IndexByte(disk, 0)
	if content < 0 {
		t.Fatal("no preallocated zeros")
	}
	var reported []error
	w2, err := Open(Options{Key: key, Rotate: rotate.Options{Dir: dir, Sync: rotate.SyncNone, Now: fakeClock()},
		Checkpoints: CheckpointOptions{OnError: func(err error) { reported = append(reported, err) }}})
	if err != nil {
		t.Fatal(err)
	}
	if h := w2.Hole(); h != nil {
		t.Errorf("Hole() = %+v for zeros at the end", h)
	}
	w2.Close()
	if fi, err := os.Stat(path); err != nil || fi.Size() != int64(content) {
		t.Errorf("not cut to its content (%d bytes): %v %v", content, fi.Size(), err)
	}
	if len(reported) != 0 {
		t.Errorf("reported %v", reported)
	}
}

// Under SyncAlways nothing after the zeros was acknowledged (a batch is,
// once its fdatasync is done): what a power loss left there belongs to a
// batch that was not. The open record names the policy, and the resuming
// writer cuts the file at the zeros, without a report.
func TestResumeCutsUnacknowledgedBatchUnderAlways(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	dir, name, disk, _ := powerLoss(t, key, rotate.SyncAlways) // as if the last batch had begun at the zeros
	if !bytes.Contains(disk, []byte(`"sync":"always"`)) {
		t.Fatalf("the open record does not name the policy: %.300s", disk)
	}
	var reported []error
	w2, err := Open(Options{Key: key, Rotate: rotate.Options{Dir: dir, Sync: rotate.SyncAlways, Now: fakeClock()},
		Checkpoints: CheckpointOptions{OnError: func(err error) { reported = append(reported, err) }}})
	if err != nil {
		t.Fatal(err)
	}
	if h := w2.Hole(); h != nil {
		t.Errorf("Hole() = %+v under always", h)
	}
	w2.Close()
	if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() != 4096 {
		t.Errorf("not cut at the zeros (offset 4096): %v %v", fi.Size(), err)
	}
	if len(reported) != 0 {
		t.Errorf("reported %v", reported)
	}
}

// powerLoss writes 200 records under policy p into a preallocated file,
// then puts in a new directory, dir, what a power loss may leave of it:
// the file, name, as the writer left it but with its second page zeros
// (never written to the disk). It returns the bytes put there, disk, and
// where its content ended before, content.
func powerLoss(t *testing.T, key []byte, p rotate.Policy) (dir, name string, disk []byte, content int) {
	t.Helper()
	w := openWriter(t, t.TempDir(), key, rotate.Options{Sync: p})
	for i := range 200 {
		if err := w.Append(fmt.Appendf(nil, `"msg":"acknowledged","i":%d`, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	path := w.w.Path()
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if content = bytes.IndexByte(disk, 0); content < 3*4096 {
		t.Fatalf("content %d bytes: too short for a hole of a page", content)
	}
	clear(disk[4096:8192])
	dir, name = t.TempDir(), filepath.Base(path)
	if err := os.WriteFile(filepath.Join(dir, name), disk, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, name, disk, content
}
