package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPickSpeedup(t *testing.T) {
	c := Calibration{Points: []CalibrationPoint{
		{Ratio: 1, Batch: 8, PrefillTPS: 1000, DecodeTPS: 100},
		{Ratio: 2, Batch: 8, PrefillTPS: 1000, DecodeTPS: 180},
		{Ratio: 3, Batch: 8, PrefillTPS: 1000, DecodeTPS: 250},
		{Ratio: 3, Batch: 1, PrefillTPS: 300, DecodeTPS: 40}, // not the batch used
	}}
	job := Job{PromptTokens: 10000, NewTokens: 9000} // 10 s of prefill; 90 / 50 / 36 s of decode
	for _, tc := range []struct {
		deadline time.Duration
		ratio    float64
		fits     bool
	}{
		{2 * time.Minute, 1, true},  // full depth fits: 100 s
		{70 * time.Second, 2, true}, // 60 s at ratio 2
		{50 * time.Second, 3, true}, // 46 s at ratio 3
		{10 * time.Second, 3, false},
	} {
		pick, all, fits := c.PickSpeedup(job, 8, tc.deadline)
		if pick.Ratio != tc.ratio || fits != tc.fits || len(all) != 3 {
			t.Errorf("deadline %v: picked %+v (fits %v) of %+v, want ratio %g fits %v", tc.deadline, pick, fits, all, tc.ratio, tc.fits)
		}
	}
	if pick, _, _ := c.PickSpeedup(job, 8, time.Hour); pick.Duration != 100*time.Second {
		t.Errorf("full-depth estimate %v, want 100s", pick.Duration)
	}
}

func TestCalibrationFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadCalibration(dir, 4); !errors.Is(err, ErrNoCalibration) {
		t.Errorf("no file: %v", err)
	}
	c := Calibration{Device: "cpu", Points: []CalibrationPoint{{Ratio: 1, Batch: 1, PrefillTPS: 10, DecodeTPS: 5}}}
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCalibration(dir, 4)
	if err != nil || len(got.Points) != 1 || got.Points[0] != c.Points[0] {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	os.WriteFile(filepath.Join(dir, CalibrationFile), []byte(`{"points":[{"ratio":0,"batch":1,"prefill_tps":1,"decode_tps":1}]}`), 0o644)
	if _, err := LoadCalibration(dir, 4); err == nil {
		t.Error("ratio 0 accepted")
	}
}

// TestLoadCalibrationRefuses checks that a calibration the package cannot
// use is refused at load, naming the file, rather than used.
func TestLoadCalibrationRefuses(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"ratio leaving too few layers", `{"points":[{"ratio":100,"batch":8,"prefill_tps":10,"decode_tps":10}]}`, "ratio 100 cannot run"},
		{"rate that overflows the estimate", `{"points":[{"ratio":1,"batch":8,"prefill_tps":1e-300,"decode_tps":10}]}`, "invalid point"},
		{"zero rate", `{"points":[{"ratio":2,"batch":8,"prefill_tps":10,"decode_tps":0}]}`, "invalid point"},
		{"cut short", `{"points":[{"ratio":2,`, "unexpected end of JSON input"},
		{"no points", `{"points":[]}`, "no points"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, CalibrationFile)
		os.WriteFile(path, []byte(tc.file), 0o644)
		_, err := LoadCalibration(dir, 4)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v; want an error naming %s and containing %q", tc.name, err, path, tc.want)
		}
	}
}

// TestEstimateNeverOverflows checks that a job too long for a
// time.Duration is estimated as the longest one, never as a negative time
// that would meet any deadline.
func TestEstimateNeverOverflows(t *testing.T) {
	c := Calibration{Points: []CalibrationPoint{{Ratio: 1, Batch: 8, PrefillTPS: MinCalibratedTPS, DecodeTPS: MinCalibratedTPS}}}
	pick, _, fits := c.PickSpeedup(Job{PromptTokens: 1 << 40, NewTokens: 1 << 40}, 8, time.Hour)
	if fits || pick.Duration <= 0 {
		t.Errorf("estimate %v (fits %v), want the longest duration and no fit", pick.Duration, fits)
	}
}
