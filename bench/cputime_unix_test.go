//go:build unix

package bench

import (
	"syscall"
	"time"
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
