// Package bench measures a strata model package the way the ULS paper's
// Table 4 does: decode throughput per speedup ratio and batch size, next to
// the ideal speedup the schedule allows (weight bytes read per decode step)
// and, when the package has model_full.onnx, next to one monolithic graph of
// the same model, which shows what running one session per layer costs.
//
// Every configuration decodes the same deterministic prompts (random ids from
// a fixed seed) greedily with end-of-sequence disabled, so every row
// generates exactly Options.Gen tokens. Repetitions are interleaved (one
// round runs every configuration once), so slow drift on a shared machine
// hits all configurations alike; figures are medians over the rounds, and
// ratios (speedup, overhead) are medians of the per-round ratios.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/models/manifest"
)

// Options configure a benchmark run.
type Options struct {
	// Model is the package directory.
	Model string
	// Ratios are the speedup ratios to measure; full depth (1) is always
	// measured, as the baseline of the speedups.
	Ratios []float64
	// Batches are the batch sizes.
	Batches []int
	// Schedule is the schedule rule: uls (default), balanced, top or bottom.
	Schedule string
	// PromptLen and Gen are the prompt length and the new tokens per row.
	PromptLen, Gen int
	// Reps rounds are measured after Warmup unmeasured rounds.
	Reps, Warmup int
	// Device, Threads and ORTLib are passed to engine.Load.
	Device  string
	Threads int
	ORTLib  string
	// Seed picks the prompts.
	Seed uint64
	// NoMono skips the monolithic graph even when the package has one.
	NoMono bool
	// PerGraphThreads gives every session a sleeping thread pool of its
	// own instead of one shared spinning pool (engine.Options).
	PerGraphThreads bool
	// ProfileDir, when set, traces every session with ONNX Runtime's
	// profiler into this directory; Report.Profile sums the traces.
	ProfileDir string
	// NoRoofline skips measuring the memory bandwidth (and the roofline
	// columns).
	NoRoofline bool
	// Lossless adds lossless rows: for every ratio above 1 and every draft
	// length in Drafts, the ratio's layers draft and every layer verifies.
	Lossless bool
	Drafts   []int
	// DraftConfidence is Request.DraftConfidence of the lossless rows.
	DraftConfidence float64
	// Fuse adds fused rows: every plain ratio × batch again, decoded
	// through one fused graph per schedule (engine.FuseOn),
	// next to the per-layer rows.
	Fuse bool
	// NoCUDAGraph runs the fused rows on cuda without CUDA graphs
	// (engine.Options.NoCUDAGraph).
	NoCUDAGraph bool
	// Progress, when set, receives one line per run (warm-up runs included).
	Progress func(line string)
}

// Defaults for Options fields left zero.
const (
	DefaultPromptLen = 64
	DefaultGen       = 32
	DefaultReps      = 3
	DefaultSeed      = 20240410
)

