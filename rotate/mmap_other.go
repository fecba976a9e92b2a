//go:build !linux

package rotate

import "os"

// Memory-mapped appends need fallocate(2) (without it a full disk is a
// SIGBUS, not an error); elsewhere files are written with write(2).
const mmapSupported = false

func newMappedFile(f *os.File, _ int64, _ func()) File { return f }

func newPreallocFile(f *os.File, _, _ int64, _ func()) File { return f }
