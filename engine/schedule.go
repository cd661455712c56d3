package engine

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Schedule is the fixed set of layers every generated token runs through,
// in ascending order (docs/design.md, "The schedule"). The prompt always runs all layers.
type Schedule struct {
	// Name is the rule that produced it: uls, balanced, top, bottom, layers or full.
	Name string
	// Speedup is the requested ratio (0 for an explicit layer list).
	Speedup float64
	// Layers are the kept layer indices, ascending.
	Layers []int
}

// Full reports whether the schedule keeps every one of numLayers layers.
func (s Schedule) Full(numLayers int) bool { return len(s.Layers) == numLayers }

// String renders the schedule as it can be given back to ParseSchedule.
func (s Schedule) String() string {
	if s.Name == "layers" {
		parts := make([]string, len(s.Layers))
		for i, l := range s.Layers {
			parts[i] = strconv.Itoa(l)
		}
		return "layers:" + strings.Join(parts, ",")
	}
	return s.Name + ":" + strconv.FormatFloat(s.Speedup, 'g', -1, 64)
}

// ScheduleNames lists the schedule rules.
var ScheduleNames = []string{"uls", "balanced", "top", "bottom", "layers:…"}

// ParseSchedule builds the schedule for numLayers layers. spec is a rule
// name ("uls", "balanced", "top", "bottom"), optionally with its ratio
// ("uls:2"), or an explicit list ("layers:0,3,7"). speedup, when > 0,
// overrides a ratio given in spec; with neither, the ratio is 1 (all layers).
func ParseSchedule(spec string, speedup float64, numLayers int) (Schedule, error) {
	if numLayers < 1 {
		return Schedule{}, fmt.Errorf("schedule: model has %d layers", numLayers)
	}
	if spec == "" {
		spec = "uls"
	}
	name, arg, hasArg := strings.Cut(spec, ":")
	if name == "layers" {
		if speedup > 0 && speedup != 1 {
			return Schedule{}, fmt.Errorf("schedule %q: an explicit layer list cannot be combined with --speedup", spec)
		}
		layers, err := parseLayerList(arg, numLayers)
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: %w", spec, err)
		}
		return Schedule{Name: "layers", Layers: layers}, nil
	}
	ratio := 1.0
	if hasArg {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: ratio %q is not a number", spec, arg)
		}
		ratio = r
	}
	if speedup > 0 {
		ratio = speedup
	}
	if math.IsNaN(ratio) || math.IsInf(ratio, 0) || ratio < 1 {
		return Schedule{}, fmt.Errorf("speedup %g: must be at least 1", ratio)
	}
	var layers []int
	switch name {
	case "uls", "balanced", "top", "bottom":
		if ratio == 1 {
			layers = allLayers(numLayers)
			break
		}
		n := keptCount(name, ratio, numLayers)
		if n < 2 {
			return Schedule{}, fmt.Errorf("speedup %g leaves %d of %d layers; at least 2 must remain", ratio, n, numLayers)
		}
		switch name {
		case "uls":
			if ratio == math.Trunc(ratio) {
				layers = ulsLayers(numLayers, int(ratio))
			} else {
				layers = balancedLayers(numLayers, n)
			}
		case "balanced":
			layers = balancedLayers(numLayers, n)
		case "top":
			layers = allLayers(n)
		case "bottom":
			layers = allLayers(n)
			for i := range layers {
				layers[i] += numLayers - n
			}
		}
	default:
		return Schedule{}, fmt.Errorf("unknown schedule %q: want one of %s", spec, strings.Join(ScheduleNames, ", "))
	}
	return Schedule{Name: name, Speedup: ratio, Layers: layers}, nil
}

// keptCount is how many layers a ratio keeps: floor(L/r) for an integer
// ratio under uls/top/bottom (the paper's rule), max(2, round(L/r)) otherwise.
func keptCount(name string, ratio float64, numLayers int) int {
	if name != "balanced" && ratio == math.Trunc(ratio) {
		return numLayers / int(ratio)
	}
	return max(2, int(math.Round(float64(numLayers)/ratio)))
}

// ulsLayers is the rule of the paper's released code: keep the first and the
// last layer, then every interval-th layer until n are kept.
func ulsLayers(numLayers, ratio int) []int {
	n := numLayers / ratio
	interval := numLayers / (n - 1)
	kept := []int{0, numLayers - 1}
	for idx := 1; idx < numLayers-1; idx++ {
		if idx%interval == 0 && len(kept) < n {
			kept = append(kept, idx)
		}
	}
	sort.Ints(kept)
	return kept
}

// balancedLayers keeps n layers at round(i·(L−1)/(n−1)).
func balancedLayers(numLayers, n int) []int {
	kept := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l := int(math.Round(float64(i) * float64(numLayers-1) / float64(n-1)))
		if len(kept) == 0 || kept[len(kept)-1] != l {
			kept = append(kept, l)
		}
	}
	return kept
}

func allLayers(n int) []int {
	l := make([]int, n)
	for i := range l {
		l[i] = i
	}
	return l
}

func parseLayerList(list string, numLayers int) ([]int, error) {
	seen := map[int]bool{}
	var layers []int
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		l, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a layer index", f)
		}
		if l < 0 || l >= numLayers {
			return nil, fmt.Errorf("layer %d is outside 0..%d", l, numLayers-1)
		}
		if seen[l] {
			return nil, fmt.Errorf("layer %d is listed twice", l)
		}
		seen[l] = true
		layers = append(layers, l)
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("no layers listed")
	}
	sort.Ints(layers)
	return layers, nil
}
