package handler

import (
	"syscall"
	"time"
	"unsafe"
)

// bootClock reads CLOCK_BOOTTIME: the monotonic clock plus the time the
// host was suspended (which CLOCK_MONOTONIC, time.Now's, leaves out).
func bootClock() (time.Duration, bool) {
	const clockBoottime = 7
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockBoottime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// timeSync returns the kernel's view of the clock's synchronization
// (adjtimex with no modes set: a read, which needs no privilege): whether
// an NTP client keeps it synchronized, and its estimated maximum error.
func timeSync() (synced bool, maxError time.Duration, ok bool) {
	const (
		staUnsync = 0x0040 // STA_UNSYNC
		timeError = 5      // TIME_ERROR: the clock is not synchronized
	)
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx)
	if err != nil {
		return false, 0, false
	}
	synced = state != timeError && tx.Status&staUnsync == 0
	return synced, time.Duration(tx.Maxerror) * time.Microsecond, true
}
