package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// The roofline: a decode step on a CPU cannot be faster than reading its
// weights from memory once, so a row's decode tokens/s is compared with the
// machine's memory bandwidth divided by the weight bytes per token
// (StepBytes / batch). The bandwidth is measured by a STREAM-style triad
// (a[i] = b[i] + s·c[i] over float64 arrays far larger than the caches,
// one goroutine per core, counting 24 bytes per element: two reads and a
// write), best of a few repetitions, and cached per machine.

// triadElems is the length of each triad array: 3 × 256 MiB, well past the
// last-level caches of server CPUs (which reach hundreds of MiB).
const triadElems = 32 << 20

// Bandwidth is a measured memory bandwidth.
type Bandwidth struct {
	GBps    float64 `json:"gbps"`
	Threads int     `json:"threads"`
	CPU     string  `json:"cpu"`
	// Cached is true when the figure was read from the cache rather than
	// measured in this run.
	Cached bool `json:"-"`
}

// MeasureBandwidth runs the triad with one goroutine per core.
func MeasureBandwidth() Bandwidth {
	threads := runtime.GOMAXPROCS(0)
	a, b, c := make([]float64, triadElems), make([]float64, triadElems), make([]float64, triadElems)
	for i := range b {
		b[i], c[i] = 1, 2
	}
	best := time.Duration(1<<63 - 1)
	for rep := 0; rep < 8; rep++ {
		start := time.Now()
		var wg sync.WaitGroup
		chunk := (triadElems + threads - 1) / threads
		for t := 0; t < threads; t++ {
			lo, hi := t*chunk, min((t+1)*chunk, triadElems)
			wg.Add(1)
			go func() {
				defer wg.Done()
				triad(a[lo:hi], b[lo:hi], c[lo:hi], 3)
			}()
		}
		wg.Wait()
		best = min(best, time.Since(start))
	}
	return Bandwidth{GBps: 24 * triadElems / best.Seconds() / 1e9, Threads: threads, CPU: cpuName()}
}

func triad(a, b, c []float64, s float64) {
	for i := range a {
		a[i] = b[i] + s*c[i]
	}
}

// CachedBandwidth returns the bandwidth measured earlier on this machine
// (same CPU and core count), measuring and caching it the first time.
func CachedBandwidth() Bandwidth {
	path := bandwidthCache()
	want := Bandwidth{Threads: runtime.GOMAXPROCS(0), CPU: cpuName()}
	if data, err := os.ReadFile(path); err == nil {
		var bw Bandwidth
		if json.Unmarshal(data, &bw) == nil && bw.CPU == want.CPU && bw.Threads == want.Threads && bw.GBps > 0 {
			bw.Cached = true
			return bw
		}
	}
	return MeasureAndCacheBandwidth()
}

// MeasureAndCacheBandwidth measures the bandwidth and replaces the cached
// figure with it.
func MeasureAndCacheBandwidth() Bandwidth {
	bw := MeasureBandwidth()
	if data, err := json.Marshal(bw); err == nil {
		if path := bandwidthCache(); path != "" {
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, data, 0o644)
		}
	}
	return bw
}

// applyRoofline fills the roofline columns of the plain (not lossless)
// rows under bw, with stepBytes giving a row's weight bytes per decode
// step. A row above 100 % cannot be: the bandwidth was measured low, as
// when the machine was busy then. A cached bandwidth is then measured
// again, once, through remeasure; rows still above 100 % are flagged
// RooflineSuspect. It returns the bandwidth the rows use.
func applyRoofline(rows []Row, stepBytes func(Row) (int64, error), bw Bandwidth, remeasure func() Bandwidth) (Bandwidth, error) {
	fill := func() (over bool, err error) {
		for i := range rows {
			r := &rows[i]
			if r.Lossless {
				continue
			}
			b, err := stepBytes(*r)
			if err != nil {
				return false, err
			}
			roofline(r, b, bw)
			r.RooflineSuspect = r.RooflinePct > 100
			over = over || r.RooflineSuspect
		}
		return over, nil
	}
	over, err := fill()
	if err != nil || !over || !bw.Cached {
		return bw, err
	}
	bw = remeasure()
	_, err = fill()
	return bw, err
}

func bandwidthCache() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		var err error
		if base, err = os.UserCacheDir(); err != nil {
			return ""
		}
	}
	return filepath.Join(base, "strata", "bandwidth.json")
}

// cpuName is the CPU model from /proc/cpuinfo, or the architecture.
func cpuName() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

// roofline fills a row's weight bytes per token and its share of the
// bandwidth roofline.
func roofline(row *Row, stepBytes int64, bw Bandwidth) {
	if bw.GBps <= 0 || row.Batch < 1 {
		return
	}
	perToken := float64(stepBytes) / float64(row.Batch)
	row.WeightBytesPerToken = int64(perToken)
	row.BandwidthGBps = bw.GBps
	row.RooflinePct = 100 * row.DecodeTPS * perToken / (bw.GBps * 1e9)
}

func (b Bandwidth) String() string {
	return fmt.Sprintf("%.1f GB/s (triad, %d threads, %s)", b.GBps, b.Threads, b.CPU)
}
