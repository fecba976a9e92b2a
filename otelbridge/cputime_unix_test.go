//go:build unix

package otelbridge

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user+system, all threads) the process has used:
// on the shared 2-core machine it varies far less with other tenants' load
// than wall time, and it includes the garbage collector's work.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
