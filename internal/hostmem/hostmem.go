// Package hostmem reports how much memory the machine has free, so that
// sizes read from files and flags can be checked against what an
// allocation could honestly get before anything is allocated.
package hostmem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Available returns the kernel's estimate of memory available to new
// allocations (MemAvailable in /proc/meminfo), in bytes, or 0 when it is
// unknown (another OS, or /proc not mounted).
func Available() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return parseMeminfo(data)
}

func parseMeminfo(data []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "MemAvailable:" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil || kb < 0 {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// Check returns an error naming what when need bytes exceed the available
// memory (and nil when the available memory is unknown). need ≤ 0 means the
// size computation overflowed and is refused too.
func Check(what string, need int64) error {
	if need <= 0 {
		return fmt.Errorf("%s: the memory needed overflows", what)
	}
	avail := Available()
	if avail > 0 && need > avail {
		return fmt.Errorf("%s needs about %s of memory but %s is available", what, Bytes(need), Bytes(avail))
	}
	return nil
}

// Bytes formats a byte count for a message: "512 MiB", "3.2 GiB".
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d KiB", max(1, n>>10))
	}
}
