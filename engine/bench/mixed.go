package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/strata-llm/strata/engine"
)

// MixedOptions configure the mixed workload: Requests requests whose
// output lengths are drawn log-uniformly from GenMin..GenMax (many short,
// few long, as a batch job's are) and prompt lengths uniformly from
// PromptMin..PromptMax, run with static and with continuous batching at
// each batch size.
type MixedOptions struct {
	Model                string
	Requests             int
	Batches              []int
	PromptMin, PromptMax int
	GenMin, GenMax       int
	Seed                 uint64
	Device               string
	Threads              int
	ORTLib               string
	// Schedule and Speedup choose the decode layers (default: the package's).
	Schedule string
	Speedup  float64
	Progress func(line string)
}

// MixedRow is one batching mode at one batch size; its JSON field names are
// part of `strata bench --workload mixed --json`.
type MixedRow struct {
	Batching string  `json:"batching"` // "static" or "continuous"
	Batch    int     `json:"batch"`
	Requests int     `json:"requests"`
	Tokens   int     `json:"tokens"`
	Seconds  float64 `json:"seconds"`
	// TotalTPS is generated tokens per second of wall time.
	TotalTPS float64 `json:"total_tps"`
	// P50Millis and P95Millis are request latencies from the job's start
	// to the request's last token.
	P50Millis float64 `json:"p50_ms"`
	P95Millis float64 `json:"p95_ms"`
	// Utilization is the share of decode-step row slots that advanced a
	// running request.
	Utilization float64 `json:"utilization"`
}

func (o *MixedOptions) normalize() error {
	if o.Model == "" {
		return errors.New("no model package given")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Requests, 64)
	def(&o.PromptMin, 16)
	def(&o.PromptMax, 512)
	def(&o.GenMin, 8)
	def(&o.GenMax, 256)
	if len(o.Batches) == 0 {
		o.Batches = []int{8, 16}
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	switch {
	case o.Requests < 1:
		return fmt.Errorf("%d requests: want at least 1", o.Requests)
	case o.PromptMin < 1 || o.PromptMax < o.PromptMin:
		return fmt.Errorf("prompt lengths %d..%d: want 1 ≤ min ≤ max", o.PromptMin, o.PromptMax)
	case o.GenMin < 2 || o.GenMax < o.GenMin:
		return fmt.Errorf("output lengths %d..%d: want 2 ≤ min ≤ max", o.GenMin, o.GenMax)
	}
	for _, b := range o.Batches {
		if b < 1 {
			return fmt.Errorf("batch size %d: must be at least 1", b)
		}
	}
	return nil
}

// mixedRequests draws the workload; prompts are shortened where prompt
// and output would not fit max_seq_len.
func mixedRequests(o MixedOptions, vocab, maxSeq int) []engine.Request {
	rng := rand.New(rand.NewPCG(o.Seed, 0x313))
	reqs := make([]engine.Request, o.Requests)
	for i := range reqs {
		gen := int(math.Round(math.Exp(math.Log(float64(o.GenMin)) + rng.Float64()*(math.Log(float64(o.GenMax))-math.Log(float64(o.GenMin))))))
		gen = min(gen, maxSeq/2)
		plen := o.PromptMin + rng.IntN(o.PromptMax-o.PromptMin+1)
		plen = max(1, min(plen, maxSeq-gen-1))
		prompt := make([]int, plen)
		for j := range prompt {
			prompt[j] = rng.IntN(vocab)
		}
		reqs[i] = engine.Request{ID: fmt.Sprint(i), PromptIDs: prompt, MaxTokens: gen, IgnoreEOS: true, Schedule: o.Schedule, Speedup: o.Speedup}
	}
	return reqs
}

// RunMixed measures the mixed workload with static and continuous batching
// at every batch size, in one run, alternating the modes.
func RunMixed(ctx context.Context, o MixedOptions) ([]MixedRow, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	var rows []MixedRow
	for _, b := range o.Batches {
		for _, static := range []bool{true, false} {
			m, err := engine.Load(o.Model, engine.Options{Device: o.Device, Threads: o.Threads, ORTLib: o.ORTLib,
				MaxBatch: b, StaticBatching: static, NoTokenizer: true})
			if err != nil {
				return nil, err
			}
			reqs := mixedRequests(o, m.Manifest.VocabSize, m.Manifest.MaxSeqLen)
			start := time.Now()
			res, err := m.GenerateBatch(ctx, reqs, nil)
			wall := time.Since(start)
			m.Close()
			if err != nil {
				return nil, err
			}
			row := mixedRow(res, b, static, wall)
			if o.Progress != nil {
				o.Progress(fmt.Sprintf("batch %d %s: %.1f tok/s, p50 %.0f ms, p95 %.0f ms, utilisation %.2f",
					b, row.Batching, row.TotalTPS, row.P50Millis, row.P95Millis, row.Utilization))
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// mixedRow summarizes one run. Static batches end one after another, so a
// request's latency is the end of its batch; continuous batching reports
// each request's own.
func mixedRow(res []engine.Result, batch int, static bool, wall time.Duration) MixedRow {
	row := MixedRow{Batching: "continuous", Batch: batch, Requests: len(res), Seconds: wall.Seconds()}
	var lat []float64
	if static {
		row.Batching = "static"
		elapsed, busy, slots := 0.0, 0, 0
		for start := 0; start < len(res); start += batch {
			g := res[start].Stats.Group
			elapsed += g.PrefillMillis + g.DecodeMillis
			busy += g.DecodeTokens
			slots += g.DecodeSteps * g.BatchSize
			for range res[start:min(start+batch, len(res))] {
				lat = append(lat, elapsed)
			}
		}
		row.Utilization = float64(busy) / float64(max(slots, 1))
	} else {
		var last *engine.BatchingStats
		for _, r := range res {
			lat = append(lat, r.Stats.LatencyMillis)
			if b := r.Stats.Batching; b != nil && (last == nil || b.DecodeSteps > last.DecodeSteps) {
				last = b
			}
		}
		if last != nil {
			row.Utilization = last.Utilization
		}
	}
	for _, r := range res {
		row.Tokens += len(r.TokenIDs)
	}
	row.TotalTPS = float64(row.Tokens) / wall.Seconds()
	row.P50Millis, row.P95Millis = percentile(lat, 0.5), percentile(lat, 0.95)
	return row
}

// percentile is the nearest-rank percentile of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[max(0, int(math.Ceil(p*float64(len(s))))-1)]
}
