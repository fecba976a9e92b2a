//go:build unix

package rotate

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// Flags for opening files in the directory. O_NOFOLLOW makes the open fail
// (ELOOP) when the name is a symbolic link; O_NONBLOCK keeps the open of a
// FIFO put there from blocking, and does nothing to regular files.
const (
	oNoFollow = syscall.O_NOFOLLOW
	oNonblock = syscall.O_NONBLOCK
)

// checkDirOwner is CheckDir's check of dir's owner and mode, fi.
func checkDirOwner(dir string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	var what, fix []string
	if euid := os.Geteuid(); int64(st.Uid) != int64(euid) {
		what = append(what, fmt.Sprintf("owned by uid %d, not by this process's user (uid %d)", st.Uid, euid))
		fix = append(fix, fmt.Sprintf("chown %d %s", euid, dir))
	}
	if w := fi.Mode().Perm() & 0o022; w != 0 {
		who := "group and others"
		switch w {
		case 0o020:
			who = "group"
		case 0o002:
			who = "others"
		}
		what = append(what, fmt.Sprintf("writable by %s (mode %04o)", who, modeOctal(fi.Mode())))
		fix = append(fix, fmt.Sprintf("chmod go-w %s (0700; 0750 lets a group read)", dir))
	}
	if what == nil {
		return nil
	}
	return fmt.Errorf("%w %s: it is %s: whoever may create entries in it can put symbolic links where files are written, and remove or replace them; %s",
		ErrUnsafeDir, dir, strings.Join(what, " and "), strings.Join(fix, ", then "))
}
