package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/ortlib"
	"github.com/strata-llm/strata/models/manifest"
)

// Flags shared by the commands that load a model package.
func modelFlags(required bool) []cli.Flag {
	usage := "model package directory (from strata export)"
	if !required {
		usage += "; default: the built-in English→Spanish model"
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: usage, Required: required},
		&cli.StringFlag{Name: "device", Value: "cpu", Usage: "execution provider: cpu, cuda or webgpu"},
		threadsFlag(),
		sharedThreadsFlag,
		&cli.BoolFlag{Name: "raw", Usage: "do not wrap text prompts in the package's prompt template"},
		fuseFlag(),
		cudaGraphFlag(),
	}
}

// cudaGraphFlag records each fused decode step once as a CUDA graph and
// replays it (engine.Options.NoCUDAGraph).
func cudaGraphFlag() cli.Flag {
	return &cli.BoolFlag{Name: "cuda-graph", Value: true,
		Usage: "on cuda, record each fused decode step once as a CUDA graph and replay it (--cuda-graph=false: launch its kernels one by one)"}
}

// fuseFlag runs decode steps as one fused graph (engine.FuseMode): by
// default on GPU devices only.
func fuseFlag() cli.Flag {
	return &cli.BoolFlag{Name: "fuse", DefaultText: "on for cuda and webgpu, off on cpu",
		Usage: "decode through one fused graph of the schedule's layers (--fuse=false: one session per layer; on the CPU fusion measured 0.98–1.17× the per-layer speed)"}
}

// fuseMode is the engine's fusion setting for the command's --fuse.
func fuseMode(c *cli.Context) engine.FuseMode {
	switch {
	case !c.IsSet("fuse"):
		return engine.FuseAuto
	case c.Bool("fuse"):
		return engine.FuseOn
	}
	return engine.FuseOff
}

// scheduleFlags choose the decode layers.
func scheduleFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: "speedup", Aliases: []string{"r"}, DefaultText: "the package's fine-tuned ratio, else 1 (all layers)",
			Usage: "target speedup ratio R ≥ 1: decode through about 1/R of the layers (1: all)"},
		&cli.StringFlag{Name: "schedule", DefaultText: "the package's, else uls",
			Usage: "which layers decoding keeps: uls, balanced, top, bottom or layers:0,3,7,…; a rule without --speedup takes the package's fine-tuned ratio and is refused when it has none"},
		&cli.BoolFlag{Name: "lossless", Usage: "output identical to full depth: the schedule's layers draft tokens that every layer verifies"},
		&cli.IntFlag{Name: "draft", Usage: fmt.Sprintf("most tokens drafted per lossless round (default %d)", engine.DefaultDraftTokens)},
		&cli.Float64Flag{Name: "draft-confidence", Usage: fmt.Sprintf("a lossless round stops drafting once the draft's probability of its last token is below this (negative: always draft --draft tokens; the output never changes) (default %g)", engine.DefaultDraftConfidence)},
	}
}

// samplingFlags are the generate flags that also appear in batch requests.
func samplingFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "max-tokens", Aliases: []string{"n"}, Value: engine.DefaultMaxTokens, Usage: "maximum new tokens"},
		&cli.Float64Flag{Name: "temperature", Aliases: []string{"t"}, Usage: "sampling temperature; 0 is greedy"},
		&cli.IntFlag{Name: "top-k", Usage: "keep the K most likely tokens (0: off)"},
		&cli.Float64Flag{Name: "top-p", Usage: "nucleus sampling: keep tokens up to probability P, in (0,1] (0: off)"},
		&cli.Float64Flag{Name: "min-p", Usage: "drop tokens less likely than P × the most likely one (0: off)"},
		&cli.Float64Flag{Name: "repetition-penalty", Usage: "penalise tokens already seen, as in Hugging Face (1: off)"},
		&cli.Uint64Flag{Name: "seed", Usage: "random seed for sampling"},
		&cli.StringSliceFlag{Name: "stop", Usage: "stop when this string appears (repeatable)"},
	}
}

