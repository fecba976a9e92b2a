//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package rotate

import (
	"errors"
	"os"
)

const lockSupported = false

func lockFile(string) (*os.File, error) { return nil, errors.ErrUnsupported }

// FileLocked reports whether a Writer holds the file at path open for
// writing. File locks are not supported on this platform: ok is always
// false.
func FileLocked(string) (locked, ok bool) { return false, false }
