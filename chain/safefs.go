package chain

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/slogaudit/slogaudit/rotate"
)

// openFile opens path, a file of the writer's in the audit or key
// directory, where whoever may create entries could have put a symbolic
// link or a FIFO (see rotate.CheckDir): it does not follow a symbolic link
// (O_NOFOLLOW, where the platform has it), nor wait for a FIFO
// (O_NONBLOCK), and returns the file only if it is a regular file and, if
// it is opened for writing, owned by the process's user. Both are checked
// on the open descriptor, so the file checked is the file used.
//
// An error of the open itself is returned as it is (one wrapping
// fs.ErrNotExist, say), except that a symbolic link at path is named as
// such.
func openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|oNoFollow|oNonblock, perm)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s is a symbolic link, which the writer does not follow: remove it (and find out who put it there)", path)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkOwnFile(path, fi, flag&(os.O_WRONLY|os.O_RDWR) != 0)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkOwnFile returns an error unless fi, of path, is a regular file and,
// if owned is set, one of the process's user.
func checkOwnFile(path string, fi fs.FileInfo, owned bool) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file: it is %s", path, rotate.FileKind(fi.Mode()))
	}
	if uid, euid, ok := fileOwner(fi); owned && ok && uid != euid {
		return fmt.Errorf("%s is owned by uid %d, not by this process's user (uid %d): not writing it; chown %d %s if it is the writer's", path, uid, euid, euid, path)
	}
	return nil
}
