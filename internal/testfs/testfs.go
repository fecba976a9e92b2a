// Package testfs copies audit directories for slogaudit's tests: the state
// a crash leaves, a copy to tamper with, an older copy to roll back to.
package testfs

import (
	"os"
	"path/filepath"
	"testing"
)

// CopyFiles copies the regular files of from into to, which it creates
// (0700) if missing, with the content of each file named in replace taken
// from there instead.
func CopyFiles(t testing.TB, from, to string, replace map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, ok := replace[e.Name()]
		if !ok {
			if b, err = os.ReadFile(filepath.Join(from, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
