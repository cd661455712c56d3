package engine

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
)

func seq(from, to, step int) []int {
	var s []int
	for i := from; i <= to; i += step {
		s = append(s, i)
	}
	return s
}

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		spec    string
		speedup float64
		layers  int
		want    []int
	}{
		// The paper's examples (PAPER.md).
		{"uls", 2, 32, append(seq(0, 28, 2), 31)},
		{"uls", 3, 32, append(seq(0, 24, 3), 31)},
		{"uls", 5, 40, append(seq(0, 30, 5), 39)},
		{"uls", 5, 30, []int{0, 6, 12, 18, 24, 29}},
		{"uls:2", 0, 32, append(seq(0, 28, 2), 31)},
		{"uls:2", 3, 32, append(seq(0, 24, 3), 31)}, // --speedup wins
		{"uls", 1, 4, []int{0, 1, 2, 3}},
		{"", 0, 4, []int{0, 1, 2, 3}}, // nothing asked: full depth
		{"uls:1", 0, 4, []int{0, 1, 2, 3}},
		{"layers:0", 0, 1, []int{0}}, // a one-layer model keeps its layer
		{"layers:0,3", 0, 4, []int{0, 3}},
		{"", 2, 8, []int{0, 2, 4, 7}},
		// Non-integer ratio: n = round(L/r) evenly spaced.
		{"uls", 1.5, 6, []int{0, 2, 3, 5}},
		{"balanced", 1.5, 6, []int{0, 2, 3, 5}},
		{"balanced", 2, 8, []int{0, 2, 5, 7}},
		{"top", 2, 8, []int{0, 1, 2, 3}},
		{"bottom", 2, 8, []int{4, 5, 6, 7}},
		{"layers:7,0,3", 0, 8, []int{0, 3, 7}},
	}
	for _, tc := range tests {
		got, err := ParseSchedule(tc.spec, tc.speedup, tc.layers)
		if err != nil {
			t.Errorf("ParseSchedule(%q, %g, %d): %v", tc.spec, tc.speedup, tc.layers, err)
			continue
		}
		if !reflect.DeepEqual(got.Layers, tc.want) {
			t.Errorf("ParseSchedule(%q, %g, %d) = %v, want %v", tc.spec, tc.speedup, tc.layers, got.Layers, tc.want)
		}
		again, err := ParseSchedule(got.String(), 0, tc.layers)
		if err != nil || !reflect.DeepEqual(again.Layers, got.Layers) {
			t.Errorf("round trip of %q via %q = %v, %v", tc.spec, got.String(), again.Layers, err)
		}
	}
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct {
		spec    string
		speedup float64
		layers  int
		want    string
	}{
		{"uls", 0.5, 8, "at least 1"},
		{"uls", 5, 8, "at least 2 must remain"},
		{"random", 2, 8, "unknown schedule"},
		{"layers:1,9", 0, 8, "outside"},
		{"layers:1,1", 0, 8, "twice"},
		{"layers:a", 0, 8, "not a layer index"},
		{"layers:1,2", 2, 8, "cannot be combined"},
		{"uls:x", 0, 8, "not a number"},
		// A rule without a ratio is refused rather than run at full depth.
		{"top", 0, 8, "names no speedup ratio"},
		{"uls", 0, 8, "names no speedup ratio"},
		{"balanced", 0, 8, "names no speedup ratio"},
		{"bottom", 0, 8, "names no speedup ratio"},
		{"uls", math.NaN(), 8, "at least 1"},
		{"", math.Inf(1), 8, "at least 1"},
		{"uls:NaN", 0, 8, "at least 1"},
		{"uls", -2, 8, "at least 1"},
		// One rule for the fewest kept layers: ratios and lists alike.
		{"layers:3", 0, 8, "at least 2 must remain"},
		{"top:8", 0, 8, "at least 2 must remain"},
	}
	for _, tc := range tests {
		_, err := ParseSchedule(tc.spec, tc.speedup, tc.layers)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSchedule(%q, %g, %d) error = %v, want %q", tc.spec, tc.speedup, tc.layers, err, tc.want)
		}
	}
}

func TestScheduleHelpers(t *testing.T) {
	if _, err := ParseSchedule("top", 0, 8); !errors.Is(err, ErrNoRatio) {
		t.Errorf("ParseSchedule(top, 0) error %v, want ErrNoRatio", err)
	}
	for spec, want := range map[string]bool{"top": true, "uls": true, "top:2": false, "layers:0,1": false, "": false} {
		if IsRule(spec) != want {
			t.Errorf("IsRule(%q) = %v", spec, !want)
		}
	}
	for spec, want := range map[string]float64{"uls:2": 2, "top:1.5": 1.5, "uls": 0, "layers:0,3": 0, "uls:0.5": 0, "uls:NaN": 0, "": 0} {
		if got := DefaultRatio(spec); got != want {
			t.Errorf("DefaultRatio(%q) = %g, want %g", spec, got, want)
		}
	}
}

func TestRuleRatio(t *testing.T) {
	tests := []struct {
		spec     string
		speedup  float64
		pkg      string // the package's uls.default_schedule
		want     float64
		wantNone bool // an error wrapping ErrNoRatio
	}{
		{"top", 0, "uls:2", 2, false},
		{"bottom", 0, "balanced:1.5", 1.5, false},
		{"top", 3, "uls:2", 3, false},
		{"top:4", 0, "uls:2", 0, false},
		{"layers:0,3", 0, "uls:2", 0, false},
		{"", 0, "uls:2", 0, false},
		{"top", 0, "", 0, true},
		{"uls", 0, "layers:0,3", 0, true},
	}
	for _, tc := range tests {
		got, err := ruleRatio(tc.spec, tc.speedup, tc.pkg)
		if tc.wantNone {
			if !errors.Is(err, ErrNoRatio) || !strings.Contains(err.Error(), "uls.default_schedule") {
				t.Errorf("ruleRatio(%q, %g, %q) error %v, want ErrNoRatio naming uls.default_schedule", tc.spec, tc.speedup, tc.pkg, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ruleRatio(%q, %g, %q) = %g, %v; want %g", tc.spec, tc.speedup, tc.pkg, got, err, tc.want)
		}
	}
}

// TestULSScheduleTable checks the uls rule against testdata/uls_schedules.json,
// the table the training scripts (scripts/train, model.uls_schedule) are
// tested against too, so training and decoding keep the same layers.
func TestULSScheduleTable(t *testing.T) {
	data, err := os.ReadFile("testdata/uls_schedules.json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Layers int   `json:"layers"`
		Ratio  int   `json:"ratio"`
		Kept   []int `json:"kept"`
	}
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 100 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		s, err := ParseSchedule("uls", float64(r.Ratio), r.Layers)
		switch {
		case r.Kept == nil && err == nil:
			t.Errorf("%d layers at %d×: got %v, want an error", r.Layers, r.Ratio, s.Layers)
		case r.Kept != nil && (err != nil || !reflect.DeepEqual(s.Layers, r.Kept)):
			t.Errorf("%d layers at %d×: got %v (%v), want %v", r.Layers, r.Ratio, s.Layers, err, r.Kept)
		}
	}
}
