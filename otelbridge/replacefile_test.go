package otelbridge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The cursor files are replaced through a temporary file in the audit
// directory. A symbolic link planted at the temporary file's name (a
// directory others may write; rotate.CheckDir) is not followed: its target
// keeps its bytes, and the cursor is written all the same.
func TestCursorTmpSymlinkNotFollowed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(path string) error
		want  string
	}{
		{"cursor", func(p string) error { return writeCursor(p, 7, [32]byte{1}) }, "v1 7 01"},
		{"note cursor", func(p string) error { return writeNoteCursor(p, 9, [32]byte{2}) }, "v2 9 02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "cursor")
			if err := os.Symlink(victim, path+".tmp"); err != nil {
				t.Fatal(err)
			}
			if err := tc.write(path); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(victim); string(got) != "precious" {
				t.Errorf("the link's target now holds %q", got)
			}
			if got, err := os.ReadFile(path); err != nil || !strings.HasPrefix(string(got), tc.want) {
				t.Errorf("cursor %q, %v", got, err)
			}
			if _, err := os.Lstat(path + ".tmp"); !os.IsNotExist(err) {
				t.Errorf("a temporary file is left: %v", err)
			}
		})
	}
}
