package otelbridge

// Regression tests of the second review of the OTLP leg (review-bridge2).

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyDir copies the regular files of src into a new temporary directory:
// the state a crash of the process that writes src leaves (no close
// record in the newest file, no successor).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// crashedDir returns a directory holding what a handler that wrote n
// records and then crashed (no Close) leaves.
func crashedDir(t *testing.T, n int) string {
	t.Helper()
	live := t.TempDir()
	h := newTestHandler(t, live)
	writeRecords(t, h, n, "before-crash")
	dir := copyDir(t, live) // the handler is still open: a crash image
	h.Close()
	return dir
}

// Review 2, finding 4. As TestCorruptGzipSkippedNotWedged, but the damage is at the start
// of the compressed file (its first deflate block), where firstSeq reads:
// locate's error is not an unreadableError, so build retried it for ever
// and nothing after the damaged file was exported. Now locate and firstSeq
// return an unreadableError, which build passes over (reported, skipped).
func TestGzipDamagedAtStartNotWedged(t *testing.T) {
	for _, dmg := range []struct {
		name     string
		from, to int
	}{
		{"first block", 12, 76}, // firstSeq's read fails
		{"header", 0, 4},        // gzip.NewReader fails
	} {
		t.Run(dmg.name, func(t *testing.T) {
			r := newReceiver(t)
			dir := t.TempDir()
			h := newTestHandler(t, dir)
			writeRecords(t, h, 3000, "x")
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			files := fileListing(t, dir)
			if len(files) < 3 || !strings.HasSuffix(files[0], ".gz") {
				t.Fatalf("want >= 3 files, the first compressed: %v", files)
			}
			var want []uint64
			for _, f := range files[1:] {
				want = append(want, seqsOf(fileLinesOf(t, f))...)
			}
			data, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			for i := dmg.from; i < dmg.to; i++ {
				data[i] ^= 0x5a
			}
			if err := os.WriteFile(files[0], data, 0o600); err != nil {
				t.Fatal(err)
			}
			b := newTestBridge(t, dir, r.endpoint())
			err = shutdown(t, b, 5*time.Second)
			st := b.Stats()
			if miss := r.missing(want); len(miss) != 0 {
				t.Errorf("%d of the %d records in the intact files never exported (Shutdown: %v; %+v)", len(miss), len(want), err, st)
			}
			if st.Skipped == 0 {
				t.Errorf("the damaged file's records are not counted as skipped: %+v", st)
			}
		})
	}
}