// requestFromFlags fills the per-request options from the command line.
func requestFromFlags(c *cli.Context) (engine.Request, error) {
	req := engine.Request{
		MaxTokens: c.Int("max-tokens"),
		Stop:      c.StringSlice("stop"),
		Schedule:  c.String("schedule"),
		Speedup:   c.Float64("speedup"),
		Lossless:  c.Bool("lossless"),
		Draft:     c.Int("draft"),

		DraftConfidence: c.Float64("draft-confidence"),
		SamplingOptions: engine.SamplingOptions{
			Temperature:       c.Float64("temperature"),
			TopK:              c.Int("top-k"),
			TopP:              c.Float64("top-p"),
			MinP:              c.Float64("min-p"),
			RepetitionPenalty: c.Float64("repetition-penalty"),
			Seed:              c.Uint64("seed"),
		},
	}
	if c.IsSet("top-p") && req.TopP == 0 {
		return req, fmt.Errorf("--top-p 0: must be in (0, 1]")
	}
	if c.IsSet("speedup") {
		if err := checkRatio("--speedup", req.Speedup); err != nil {
			return req, err
		}
	}
	if c.IsSet("draft") && !req.Lossless {
		return req, fmt.Errorf("--draft needs --lossless")
	}
	if err := checkDraftConfidence(c, req.Lossless); err != nil {
		return req, err
	}
	if c.IsSet("draft") && req.Draft < 1 {
		return req, fmt.Errorf("--draft %d: must be at least 1", req.Draft)
	}
	if req.MaxTokens <= 0 {
		return req, fmt.Errorf("--max-tokens %d: must be at least 1", req.MaxTokens)
	}
	if err := req.SamplingOptions.Validate(); err != nil {
		return req, fmt.Errorf("--%w", err)
	}
	return req, nil
}

// loadModel opens --model, or the built-in default model when it is empty.
// The second result wraps a text prompt in the package's prompt template
// (unless --raw).
func loadModel(c *cli.Context) (*engine.Model, func(string) string, error) {
	dir, err := modelDir(c)
	if err != nil {
		return nil, nil, err
	}
	return loadModelDir(c, dir)
}

// modelDir is --model, or the built-in model's directory when it is empty.
func modelDir(c *cli.Context) (string, error) {
	if dir := c.String("model"); dir != "" {
		return dir, nil
	}
	return defaultModelDir(c.App.ErrWriter)
}

// loadModelDir opens the package in dir with the command's flags.
func loadModelDir(c *cli.Context, dir string) (*engine.Model, func(string) string, error) {
	if err := checkThreads(c); err != nil {
		return nil, nil, err
	}
	// A missing or invalid manifest is the package's fault: exit status 3.
	if _, err := manifest.Load(dir); err != nil {
		return nil, nil, inputError(err)
	}
	spec, speedup := c.String("schedule"), c.Float64("speedup")
	if _, err := engine.RuleRatio(dir, spec, speedup); err != nil {
		return nil, nil, scheduleError(spec, err)
	}
	// A package the device cannot run is refused before a library is
	// fetched (unless the user brings their own, which may have kernels
	// the pinned build lacks; engine.Load then logs and lets ORT decide).
	if dev := c.String("device"); ortlib.CheckDevice(dev) == nil && c.String("ort-lib") == "" && os.Getenv(ortlib.EnvLibrary) == "" {
		if err := engine.CheckPlacement(dir, dev); err != nil {
			return nil, nil, inputError(err)
		}
	}
	ortLib, err := ortLibFor(c)
	if err != nil {
		return nil, nil, err
	}
	m, err := engine.Load(dir, engine.Options{
		Device:   c.String("device"),
		Threads:  c.Int("threads"),
		ORTLib:   ortLib,
		Schedule: spec,
		Speedup:  speedup,
		MaxBatch: c.Int("batch-size"),

		PerGraphThreads: !c.Bool("shared-threads"),
		Fuse:            fuseMode(c),
		NoCUDAGraph:     !c.Bool("cuda-graph"),
	})
	if errors.Is(err, engine.ErrBadPackage) {
		return nil, nil, inputError(err)
	}
	if err != nil {
		return nil, nil, err
	}
	format := m.Manifest.FormatPrompt
	if c.Bool("raw") {
		format = func(s string) string { return s }
	}
	return m, format, nil
}

// scheduleError names the flags in engine's error for a rule given without
// a ratio on a package without a fine-tuned one.
func scheduleError(spec string, err error) error {
	if errors.Is(err, engine.ErrNoRatio) && engine.IsRule(spec) {
		return fmt.Errorf("--schedule %s needs --speedup R: the package has no fine-tuned default ratio (uls.default_schedule in manifest.json)", spec)
	}
	return err
}

// parseIDs parses "1,2,3".
func parseIDs(s string) ([]int, error) {
	var ids []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		id, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("token id %q is not an integer", f)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no token ids in %q", s)
	}
	return ids, nil
}

// sharedThreadsFlag selects one intra-op thread pool for all sessions (the
// default) or, set false, a pool per session.
var sharedThreadsFlag = &cli.BoolFlag{Name: "shared-threads", Value: true,
	Usage: "run every graph on one intra-op thread pool whose threads spin between runs; --shared-threads=false gives each graph a pool of its own that sleeps between runs"}

// checkDraftConfidence validates --draft-confidence when it is given.
func checkDraftConfidence(c *cli.Context, lossless bool) error {
	if !c.IsSet("draft-confidence") {
		return nil
	}
	v := c.Float64("draft-confidence")
	if !lossless {
		return fmt.Errorf("--draft-confidence needs --lossless")
	}
	if math.IsNaN(v) || v > 1 {
		return fmt.Errorf("--draft-confidence %g: want a probability up to 1, or negative for none", v)
	}
	return nil
}
