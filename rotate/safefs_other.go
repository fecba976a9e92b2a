//go:build !unix

package rotate

import "io/fs"

// No O_NOFOLLOW or O_NONBLOCK here (see safefs_unix.go): files are
// created with O_EXCL all the same.
const (
	oNoFollow = 0
	oNonblock = 0
)

// checkDirOwner checks nothing: files have no Unix owner and mode bits
// here.
func checkDirOwner(string, fs.FileInfo) error { return nil }

// checkParents checks nothing, for the same reason.
func checkParents(string) error { return nil }
