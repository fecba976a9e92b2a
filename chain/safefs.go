package chain

import (
	"fmt"
	"io/fs"
	"os"
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
		return fmt.Errorf("%s is not a regular file: it is %s", path, fileKind(fi.Mode()))
	}
	if uid, euid, ok := fileOwner(fi); owned && ok && uid != euid {
		return fmt.Errorf("%s is owned by uid %d, not by this process's user (uid %d): not writing it; chown %d %s if it is the writer's", path, uid, euid, euid, path)
	}
	return nil
}

// fileKind names the type of a file of mode m for a message: "a
// directory", "a symbolic link", and so on, as rotate's errors do
// (fs.FileMode's String shows a directory as "d---------" once its
// permission bits are masked off).
func fileKind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}
