package bench

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/strata-llm/strata/engine"
)

// CalibrationFile is the calibration's file name inside a package.
const CalibrationFile = "calibration.json"

// ErrNoCalibration means the package has not been calibrated.
var ErrNoCalibration = errors.New("the package has no calibration")

// Calibration is measured throughput of a package on one machine, per
// ratio and batch size: what a deadline needs to pick a speed. ULS makes
// this work: a ratio's layers are fixed, so its speed does not depend on
// the input.
type Calibration struct {
	Device  string             `json:"device"`
	Threads int                `json:"threads"`
	Points  []CalibrationPoint `json:"points"`
}

// CalibrationPoint is one measured ratio × batch.
type CalibrationPoint struct {
	Ratio      float64 `json:"ratio"`
	Batch      int     `json:"batch"`
	PrefillTPS float64 `json:"prefill_tps"`
	// DecodeTPS is the batch's decode tokens per second, all rows together.
	DecodeTPS float64 `json:"decode_tps"`
}

// CalibrationFromReport keeps the plain (not lossless) rows of a bench run.
func CalibrationFromReport(rep *Report) Calibration {
	c := Calibration{Device: orDefault(rep.Options.Device, "cpu"), Threads: rep.Options.Threads}
	for _, r := range plainRows(rep.Rows) {
		c.Points = append(c.Points, CalibrationPoint{Ratio: r.Ratio, Batch: r.Batch, PrefillTPS: r.PrefillTPS, DecodeTPS: r.DecodeTPS})
	}
	return c
}

// Save writes the calibration into the package directory.
func (c Calibration) Save(pkg string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	// Written aside and renamed: a reader never sees half a file.
	path := filepath.Join(pkg, CalibrationFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// MinCalibratedTPS is the smallest throughput a calibration may record:
// below it an estimate of a job's time overflows or means nothing.
const MinCalibratedTPS = 1e-3

// LoadCalibration reads a package's calibration and checks its points
// against the package's num_layers: every ratio must leave layers to run
// (engine.ParseSchedule) and every rate must be a finite number of at least
// MinCalibratedTPS. Errors name the file.
func LoadCalibration(pkg string, numLayers int) (Calibration, error) {
	var c Calibration
	path := filepath.Join(pkg, CalibrationFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, ErrNoCalibration
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if len(c.Points) == 0 {
		return c, fmt.Errorf("%s: no points", path)
	}
	rate := func(v float64) bool { return v >= MinCalibratedTPS && !math.IsInf(v, 0) }
	for _, p := range c.Points {
		if !(p.Ratio >= 1) || math.IsInf(p.Ratio, 0) || p.Batch < 1 || !rate(p.PrefillTPS) || !rate(p.DecodeTPS) {
			return c, fmt.Errorf("%s: invalid point %+v (want ratio ≥ 1, batch ≥ 1, rates of at least %g tokens/s)", path, p, MinCalibratedTPS)
		}
		if _, err := engine.ParseSchedule("uls", p.Ratio, numLayers); err != nil {
			return c, fmt.Errorf("%s: ratio %g cannot run on this package: %w", path, p.Ratio, err)
		}
	}
	return c, nil
}

// Job is what a batch job will generate: its prompt tokens and, at most,
// its new tokens.
type Job struct {
	PromptTokens, NewTokens int
}

// Estimate is the predicted time of a job at one ratio.
type Estimate struct {
	Ratio    float64
	Duration time.Duration
}

// Estimates predicts the job's time at every calibrated ratio for the
// batch size, using the calibrated batch size nearest to it (not above it
// when there is one).
func (c Calibration) Estimates(job Job, batch int) []Estimate {
	byRatio := map[float64]CalibrationPoint{}
	for _, p := range c.Points {
		best, ok := byRatio[p.Ratio]
		if !ok || closer(p.Batch, best.Batch, batch) {
			byRatio[p.Ratio] = p
		}
	}
	var out []Estimate
	for r, p := range byRatio {
		sec := float64(job.PromptTokens)/p.PrefillTPS + float64(job.NewTokens)/p.DecodeTPS
		d := time.Duration(math.MaxInt64) // longer than a Duration holds
		if ns := sec * float64(time.Second); ns < float64(math.MaxInt64) {
			d = time.Duration(ns)
		}
		out = append(out, Estimate{Ratio: r, Duration: d})
	}
	slices.SortFunc(out, func(a, b Estimate) int { return cmp.Compare(a.Ratio, b.Ratio) })
	return out
}

// closer reports whether batch a is a better stand-in for want than b.
func closer(a, b, want int) bool {
	under := func(x int) bool { return x <= want }
	if under(a) != under(b) {
		return under(a)
	}
	da, db := a-want, b-want
	if da < 0 {
		da = -da
	}
	if db < 0 {
		db = -db
	}
	return da < db
}

// PickSpeedup chooses the smallest ratio whose estimate meets the deadline
// (full depth when it fits). When none does, it returns the fastest ratio
// and fits = false.
func (c Calibration) PickSpeedup(job Job, batch int, deadline time.Duration) (pick Estimate, all []Estimate, fits bool) {
	all = c.Estimates(job, batch)
	fastest := all[0]
	for _, e := range all {
		if e.Duration <= deadline {
			return e, all, true
		}
		if e.Duration < fastest.Duration {
			fastest = e
		}
	}
	return fastest, all, false
}
