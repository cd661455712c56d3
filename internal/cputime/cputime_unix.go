//go:build unix

// Package cputime reads the process's CPU time, so that benchmarks on a
// shared machine can also report cost per CPU second, which other processes
// disturb far less than wall time.
package cputime

import (
	"syscall"
	"time"
)

// Process returns the user+system CPU time of the process (0 if unknown).
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
