//go:build unix

package rotate

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
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
	w := fi.Mode().Perm() & 0o022
	if w&0o020 != 0 && privateGroup(st.Gid) {
		w &^= 0o020 // the group is the user alone
	}
	if w != 0 {
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

// privateGroup reports whether gid is the process's user private group:
// its effective group, named as its user is (the convention of most Linux
// distributions, under which a umask of 002 makes every directory group
// writable). Members of that group are the user alone, so group write
// gives no one else a way in. A group whose name cannot be looked up is
// not taken for private.
func privateGroup(gid uint32) bool {
	if int64(gid) != int64(os.Getegid()) {
		return false
	}
	u, err := user.LookupId(strconv.Itoa(os.Geteuid()))
	if err != nil {
		return false
	}
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10))
	return err == nil && g.Name == u.Username
}
