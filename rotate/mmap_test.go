package rotate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The whole suite again, with every Writer that open creates appending
// through memory-mapped, preallocated files.
func TestMappedFiles(t *testing.T) {
	if !mmapSupported || os.Getenv(preallocEnv) != "" || testing.Short() {
		t.Skip("mapped files unsupported here, already mapped, or -short")
	}
	args := []string{"-test.run=^Test[^M]", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), preallocEnv+"=4096")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("suite with mapped files: %v\n%s", err, out)
	}
}

// While a mapped file is open, its preallocated rest reads as NUL bytes
// after the written ones; Close cuts it; a write after the file was cut
// under the mapping is an error, not a crash.
func TestMappedFileTail(t *testing.T) {
	if !mmapSupported {
		t.Skip("no mapped files here")
	}
	dir := t.TempDir()
	w := open(t, Options{Dir: dir, Preallocate: 1 << 16, Framer: nil})
	write(t, w, "one\n", "two\n")
	path := w.Path()
	data, _ := os.ReadFile(path)
	if len(data) != 1<<16 || !bytes.HasPrefix(data, []byte("one\ntwo\n")) || bytes.Trim(data[8:], "\x00") != nil && len(bytes.Trim(data[8:], "\x00")) != 0 {
		t.Fatalf("open mapped file: %d bytes, prefix %q", len(data), data[:min(len(data), 16)])
	}
	// Cut under the mapping: the next write faults, and must fail.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord([]byte("three\n"), nil); err == nil {
		t.Error("write to a file cut under its mapping succeeded")
	}
	closeW(t, w)
	for _, p := range ls(t, dir) {
		data, _ := os.ReadFile(filepath.Join(dir, p))
		if bytes.IndexByte(data, 0) >= 0 {
			t.Errorf("%s holds NUL bytes after Close: %q", p, data)
		}
	}
}

func ls(t *testing.T, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Undoing a write that reached into a later window leaves the file
// writable (Truncate below the mapped window remaps on the next Write).
func TestMappedTruncateBelowWindow(t *testing.T) {
	if !mmapSupported {
		t.Skip("no mapped files here")
	}
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "f"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	m := newMappedFile(f, 4096, nil)
	head := bytes.Repeat([]byte("h"), 5000)
	if _, err := m.Write(head); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write(bytes.Repeat([]byte("x"), 3*4096)); err != nil { // maps a window from the second page on
		t.Fatal(err)
	}
	if err := m.Truncate(100); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write([]byte("next\n")); err != nil {
		t.Fatalf("write after truncating below the window: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(f.Name())
	if string(data) != string(head[:100])+"next\n" {
		t.Errorf("file holds %q", data)
	}
}
