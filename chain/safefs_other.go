//go:build !unix

package chain

import "io/fs"

// No O_NOFOLLOW or O_NONBLOCK here: files are created with O_EXCL all the
// same.
const (
	oNoFollow = 0
	oNonblock = 0
)

// fileOwner reports no owner: files have no Unix owner here.
func fileOwner(fs.FileInfo) (uid, euid int, ok bool) { return 0, 0, false }
