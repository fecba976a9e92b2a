//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package otelbridge

import (
	"os"
	"syscall"
	"testing"
)

// lockLikeWriter takes the exclusive lock a live rotate.Writer holds on the
// file it writes (as another process would), until release is called or
// the test ends.
func lockLikeWriter(t *testing.T, path string) (release func()) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	release = func() { f.Close() }
	t.Cleanup(release)
	return release
}
