package handler

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// A key file in a directory others may write is refused by New, and
// accepted with AllowSharedKeyDir (passed on to chain.Open); the audit
// directory's counterpart is Rotate.AllowSharedDir.
func TestNewSharedKeyDir(t *testing.T) {
	keyDir := t.TempDir()
	keyFile := filepath.Join(keyDir, "audit.key")
	if err := chain.WriteKeyFile(keyFile, chain.GenerateKey()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyDir, 0o777); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "audit")
	_, err := New(Options{Dir: dir, KeyFile: keyFile, App: slog.DiscardHandler})
	if !errors.Is(err, rotate.ErrUnsafeDir) {
		t.Fatalf("New with a key file in a 0777 directory: %v, want rotate.ErrUnsafeDir", err)
	}
	h, err := New(Options{Dir: dir, KeyFile: keyFile, AllowSharedKeyDir: true, App: slog.DiscardHandler})
	if err != nil {
		t.Fatalf("AllowSharedKeyDir: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}