// Row is one ratio × batch measurement; its JSON field names are the
// `strata bench --json` contract (docs/design.md, "CLI contract").
type Row struct {
	Ratio      float64 `json:"ratio"`
	Schedule   string  `json:"schedule"`
	Batch      int     `json:"batch"`
	KeptLayers []int   `json:"kept_layers"`
	PrefillTPS float64 `json:"prefill_tps"`
	DecodeTPS  float64 `json:"decode_tps"`
	TTFTMillis float64 `json:"ttft_ms"`
	// Speedup is decode tokens/s over full depth at the same batch (the
	// median of the per-round ratios).
	Speedup float64 `json:"speedup"`
	// IdealSpeedup is the weight-bytes ratio (see IdealSpeedup).
	IdealSpeedup float64 `json:"ideal_speedup"`
	// Efficiency is Speedup / IdealSpeedup.
	Efficiency float64 `json:"efficiency"`
	KVBytes    int64   `json:"kv_bytes"`
	// MonoDecodeTPS and OverheadPct are set on full-depth rows when the
	// package has a monolithic graph: its decode tokens/s and how much
	// slower per-layer decoding is, in percent of it (negative: faster).
	MonoDecodeTPS *float64 `json:"mono_decode_tps,omitempty"`
	OverheadPct   *float64 `json:"overhead_pct,omitempty"`
	// Lossless rows decode losslessly with Draft tokens per round drafted
	// through KeptLayers; Speedup is then over plain full-depth decoding.
	// AcceptanceRate is the share of drafted tokens the full model kept,
	// TokensPerPass the tokens a row gained per full-depth pass, and
	// DraftAgreement the draft's top-1 agreement with full depth at each
	// draft position.
	// WeightBytesPerToken is the weights a decode step reads per generated
	// token; BandwidthGBps the machine's measured memory bandwidth and
	// RooflinePct the decode speed as a share of bandwidth / bytes per token
	// (see roofline.go).
	WeightBytesPerToken int64   `json:"weight_bytes_per_token,omitempty"`
	BandwidthGBps       float64 `json:"bandwidth_gbps,omitempty"`
	RooflinePct         float64 `json:"roofline_pct,omitempty"`
	// RooflineSuspect marks a RooflinePct above 100 %, which cannot be: the
	// bandwidth measured twice was below what decoding used.
	RooflineSuspect bool      `json:"roofline_suspect,omitempty"`
	Lossless        bool      `json:"lossless,omitempty"`
	Draft           int       `json:"draft,omitempty"`
	AcceptanceRate  *float64  `json:"acceptance_rate,omitempty"`
	TokensPerPass   *float64  `json:"tokens_per_pass,omitempty"`
	DraftAgreement  []float64 `json:"draft_agreement,omitempty"`
	// Fused rows decode through one fused graph per step; their Speedup
	// is over fused full depth, and FusedGain is their decode tokens/s over
	// the per-layer row of the same ratio and batch (the median of the
	// per-round ratios).
	Fused     bool     `json:"fused"`
	FusedGain *float64 `json:"fused_gain,omitempty"`
	// FusedMonoGain is set on fused full-depth rows when the package has a
	// monolithic graph: their decode tokens/s over the monolithic graph's
	// (the median of the per-round ratios; both run the same layers as one
	// session per step).
	FusedMonoGain *float64 `json:"fused_mono_gain,omitempty"`
	// RSSBytes is the process's resident memory after the row's last run
	// (every model the run loaded, so it only grows from row to row).
	RSSBytes int64 `json:"rss_bytes,omitempty"`
}

// Report is the outcome of Run.
type Report struct {
	// Rows are sorted by batch, then ratio.
	Rows []Row
	// Notes explain skipped ratios and anything else worth reading.
	Notes []string
	// Manifest is the measured package's manifest.
	Manifest *manifest.Manifest
	// Options are the options the run used, defaults filled in.
	Options Options
	// ORTVersion is the ONNX Runtime version that ran the graphs.
	ORTVersion string
	// Bandwidth is the machine's measured memory bandwidth (CPU runs).
	Bandwidth *Bandwidth
	// Profile sums the per-layer engine's ORT traces (Options.ProfileDir).
	Profile *Profile
}

