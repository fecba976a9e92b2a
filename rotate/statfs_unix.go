//go:build linux || darwin || freebsd || dragonfly || openbsd

package rotate

import "syscall"

const spaceSupported = true

// statfsOf fills st for the file system holding dir, again when a signal
// interrupts the call.
func statfsOf(dir string, st *syscall.Statfs_t) error {
	for {
		if err := syscall.Statfs(dir, st); err != syscall.EINTR {
			return err
		}
	}
}
