//go:build darwin || freebsd || dragonfly

package rotate

import "syscall"

// diskSpace returns the bytes of the file system holding dir that are
// available to unprivileged users (f_bavail, which leaves out the blocks
// reserved for root; negative on the BSDs once those are in use) and its
// size.
func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := statfsOf(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Bsize)
	return uint64(max(int64(st.Bavail), 0)) * bs, uint64(st.Blocks) * bs, nil
}
