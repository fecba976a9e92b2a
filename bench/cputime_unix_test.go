//go:build unix

package bench

import (
	"syscall"
	"time"
	"unsafe"
)

// cpuTime is the CPU time (user+system, all threads) the process has used.
// On a shared machine it varies far less than wall time with the load of
// other tenants, so the benchmarks report it per op as cpu-ns/op.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// threadCPUTime is the CPU time of the calling OS thread: with the
// goroutine locked to its thread, what the caller itself spent, without the
// work of background goroutines (an exporter, a page-fault helper).
func threadCPUTime() (time.Duration, bool) {
	var ts syscall.Timespec
	// CLOCK_THREAD_CPUTIME_ID is 3 on Linux and the BSDs.
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
