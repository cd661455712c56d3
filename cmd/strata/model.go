package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
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
		&cli.IntFlag{Name: "threads", Usage: "ONNX Runtime intra-op threads per session (0: ORT's default)"},
		&cli.BoolFlag{Name: "raw", Usage: "do not wrap text prompts in the package's prompt template"},
	}
}

// scheduleFlags choose the decode layers.
func scheduleFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: "speedup", Aliases: []string{"r"}, Usage: "target speedup ratio R: decode through about 1/R of the layers (1: all; default: the package's)"},
		&cli.StringFlag{Name: "schedule", Usage: "which layers decoding keeps: uls, balanced, top, bottom or layers:0,3,7,… (default: the package's, else uls)"},
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
	if c.IsSet("speedup") && req.Speedup < 1 {
		return req, fmt.Errorf("--speedup %g: must be at least 1", req.Speedup)
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
	dir := c.String("model")
	if dir == "" {
		var err error
		if dir, err = defaultModelDir(c.App.ErrWriter); err != nil {
			return nil, nil, err
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
		Schedule: c.String("schedule"),
		Speedup:  c.Float64("speedup"),
		MaxBatch: c.Int("batch-size"),
	})
	if err != nil {
		return nil, nil, err
	}
	format := m.Manifest.FormatPrompt
	if c.Bool("raw") {
		format = func(s string) string { return s }
	}
	return m, format, nil
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
