package rotate

import "syscall"

// diskSpace returns the bytes of the file system holding dir that are
// available to unprivileged users (f_bavail, which leaves out the blocks
// reserved for root) and its size, counted in fragments as df does.
func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := statfsOf(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	return st.Bavail * bs, st.Blocks * bs, nil
}
