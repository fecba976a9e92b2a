//go:build unix

package rotate

import "syscall"

// Flags for opening files in the directory. O_NOFOLLOW makes the open fail
// (ELOOP) when the name is a symbolic link; O_NONBLOCK keeps the open of a
// FIFO put there from blocking, and does nothing to regular files.
const (
	oNoFollow = syscall.O_NOFOLLOW
	oNonblock = syscall.O_NONBLOCK
)
