package engine

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Schedule is the fixed set of layers every generated token runs through,
// in ascending order (docs/design.md, "The schedule"). The prompt always runs all layers.
type Schedule struct {
	// Name is the rule that produced it: uls, balanced, top, bottom or layers.
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

// MinKeptLayers is the fewest layers a decode schedule may keep, whether it
// comes from a ratio or an explicit list (a model with fewer layers keeps
// them all): the paper's rule always keeps the first and the last layer.
const MinKeptLayers = 2

// ErrNoRatio is returned by ParseSchedule for a rule name given without a
// speedup ratio: running it at full depth would silently be another schedule
// than the one asked for.
var ErrNoRatio = errors.New("names no speedup ratio")

// IsRule reports whether spec is a ratio rule (uls, balanced, top, bottom)
// given without a ratio, e.g. "top" but not "top:2" or "layers:0,3".
func IsRule(spec string) bool {
	switch spec {
	case "uls", "balanced", "top", "bottom":
		return true
	}
	return false
}

// ValidRatio reports whether r can be a speedup ratio: a finite number of
// at least 1. It is the one check of a ratio's value.
func ValidRatio(r float64) bool { return r >= 1 && !math.IsInf(r, 0) }

// DefaultRatio returns the speedup ratio of a package's default schedule
// spec ("uls:2" gives 2), or 0 when the spec carries none.
func DefaultRatio(spec string) float64 {
	name, arg, ok := strings.Cut(spec, ":")
	if !ok || name == "layers" {
		return 0
	}
	r, err := strconv.ParseFloat(arg, 64)
	if err != nil || !ValidRatio(r) {
		return 0
	}
	return r
}

// ruleRatio returns the ratio a spec and speedup run at on a package whose
// fine-tuned default schedule is defaultSpec (uls.default_schedule): speedup
// itself, unless spec is a bare rule name (IsRule) and speedup is 0; then
// the default's ratio, or an error wrapping ErrNoRatio when it has none.
func ruleRatio(spec string, speedup float64, defaultSpec string) (float64, error) {
	if speedup != 0 || !IsRule(spec) {
		return speedup, nil
	}
	if r := DefaultRatio(defaultSpec); r > 0 {
		return r, nil
	}
	return 0, fmt.Errorf("schedule %q %w and the package has no fine-tuned default ratio (uls.default_schedule in manifest.json): give one, e.g. %s:2", spec, ErrNoRatio, spec)
}

// ParseSchedule builds the schedule for numLayers layers. spec is a rule
// name ("uls", "balanced", "top", "bottom") with its ratio ("uls:2"), or an
// explicit list ("layers:0,3,7"). speedup, when > 0, sets or overrides the
// ratio given in spec. An empty spec is uls; an empty spec without a
// speedup keeps every layer (full depth, nothing was asked for). A rule name
// without any ratio is refused with ErrNoRatio rather than run at full
// depth. speedup must be 0 or a finite number ≥ 1.
func ParseSchedule(spec string, speedup float64, numLayers int) (Schedule, error) {
	if numLayers < 1 {
		return Schedule{}, fmt.Errorf("schedule: model has %d layers", numLayers)
	}
	if speedup != 0 && !ValidRatio(speedup) {
		return Schedule{}, fmt.Errorf("speedup %g: must be at least 1", speedup)
	}
	asked := spec != ""
	if spec == "" {
		spec = "uls"
	}
	name, arg, hasArg := strings.Cut(spec, ":")
	if name == "layers" {
		if speedup > 0 && speedup != 1 {
			return Schedule{}, fmt.Errorf("schedule %q: an explicit layer list cannot be combined with a speedup ratio", spec)
		}
		layers, err := parseLayerList(arg, numLayers)
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: %w", spec, err)
		}
		if need := min(MinKeptLayers, numLayers); len(layers) < need {
			return Schedule{}, fmt.Errorf("schedule %q keeps %d of %d layers; at least %d must remain", spec, len(layers), numLayers, need)
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
	} else if asked && !hasArg && IsRule(name) {
		return Schedule{}, fmt.Errorf("schedule %q %w (give one, e.g. %s:2)", spec, ErrNoRatio, name)
	}
	if !ValidRatio(ratio) {
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
		if need := min(MinKeptLayers, numLayers); n < need {
			return Schedule{}, fmt.Errorf("speedup %g leaves %d of %d layers; at least %d must remain", ratio, n, numLayers, need)
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
	return max(MinKeptLayers, int(math.Round(float64(numLayers)/ratio)))
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

// allLayers lists the layers 0..n−1, in order.
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