func (o *Options) normalize() error {
	if o.Model == "" {
		return errors.New("no model package given")
	}
	if o.Schedule == "" {
		o.Schedule = "uls"
	}
	switch o.Schedule {
	case "uls", "balanced", "top", "bottom":
	default:
		return fmt.Errorf("schedule %q: bench measures a rule over ratios, one of uls, balanced, top, bottom", o.Schedule)
	}
	if len(o.Ratios) == 0 {
		o.Ratios = []float64{1, 2, 3, 5}
	}
	for _, r := range o.Ratios {
		if math.IsNaN(r) || math.IsInf(r, 0) || r < 1 {
			return fmt.Errorf("ratio %g: must be at least 1", r)
		}
	}
	if !slices.Contains(o.Ratios, 1) {
		o.Ratios = append([]float64{1}, o.Ratios...)
	}
	slices.Sort(o.Ratios)
	o.Ratios = slices.Compact(o.Ratios)
	if len(o.Batches) == 0 {
		o.Batches = []int{1, 2, 8}
	}
	if o.Lossless && len(o.Drafts) == 0 {
		o.Drafts = []int{engine.DefaultDraftTokens}
	}
	for _, k := range o.Drafts {
		if k < 1 {
			return fmt.Errorf("draft length %d: must be at least 1", k)
		}
	}
	for _, b := range o.Batches {
		if b < 1 {
			return fmt.Errorf("batch size %d: must be at least 1", b)
		}
	}
	slices.Sort(o.Batches)
	o.Batches = slices.Compact(o.Batches)
	if o.PromptLen == 0 {
		o.PromptLen = DefaultPromptLen
	}
	if o.Gen == 0 {
		o.Gen = DefaultGen
	}
	if o.Reps == 0 {
		o.Reps = DefaultReps
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	switch {
	case o.PromptLen < 1:
		return fmt.Errorf("prompt length %d: must be at least 1", o.PromptLen)
	case o.Gen < 2:
		return fmt.Errorf("generated tokens %d: must be at least 2 (the first token comes from prefill)", o.Gen)
	case o.Reps < 1:
		return fmt.Errorf("repetitions %d: must be at least 1", o.Reps)
	case o.Warmup < 0:
		return fmt.Errorf("warm-up rounds %d: must be ≥ 0", o.Warmup)
	case o.Threads < 0:
		return fmt.Errorf("threads %d: must be ≥ 0", o.Threads)
	}
	return nil
}

// config is one measured configuration; mono configurations run the
// monolithic graph at full depth.
type config struct {
	ratio    float64
	batch    int
	schedule engine.Schedule
	mono     bool
	draft    int  // > 0: lossless with this draft length
	fused    bool // decoded by the fusing model
}

// sample is one measured run.
type sample struct {
	prefillTPS, decodeTPS, ttftMillis float64
	kvBytes                           int64
	tokens                            [][]int // per row, the generated ids
	spec                              *engine.LosslessStats
	rss                               int64
}

// Run measures the package. It loads the package once (and its monolithic
// graph when present), then runs Warmup + Reps rounds of every configuration.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	maxBatch := slices.Max(opts.Batches)
	// Every row of a measured batch has the same lengths, so fixed batches
	// are what is measured: their figures are the batch's, not a request's.
	m, err := engine.Load(opts.Model, engine.Options{Device: opts.Device, Threads: opts.Threads, ORTLib: opts.ORTLib, MaxBatch: maxBatch,
		NoTokenizer: true, PerGraphThreads: opts.PerGraphThreads, StaticBatching: true, ProfileDir: opts.ProfileDir, Fuse: engine.FuseOff})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	man := m.Manifest
	if need := opts.PromptLen + opts.Gen; need > man.MaxSeqLen {
		return nil, fmt.Errorf("prompt length %d + %d new tokens exceeds the package's max_seq_len %d", opts.PromptLen, opts.Gen, man.MaxSeqLen)
	}
	rep := &Report{Manifest: man, Options: opts, ORTVersion: m.ORTVersion()}
	var configs []config
	for _, b := range opts.Batches {
		for _, r := range opts.Ratios {
			s, err := m.ResolveSchedule(opts.Schedule, r)
			if err != nil {
				if r == math.Trunc(r) && man.NumLayers/int(r) < 2 {
					if b == opts.Batches[0] {
						rep.Notes = append(rep.Notes, fmt.Sprintf("ratio %g skipped: it leaves %d of %d layers; at least 2 must remain", r, man.NumLayers/int(r), man.NumLayers))
					}
					continue
				}
				return nil, fmt.Errorf("ratio %g: %w", r, err)
			}
			configs = append(configs, config{ratio: r, batch: b, schedule: s})
			if opts.Lossless && r > 1 {
				for _, k := range opts.Drafts {
					configs = append(configs, config{ratio: r, batch: b, schedule: s, draft: k})
				}
			}
		}
	}

	var fm *engine.Model
	if opts.Fuse {
		// The same package with fused decode steps: each plain
		// configuration again, right after its per-layer twin.
		if fm, err = engine.Load(opts.Model, engine.Options{Device: opts.Device, Threads: opts.Threads, ORTLib: opts.ORTLib,
			MaxBatch: maxBatch, NoTokenizer: true, PerGraphThreads: opts.PerGraphThreads, StaticBatching: true, Fuse: engine.FuseOn, NoCUDAGraph: opts.NoCUDAGraph}); err != nil {
			return nil, fmt.Errorf("fused graphs: %w", err)
		}
		defer fm.Close()
		var withFused []config
		for _, c := range configs {
			withFused = append(withFused, c)
			if c.draft == 0 {
				c.fused = true
				withFused = append(withFused, c)
			}
		}
		configs = withFused
	}

	var mono *engine.Model
	if man.Files.Full != "" && !opts.NoMono {
		// The same runner over model_full.onnx: one session per step
		// instead of one per layer, everything else equal.
		if mono, err = engine.Load(opts.Model, engine.Options{Device: opts.Device, Threads: opts.Threads, ORTLib: opts.ORTLib,
			MaxBatch: maxBatch, NoTokenizer: true, Schedule: "uls", Speedup: 1, Monolithic: true, PerGraphThreads: opts.PerGraphThreads,
			StaticBatching: true}); err != nil {
			return nil, fmt.Errorf("monolithic graph: %w", err)
		}
		defer mono.Close()
		var withMono []config
		for _, b := range opts.Batches {
			withMono = append(withMono, config{ratio: 1, batch: b, mono: true, schedule: mono.Schedule()})
			for _, c := range configs {
				if c.batch == b {
					withMono = append(withMono, c)
				}
			}
		}
		configs = withMono
	} else if man.Files.Full == "" {
		rep.Notes = append(rep.Notes, "the package has no model_full.onnx (export with --full): no monolithic comparison")
	}

	prompts := Prompts(opts.Seed, maxBatch, opts.PromptLen, man.VocabSize)
	samples := make([][]sample, len(configs))
	for round := -opts.Warmup; round < opts.Reps; round++ {
		for i, c := range configs {
			var s sample
			switch {
			case c.mono:
				s, err = runEngine(ctx, mono, c, prompts[:c.batch], opts)
			case c.fused:
				s, err = runEngine(ctx, fm, c, prompts[:c.batch], opts)
			default:
				s, err = runEngine(ctx, m, c, prompts[:c.batch], opts)
			}
			if err != nil {
				return nil, err
			}
			label := fmt.Sprintf("round %d/%d", round+1, opts.Reps)
			if round < 0 {
				label = fmt.Sprintf("warm-up %d/%d", round+opts.Warmup+1, opts.Warmup)
			} else {
				samples[i] = append(samples[i], s)
			}
			if opts.Progress != nil {
				what := fmt.Sprintf("%s ratio %g", opts.Schedule, c.ratio)
				if c.mono {
					what = "monolithic"
				}
				if c.fused {
					what += " fused"
				}
				if c.draft > 0 {
					what = fmt.Sprintf("lossless draft %d through %s ratio %g", c.draft, opts.Schedule, c.ratio)
				}
				opts.Progress(fmt.Sprintf("%s batch %d %s: prefill %.1f tok/s, decode %.2f tok/s, ttft %.0f ms",
					label, c.batch, what, s.prefillTPS, s.decodeTPS, s.ttftMillis))
			}
		}
	}
	rep.Notes = append(rep.Notes, compareMono(configs, samples)...)
	rep.Rows, err = summarize(man, configs, samples, opts.Schedule)
	if err != nil {
		return nil, err
	}
	if opts.ProfileDir != "" {
		paths, err := m.EndProfiling()
		if err != nil {
			return nil, err
		}
		prof, err := SummarizeProfiles(paths)
		if err != nil {
			return nil, err
		}
		rep.Profile = &prof
	}
	if !opts.NoRoofline && orDefault(opts.Device, "cpu") == "cpu" {
		stepBytes := func(r Row) (int64, error) { return StepBytes(man, len(r.KeptLayers), r.Batch) }
		bw, err := applyRoofline(rep.Rows, stepBytes, CachedBandwidth(), MeasureAndCacheBandwidth)
		if err != nil {
			return nil, err
		}
		rep.Bandwidth = &bw
		for _, r := range rep.Rows {
			if r.RooflineSuspect {
				rep.Notes = append(rep.Notes, fmt.Sprintf("roofline \"?\": decoding read its weights faster than the measured memory bandwidth (%.1f GB/s) allows: the weights fit in the CPU caches, or the bandwidth was measured while the machine was busy; those rows' roofline is not shown", bw.GBps))
				break
			}
		}
	}
	return rep, nil
}

