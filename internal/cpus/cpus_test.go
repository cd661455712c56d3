package cpus

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
)

func TestAllowedCPUs(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   []int
	}{
		{"Name:\tx\nCpus_allowed_list:\t0-3,8,10-11\n", []int{0, 1, 2, 3, 8, 10, 11}},
		{"Cpus_allowed_list:\t5\n", []int{5}},
		{"Cpus_allowed_list:\t3-1\n", nil},
		{"Cpus_allowed_list:\tx\n", nil},
		{"Name:\tx\n", nil},
	} {
		if got := allowedCPUs(tc.status); !slices.Equal(got, tc.want) {
			t.Errorf("allowedCPUs(%q) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

// TestPhysicalCores: SMT siblings (same package and core id) count once,
// and an unreadable topology gives 0.
func TestPhysicalCores(t *testing.T) {
	root := t.TempDir()
	// cpu0/cpu1 are siblings on core 0, cpu2 is core 1, cpu3 is core 0 of package 1.
	for cpu, pc := range [][2]int{{0, 0}, {0, 0}, {0, 1}, {1, 0}} {
		dir := filepath.Join(root, "cpu"+strconv.Itoa(cpu), "topology")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "physical_package_id"), []byte(strconv.Itoa(pc[0])+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "core_id"), []byte(strconv.Itoa(pc[1])+"\n"), 0o644)
	}
	for _, tc := range []struct {
		cpus []int
		want int
	}{
		{[]int{0, 1, 2, 3}, 3},
		{[]int{0, 1}, 1},
		{[]int{1, 2}, 2},
		{[]int{0, 9}, 0},
		{nil, 0},
	} {
		if got := physicalCores(tc.cpus, root); got != tc.want {
			t.Errorf("physicalCores(%v) = %d, want %d", tc.cpus, got, tc.want)
		}
	}
}

func TestPhysicalBounds(t *testing.T) {
	if n := Physical(); n < 1 || n > runtime.GOMAXPROCS(0) {
		t.Errorf("Physical() = %d, want 1..%d", n, runtime.GOMAXPROCS(0))
	}
}
