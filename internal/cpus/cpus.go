// Package cpus counts the processor cores this process may use, for the
// default number of ONNX Runtime intra-op threads.
//
// ONNX Runtime's own default is the number of physical cores, but where it
// cannot read the processor topology (common in virtual machines) it falls
// back to half the logical processors, which on a two-core machine without
// SMT means one thread. strata decides the count itself, as llama.cpp does.
package cpus

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Physical returns the number of physical cores among the processors this
// process may run on (SMT siblings count once), at most GOMAXPROCS (which
// follows a container's CPU limit) and at least 1. Where the topology
// cannot be read it returns GOMAXPROCS.
func Physical() int {
	limit := runtime.GOMAXPROCS(0)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return limit
	}
	n := physicalCores(allowedCPUs(string(status)), "/sys/devices/system/cpu")
	if n < 1 {
		return limit
	}
	return min(n, limit)
}

// allowedCPUs parses the Cpus_allowed_list line of /proc/self/status
// ("0-3,8,10-11") into CPU numbers; nil when absent or malformed.
func allowedCPUs(status string) []int {
	for _, line := range strings.Split(status, "\n") {
		list, ok := strings.CutPrefix(line, "Cpus_allowed_list:")
		if !ok {
			continue
		}
		var cpus []int
		for _, part := range strings.Split(strings.TrimSpace(list), ",") {
			lo, hi, isRange := strings.Cut(part, "-")
			a, err := strconv.Atoi(lo)
			if err != nil {
				return nil
			}
			b := a
			if isRange {
				if b, err = strconv.Atoi(hi); err != nil || b < a {
					return nil
				}
			}
			for c := a; c <= b; c++ {
				cpus = append(cpus, c)
			}
		}
		return cpus
	}
	return nil
}

// physicalCores counts the distinct (package, core) pairs of cpus in the
// sysfs tree at root; 0 when any of them cannot be read.
func physicalCores(cpus []int, root string) int {
	cores := map[[2]string]bool{}
	for _, c := range cpus {
		dir := filepath.Join(root, "cpu"+strconv.Itoa(c), "topology")
		pkg, err1 := os.ReadFile(filepath.Join(dir, "physical_package_id"))
		core, err2 := os.ReadFile(filepath.Join(dir, "core_id"))
		if err1 != nil || err2 != nil {
			return 0
		}
		cores[[2]string{strings.TrimSpace(string(pkg)), strings.TrimSpace(string(core))}] = true
	}
	return len(cores)
}