// Prompts returns n deterministic prompts of length promptLen with ids drawn
// uniformly from the vocabulary.
func Prompts(seed uint64, n, promptLen, vocab int) [][]int {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([][]int, n)
	for b := range out {
		out[b] = make([]int, promptLen)
		for i := range out[b] {
			out[b][i] = rng.IntN(vocab)
		}
	}
	return out
}

// runEngine decodes one batch with the per-layer engine.
func runEngine(ctx context.Context, m *engine.Model, c config, prompts [][]int, opts Options) (sample, error) {
	reqs := make([]engine.Request, len(prompts))
	for b, p := range prompts {
		reqs[b] = engine.Request{PromptIDs: p, MaxTokens: opts.Gen, IgnoreEOS: true, Schedule: opts.Schedule, Speedup: c.ratio,
			Lossless: c.draft > 0, Draft: c.draft}
		if c.draft > 0 {
			reqs[b].DraftConfidence = opts.DraftConfidence
		}
		if c.mono {
			reqs[b].Schedule, reqs[b].Speedup = "", 0
		}
	}
	res, err := m.GenerateBatch(ctx, reqs, nil)
	if err != nil {
		return sample{}, fmt.Errorf("batch %d ratio %g: %w", c.batch, c.ratio, err)
	}
	for b, r := range res {
		if r.StopReason != engine.StopMaxTokens || len(r.TokenIDs) != opts.Gen {
			return sample{}, fmt.Errorf("batch %d ratio %g: row %d stopped after %d of %d tokens (%s); the measurement would not be comparable",
				c.batch, c.ratio, b, len(r.TokenIDs), opts.Gen, r.StopReason)
		}
		if !slices.Equal(r.KeptLayers, c.schedule.Layers) {
			return sample{}, fmt.Errorf("batch %d ratio %g: the engine decoded layers %v, expected %v", c.batch, c.ratio, r.KeptLayers, c.schedule.Layers)
		}
	}
	st := res[0].Stats
	tokens := make([][]int, len(res))
	for b, r := range res {
		tokens[b] = r.TokenIDs
	}
	if st.BatchSize != c.batch {
		return sample{}, fmt.Errorf("batch %d ratio %g: the engine decoded batches of %d", c.batch, c.ratio, st.BatchSize)
	}
	return sample{prefillTPS: st.PrefillTPS, decodeTPS: st.DecodeTPS, ttftMillis: st.TTFTMillis, kvBytes: st.KVBytes, tokens: tokens,
		spec: st.Group.Lossless, rss: residentBytes()}, nil
}

