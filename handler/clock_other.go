//go:build !linux

package handler

import "time"

// timeSync is not known here (see clock_linux.go).
func timeSync() (synced bool, maxError time.Duration, ok bool) { return false, 0, false }

// bootClock is not known here: a suspended host shows as a forward step.
func bootClock() (time.Duration, bool) { return 0, false }
