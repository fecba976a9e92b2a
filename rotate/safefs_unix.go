//go:build unix

package rotate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
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
	who := writers(fi, st)
	if who != "" {
		what = append(what, fmt.Sprintf("writable by %s (mode %04o)", who, modeOctal(fi.Mode())))
		fix = append(fix, fmt.Sprintf("chmod go-w %s (0700; 0750 lets a group read)", dir))
	}
	if what == nil {
		return nil
	}
	// A directory shared by design (/tmp) is not to be chown'ed or
	// chmod'ed: its other users need it as it is.
	sub := filepath.Join(dir, "audit")
	shared, create, sticky := "", "", false
	switch {
	case who != "" && fi.Mode()&fs.ModeSticky != 0:
		shared, create, sticky = "shared by design (sticky, as /tmp is)", "mkdir -m 0700 "+sub, true
	case systemDir(dir):
		// Not this user's, so it cannot create the subdirectory itself.
		shared, create = "a system directory", fmt.Sprintf("as root: install -d -m 0700 -o %d %s", os.Geteuid(), sub)
	}
	if shared != "" {
		return &sharedDirError{dir, sticky, fmt.Errorf("%w %s: it is %s: whoever may create entries in it can put symbolic links where files are written, and remove or replace them; it is %s, so leave its owner and mode as they are: use a subdirectory of it that only this user may write (%s)",
			ErrUnsafeDir, dir, strings.Join(what, " and "), shared, create)}
	}
	return fmt.Errorf("%w %s: it is %s: whoever may create entries in it can put symbolic links where files are written, and remove or replace them; %s",
		ErrUnsafeDir, dir, strings.Join(what, " and "), strings.Join(fix, ", then "))
}

// systemDirs are directories that other users or the system rely on as
// they are: an audit directory belongs below them, not in them.
var systemDirs = []string{
	"/", "/tmp", "/var/tmp", "/dev/shm", "/run/shm", "/run", "/run/user",
	"/var", "/var/log", "/var/lib", "/home", "/srv", "/opt",
	"/private/tmp", "/private/var/tmp", // macOS
}

// systemDir reports whether dir, or what its symbolic links lead to, is
// one of systemDirs.
func systemDir(dir string) bool {
	paths := []string{filepath.Clean(dir)}
	if abs, err := filepath.Abs(dir); err == nil {
		paths = append(paths, abs)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		paths = append(paths, real)
	}
	for _, p := range paths {
		if slices.Contains(systemDirs, p) {
			return true
		}
	}
	return false
}

// writers says who other than the owner may write the directory fi
// ("group", "others", "group and others"), or "" for no one: the user's
// private group is the user alone.
func writers(fi fs.FileInfo, st *syscall.Stat_t) string {
	w := fi.Mode().Perm() & 0o022
	if w&0o020 != 0 && privateGroup(st.Gid) {
		w &^= 0o020
	}
	switch w {
	case 0:
		return ""
	case 0o020:
		return "group"
	case 0o002:
		return "others"
	}
	return "group and others"
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

// maxLinks bounds the symbolic links checkParents follows, as the kernel
// does (Linux: 40).
const maxLinks = 40

// checkParents is CheckDir's check of the directories above dir: it
// resolves dir one name at a time, as the kernel does, and checks each
// directory a name is looked up in. Names that do not exist (yet) end the
// walk: whoever creates them creates them in a directory already checked.
func checkParents(dir string) error {
	var at string // the directory the next name is looked up in
	if filepath.IsAbs(dir) {
		at = string(filepath.Separator)
	} else {
		wd, err := os.Getwd()
		if err == nil {
			// Getwd may answer $PWD, links included; ".." is resolved by
			// the kernel from the real directory.
			wd, err = filepath.EvalSymlinks(wd)
		}
		if err != nil {
			return err
		}
		at = wd
		// The working directory's own path is looked up too.
		if err := checkParents(wd); err != nil {
			return err
		}
	}
	names := splitPath(dir)
	links := 0
	for len(names) > 0 {
		name := names[0]
		names = names[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			// at has no links in it: its parent is its lexical parent.
			at = filepath.Dir(at)
			continue
		}
		if err := checkParent(at, dir); err != nil {
			return err
		}
		next := filepath.Join(at, name)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			at = next
			continue
		}
		if links++; links > maxLinks {
			return fmt.Errorf("%s: more than %d symbolic links on the way", dir, maxLinks)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return err
		}
		if filepath.IsAbs(target) {
			at = string(filepath.Separator)
		}
		names = append(splitPath(target), names...)
	}
	return nil
}

// splitPath returns the names of path, in order.
func splitPath(path string) []string {
	return strings.Split(filepath.ToSlash(path), "/")
}

// checkParent checks one directory, at, in which a name on the way to dir
// is looked up.
func checkParent(at, dir string) error {
	fi, err := os.Stat(at)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	var what, fix []string
	if st.Uid != 0 && int64(st.Uid) != int64(os.Geteuid()) {
		what = append(what, fmt.Sprintf("owned by uid %d, neither root nor this process's user (uid %d)", st.Uid, os.Geteuid()))
		fix = append(fix, "keep the audit directory on a path of directories that root or this user owns")
	}
	// Group write is the owner's choice of whom to trust (root:syslog
	// 0775 /var/log, a Kubernetes volume's fsGroup): only write by
	// everyone else is refused.
	if fi.Mode().Perm()&0o002 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		what = append(what, fmt.Sprintf("writable by others without the sticky bit (mode %04o)", modeOctal(fi.Mode())))
		fix = append(fix, fmt.Sprintf("chmod +t %s (as /tmp is) or chmod o-w %s", at, at))
	}
	if what == nil {
		return nil
	}
	return fmt.Errorf("%w %s: %w %s on its path: it is %s: whoever may rename entries in it can put another directory in its place; %s",
		ErrUnsafeDir, dir, ErrUnsafeParent, at, strings.Join(what, " and "), strings.Join(fix, ", then "))
}
