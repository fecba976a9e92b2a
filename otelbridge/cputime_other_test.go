//go:build !unix

package otelbridge

import "time"

func cpuTime() (time.Duration, bool) { return 0, false }