// compareMono checks that the monolithic graph and lossless decoding
// generated the same tokens as the per-layer engine at full depth, and a
// fused run the same as the per-layer run of its ratio (same weights, same
// greedy decoding); a difference means the measurements did not do the
// same work.
func compareMono(configs []config, samples [][]sample) []string {
	var notes []string
	for i, c := range configs {
		if !c.mono && c.draft == 0 && !c.fused {
			continue
		}
		for j, f := range configs {
			// The per-layer run to compare with: full depth, or for a
			// fused run the same ratio.
			want := 1.0
			if c.fused {
				want = c.ratio
			}
			if f.mono || f.draft > 0 || f.fused || f.batch != c.batch || f.ratio != want {
				continue
			}
			what := "the monolithic graph"
			if c.draft > 0 {
				what = fmt.Sprintf("lossless decoding (ratio %g, draft %d)", c.ratio, c.draft)
			}
			if c.fused {
				what = fmt.Sprintf("the fused graph (ratio %g)", c.ratio)
			}
			for k := range samples[i] {
				if !slices.EqualFunc(samples[i][k].tokens, samples[j][k].tokens, slices.Equal) {
					notes = append(notes, fmt.Sprintf("batch %d: %s generated other tokens than the per-layer engine at full depth (round %d)", c.batch, what, k+1))
					break
				}
			}
		}
	}
	return notes
}

