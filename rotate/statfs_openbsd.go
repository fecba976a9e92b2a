package rotate

import "syscall"

// diskSpace returns the bytes of the file system holding dir that are
// available to unprivileged users (f_bavail, negative once the blocks
// reserved for root are in use) and its size.
func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := statfsOf(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.F_bsize)
	return uint64(max(st.F_bavail, 0)) * bs, st.F_blocks * bs, nil
}
