package redact

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Verdicts on text in the executable's read-only data.
//
// Messages, attribute keys and many values (event names, outcomes, actions)
// are string literals: their bytes sit in the program's read-only data,
// where nothing can change them while the program runs (a write faults)
// and no memory is freed and reused for other text. A clean verdict on
// such a string therefore holds for as long as the program runs, and is
// kept, so that the check of a literal costs a lookup instead of a scan.
// Text anywhere else (the heap, a stack, a mapping a program can write) is
// checked every time: its bytes can change, or be freed and reused for
// other text, under the same address.
//
// The memo holds clean verdicts only: a miss means "check", never "clean".
// Each slot is one word naming a string (offset in the read-only range,
// length) and what was checked (key or text); slots are overwritten at
// will, so a lost race costs a check, not a wrong verdict.

const (
	litKey  = 0 // the key rules found no secret key
	litText = 1 // the value patterns found nothing in the text

	litBits = 9
	litMax  = 1 << 20 // longer literals are checked every time
)

type literals struct {
	lo, n uintptr // the read-only range, [lo, lo+n); n is 0 where unknown
	slots [1 << litBits]atomic.Uint64
}

// readOnly is the range of read-only data that holds the program's string
// literals, or (0, 0) where it cannot be found out (then nothing is kept).
var readOnly = sync.OnceValues(readOnlyRange)

// literalProbe is a string literal: the mapping that holds its bytes holds
// the others.
const literalProbe = "redact: literal probe"

func (l *literals) init() { l.lo, l.n = readOnly() }

// entry returns the memo entry of s checked as kind, or 0 if s is not in
// the read-only range.
func (l *literals) entry(s string, kind uint64) uint64 {
	off := uintptr(unsafe.Pointer(unsafe.StringData(s))) - l.lo
	if off >= l.n || len(s) >= litMax || uintptr(len(s)) > l.n-off {
		return 0 // not wholly in the range (the bytes after it may be writable)
	}
	return uint64(off)<<21 | uint64(len(s))<<1 | kind
}

func litSlot(e uint64) uint64 { return (e * 0x9E3779B97F4A7C15) >> (64 - litBits) }

// clean reports whether e (from entry) was found clean before.
func (l *literals) clean(e uint64) bool { return e != 0 && l.slots[litSlot(e)].Load() == e }

// keep records that e (from entry) was found clean.
func (l *literals) keep(e uint64) {
	if e != 0 {
		l.slots[litSlot(e)].Store(e)
	}
}

// findReadOnly finds, in the text r of a Linux /proc/PID/maps, the mapping
// that holds the address p, if it is a mapping of a file that cannot be
// written (readOnlyRange; a function of its own so that it can be tested
// anywhere).
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
