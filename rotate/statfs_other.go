//go:build !(linux || darwin || freebsd || dragonfly || openbsd)

package rotate

import "errors"

// No free-space checks here (Options.LowSpace): the syscall package has
// no statfs(2) on this platform.
const spaceSupported = false

func diskSpace(string) (free, total uint64, err error) { return 0, 0, errors.ErrUnsupported }
