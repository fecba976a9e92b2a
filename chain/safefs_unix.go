//go:build unix

package chain

import (
	"io/fs"
	"os"
	"syscall"
)

// Flags for opening files in the audit and key directories (see openFile).
const (
	oNoFollow = syscall.O_NOFOLLOW
	oNonblock = syscall.O_NONBLOCK
)

// fileOwner returns the uid that owns fi and the process's effective uid.
func fileOwner(fi fs.FileInfo) (uid, euid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), os.Geteuid(), true
}