// summarize turns the samples into rows: medians per configuration, and
// speedup and overhead as medians of the per-round ratios.
func summarize(man *manifest.Manifest, configs []config, samples [][]sample, schedule string) ([]Row, error) {
	full := map[int][]sample{} // per batch: the full-depth engine samples
	mono := map[int][]sample{}
	fusedFull := map[int][]sample{}
	for i, c := range configs {
		switch {
		case c.mono:
			mono[c.batch] = samples[i]
		case c.ratio == 1 && c.draft == 0 && !c.fused:
			full[c.batch] = samples[i]
		case c.ratio == 1 && c.fused:
			fusedFull[c.batch] = samples[i]
		}
	}
	perLayer := func(c config) []sample { // the per-layer twin of a fused configuration
		for j, f := range configs {
			if !f.mono && !f.fused && f.draft == 0 && f.batch == c.batch && f.ratio == c.ratio {
				return samples[j]
			}
		}
		return nil
	}
	var rows []Row
	for i, c := range configs {
		if c.mono {
			continue
		}
		ss := samples[i]
		ideal, err := IdealSpeedup(man, len(c.schedule.Layers), c.batch)
		if err != nil {
			return nil, err
		}
		row := Row{
			Ratio: c.ratio, Schedule: schedule, Batch: c.batch, KeptLayers: c.schedule.Layers,
			PrefillTPS:   Median(field(ss, func(s sample) float64 { return s.prefillTPS })),
			DecodeTPS:    Median(field(ss, func(s sample) float64 { return s.decodeTPS })),
			TTFTMillis:   Median(field(ss, func(s sample) float64 { return s.ttftMillis })),
			KVBytes:      ss[len(ss)-1].kvBytes,
			IdealSpeedup: ideal,
			Fused:        c.fused,
			RSSBytes:     ss[len(ss)-1].rss,
		}
		base := full[c.batch]
		if c.fused {
			base = fusedFull[c.batch]
			if pl := perLayer(c); pl != nil {
				gain := make([]float64, len(ss))
				for k := range ss {
					gain[k] = ss[k].decodeTPS / pl[k].decodeTPS
				}
				g := Median(gain)
				row.FusedGain = &g
			}
			if ms, ok := mono[c.batch]; ok && c.ratio == 1 {
				gain := make([]float64, len(ss))
				for k := range ss {
					gain[k] = ss[k].decodeTPS / ms[k].decodeTPS
				}
				g := Median(gain)
				row.FusedMonoGain = &g
			}
		}
		ratios := make([]float64, len(ss))
		for k := range ss {
			ratios[k] = ss[k].decodeTPS / base[k].decodeTPS
		}
		row.Speedup = Median(ratios)
		row.Efficiency = row.Speedup / ideal
		if c.draft > 0 {
			losslessFields(&row, c, ss)
		}
		if ms, ok := mono[c.batch]; ok && c.ratio == 1 && !c.fused {
			tps := Median(field(ms, func(s sample) float64 { return s.decodeTPS }))
			over := make([]float64, len(ss))
			for k := range ss {
				over[k] = 100 * (1 - ss[k].decodeTPS/ms[k].decodeTPS)
			}
			pct := Median(over)
			row.MonoDecodeTPS, row.OverheadPct = &tps, &pct
		}
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		lossless := func(r Row) int {
			if r.Lossless {
				return 1
			}
			return 0
		}
		fused := func(r Row) int {
			if r.Fused {
				return 1
			}
			return 0
		}
		return cmp.Or(cmp.Compare(a.Batch, b.Batch), cmp.Compare(lossless(a), lossless(b)), cmp.Compare(fused(a), fused(b)), cmp.Compare(a.Ratio, b.Ratio))
	})
	return rows, nil
}

// losslessFields fills a lossless row: its draft statistics over all
// rounds, and no ideal speedup (a lossless row reads every layer's weights
// per pass, plus the draft's).
func losslessFields(row *Row, c config, ss []sample) {
	row.Lossless, row.Draft = true, c.draft
	row.IdealSpeedup, row.Efficiency = 0, 0
	var drafted, accepted, emitted, passes int
	agree := make([]float64, c.draft)
	for _, s := range ss {
		if s.spec == nil {
			continue
		}
		drafted += s.spec.Drafted
		accepted += s.spec.Accepted
		emitted += s.spec.Emitted
		passes += s.spec.VerifySteps * c.batch
		for i, a := range s.spec.Agreement {
			agree[i] += a / float64(len(ss))
		}
	}
	if drafted > 0 {
		a := float64(accepted) / float64(drafted)
		row.AcceptanceRate = &a
	}
	if passes > 0 {
		t := float64(emitted) / float64(passes)
		row.TokensPerPass = &t
	}
	row.DraftAgreement = agree
}

func field(ss []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

// Median returns the median of xs (the mean of the two middle values for an
// even count); NaN for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// describeModel is a one-line description of the package for reports.
func describeModel(dir string, m *manifest.Manifest) string {
	return fmt.Sprintf("%s: %s, %d layers, hidden %d, %d heads / %d KV heads, intermediate %d, vocab %d, %s, max_seq_len %d",
		filepath.Base(strings.TrimRight(dir, "/")), m.Architecture, m.NumLayers, m.HiddenSize, m.NumHeads, m.NumKVHeads,
		m.IntermediateSize, m.VocabSize, m.DType, m.MaxSeqLen)
}

// residentBytes is the process's resident memory (VmRSS), 0 where
// /proc/self/status cannot be read.
func residentBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
