package redact

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strconv"
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

// findReadOnly is readOnlyRange on the maps text r, for the address p.
func findReadOnly(r io.Reader, p uint64) (lo, n uintptr) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// 00400000-00a00000 r--p 00000000 08:01 1234   /path/to/exe
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 5 {
			continue
		}
		from, to, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(string(from), 16, 64)
		b, err2 := strconv.ParseUint(string(to), 16, 64)
		if err1 != nil || err2 != nil || p < a || p >= b {
			continue
		}
		perms, inode := fields[1], fields[4]
		if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || string(inode) == "0" {
			return 0, 0
		}
		return uintptr(a), uintptr(b - a)
	}
	return 0, 0
}
