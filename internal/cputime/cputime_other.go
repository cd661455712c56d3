//go:build !unix

// Package cputime reads the process's CPU time, so that benchmarks on a
// shared machine can also report cost per CPU second, which other processes
// disturb far less than wall time.
package cputime

import "time"

// Process is not measured on this platform: it returns 0.
func Process() time.Duration { return 0 }
