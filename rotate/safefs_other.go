//go:build !unix

package rotate

// No O_NOFOLLOW or O_NONBLOCK here (see safefs_unix.go): files are
// created with O_EXCL all the same.
const (
	oNoFollow = 0
	oNonblock = 0
)
