package main

import (
	"fmt"
	"math"
	"runtime"

	"github.com/urfave/cli/v2"
)

// maxThreadsCap is the most ONNX Runtime threads per session strata asks
// for on any machine; below it the limit is maxThreadsPerCPU × the CPU count.
// More threads than that only oversubscribe the cores, and an absurd count
// makes ORT spend minutes creating threads.
const (
	maxThreadsCap    = 1024
	maxThreadsPerCPU = 4
)

// maxThreads is the largest --threads this machine accepts.
func maxThreads() int { return min(maxThreadsCap, maxThreadsPerCPU*runtime.NumCPU()) }

// threadsFlag is --threads, shared by every command that opens ORT sessions.
func threadsFlag() cli.Flag {
	return &cli.IntFlag{Name: "threads", Usage: fmt.Sprintf("ONNX Runtime intra-op threads (0: one per physical core on the CPU, ORT's default on a GPU; at most %d × the CPU count, and %d)", maxThreadsPerCPU, maxThreadsCap)}
}

// checkThreads validates --threads.
func checkThreads(c *cli.Context) error {
	if n := c.Int("threads"); n < 0 || n > maxThreads() {
		return fmt.Errorf("--threads %d is out of range (0, or 1 to %d × the CPU count and at most %d)", n, maxThreadsPerCPU, maxThreadsCap)
	}
	return nil
}

// checkRatio validates a speedup ratio given on the command line: a finite
// number ≥ 1.
func checkRatio(flag string, r float64) error {
	if !(r >= 1) || math.IsInf(r, 0) {
		return fmt.Errorf("%s %g: must be a number of at least 1", flag, r)
	}
	return nil
}
