package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/bench"
	"github.com/strata-llm/strata/engine/requests"
)

// pickDeadline chooses the speedup that finishes reqs within deadline on
// m at the given batch size, from the package's calibration, and says on w
// which it chose and why.
func pickDeadline(w io.Writer, m *engine.Model, reqs []engine.Request, batch int, deadline time.Duration) (float64, error) {
	cal, err := bench.LoadCalibration(m.Dir(), m.Manifest.NumLayers)
	if errors.Is(err, bench.ErrNoCalibration) {
		return 0, fmt.Errorf("--deadline needs a calibration of this package on this machine: run strata bench --model %s --calibrate --ratios 1,2,3 --batch %d", m.Dir(), batch)
	}
	if err != nil {
		return 0, inputError(fmt.Errorf("--deadline: %w; measure it again with strata bench --model %s --calibrate --ratios 1,2,3 --batch %d", err, m.Dir(), batch))
	}
	var job bench.Job
	for _, r := range reqs {
		n := len(r.PromptIDs)
		if r.PromptIDs == nil && m.Tokenizer != nil {
			if err := requests.CheckPromptBytes(r.Prompt, m.Manifest.MaxSeqLen); err != nil {
				return 0, err
			}
			ids, err := m.Tokenizer.Encode(r.Prompt, true)
			if err != nil {
				return 0, err
			}
			n = len(ids)
		}
		job.PromptTokens += n
		job.NewTokens += max(r.MaxTokens, 1)
	}
	pick, all, fits := cal.PickSpeedup(job, batch, deadline)
	for _, e := range all {
		fmt.Fprintf(w, "strata: deadline %v: ratio %g would take about %v\n", deadline, e.Ratio, e.Duration.Round(time.Second))
	}
	if !fits {
		fmt.Fprintf(w, "strata: warning: no calibrated ratio meets the deadline; running at the fastest, ratio %g (about %v)\n", pick.Ratio, pick.Duration.Round(time.Second))
	} else {
		fmt.Fprintf(w, "strata: deadline %v: running at ratio %g, the smallest that fits (about %v)\n", deadline, pick.Ratio, pick.Duration.Round(time.Second))
	}
	return pick.Ratio, nil
}
