package redact

import (
	"os"
	"unsafe"
)

// readOnlyRange returns the mapping listed in /proc/self/maps that holds
// the bytes of literalProbe, if it is a mapping of a file that cannot be
// written: the executable's read-only data. Anything else (no /proc, an
// unexpected line, a writable or anonymous mapping) leaves the range
// unknown, and every text is checked every time.
func readOnlyRange() (lo, n uintptr) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	return findReadOnly(f, uint64(uintptr(unsafe.Pointer(unsafe.StringData(literalProbe)))))
}
