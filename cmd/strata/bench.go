package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/bench"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure prefill/decode throughput per speedup ratio and batch size",
		Description: "Runs deterministic prompts (random ids from --seed) greedily with end-of-sequence disabled,\n" +
			"so every row generates exactly --gen tokens, for every ratio × batch size, --warmup unmeasured\n" +
			"and --reps measured rounds, and prints medians: prefill and decode tokens/s, time to first\n" +
			"token, KV memory, the decode speedup over full depth at the same batch, the ideal speedup\n" +
			"(weight bytes per decode step) and their ratio. With model_full.onnx in the package, the\n" +
			"full-depth rows also show the monolithic graph's decode tokens/s and the per-layer overhead.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "model package directory", Required: true},
			&cli.StringFlag{Name: "ratios", Value: "1,2,3,5", Usage: "speedup ratios (full depth is always measured)"},
			&cli.StringFlag{Name: "batch", Value: "1,2,8", Usage: "batch sizes"},
			&cli.StringFlag{Name: "schedule", Value: "uls", Usage: "schedule rule: uls, balanced, top or bottom"},
			&cli.IntFlag{Name: "prompt-len", Value: bench.DefaultPromptLen, Usage: "prompt tokens per row"},
			&cli.IntFlag{Name: "gen", Value: bench.DefaultGen, Usage: "new tokens per row"},
			&cli.IntFlag{Name: "reps", Value: bench.DefaultReps, Usage: "measured rounds (medians are reported)"},
			&cli.IntFlag{Name: "warmup", Value: 1, Usage: "unmeasured rounds first"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "execution provider: cpu, cuda or webgpu"},
			threadsFlag(),
			sharedThreadsFlag,
			&cli.Uint64Flag{Name: "seed", Value: bench.DefaultSeed, Usage: "seed of the prompt ids"},
			&cli.BoolFlag{Name: "no-mono", Usage: "skip the monolithic model_full.onnx comparison"},
			&cli.BoolFlag{Name: "fuse", Value: true, Usage: "add fused rows: each ratio × batch decoded through one fused graph, next to the per-layer rows (--fuse=false: per-layer rows only)"},
			cudaGraphFlag(),
			&cli.StringFlag{Name: "profile", Usage: "write ONNX Runtime traces of every graph to `DIR` and print the time per operator"},
			&cli.BoolFlag{Name: "no-roofline", Usage: "skip measuring memory bandwidth (the roofline columns)"},
			&cli.StringFlag{Name: "workload", Value: "ratios", Usage: "ratios: every ratio × batch; mixed: a job of requests of mixed lengths, static vs continuous batching"},
			&cli.BoolFlag{Name: "calibrate", Usage: "store the measured throughput per ratio and batch in the package (calibration.json) for batch --deadline"},
			&cli.IntFlag{Name: "requests", Value: 64, Usage: "mixed workload: number of requests"},
			&cli.BoolFlag{Name: "lossless", Usage: "add lossless rows: each ratio above 1 drafts, every layer verifies"},
			&cli.StringFlag{Name: "draft", Value: strconv.Itoa(engine.DefaultDraftTokens), Usage: "draft lengths (the most per round) of the lossless rows, e.g. 2,4,8"},
			&cli.Float64Flag{Name: "draft-confidence", Usage: fmt.Sprintf("lossless rows: a round stops drafting once the draft's probability of its last token is below this (negative: always draft the full length) (default %g)", engine.DefaultDraftConfidence)},
			&cli.StringFlag{Name: "json", Usage: "write the rows as JSON to `FILE`"},
			&cli.StringFlag{Name: "markdown", Usage: "write Markdown tables to `FILE`"},
			&cli.StringFlag{Name: "plot", Usage: "write a PNG of decode tokens/s versus ratio to `FILE`"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the run to `FILE`"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress lines on stderr"},
		},
		Action: runBench,
	}
}

// benchOnly names the flags that apply to one workload only.
var benchOnly = map[string][]string{
	"ratios": {"ratios", "schedule", "prompt-len", "gen", "reps", "warmup", "no-mono", "profile", "no-roofline",
		"calibrate", "lossless", "draft", "draft-confidence", "markdown", "plot", "cpuprofile"},
	"mixed": {"requests"},
}

func runBench(c *cli.Context) error {
	workload := c.String("workload")
	other, ok := map[string]string{"ratios": "mixed", "mixed": "ratios"}[workload]
	if !ok {
		return usageError(fmt.Errorf("--workload %q: want ratios or mixed", workload))
	}
	for _, name := range benchOnly[other] {
		if c.IsSet(name) {
			return usageError(fmt.Errorf("--%s applies to --workload %s only, not %s", name, other, workload))
		}
	}
	for _, name := range []string{"requests", "gen", "prompt-len", "reps"} {
		if c.IsSet(name) && c.Int(name) < 1 {
			return usageError(fmt.Errorf("--%s %d: must be at least 1", name, c.Int(name)))
		}
	}
	if c.Int("warmup") < 0 {
		return usageError(fmt.Errorf("--warmup %d: must be at least 0", c.Int("warmup")))
	}
	if err := checkThreads(c); err != nil {
		return err
	}
	if workload == "mixed" {
		return runMixedBench(c)
	}
	ratios, err := benchList(c.String("ratios"), "--ratios", func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	if err != nil {
		return err
	}
	for _, r := range ratios {
		if err := checkRatio("--ratios", r); err != nil {
			return err
		}
	}
	batches, err := benchBatches(c.String("batch"))
	if err != nil {
		return err
	}
	drafts, err := benchList(c.String("draft"), "--draft", strconv.Atoi)
	if err != nil {
		return err
	}
	if err := checkDraftConfidence(c, c.Bool("lossless")); err != nil {
		return err
	}
	if c.IsSet("draft") && !c.Bool("lossless") {
		return fmt.Errorf("--draft needs --lossless")
	}
	ortLib, err := ortLibFor(c)
	if err != nil {
		return err
	}
	opts := bench.Options{
		Model: c.String("model"), Ratios: ratios, Batches: batches, Schedule: c.String("schedule"),
		PromptLen: c.Int("prompt-len"), Gen: c.Int("gen"), Reps: c.Int("reps"), Warmup: c.Int("warmup"),
		Device: c.String("device"), Threads: c.Int("threads"), ORTLib: ortLib,
		Seed: c.Uint64("seed"), NoMono: c.Bool("no-mono"), NoRoofline: c.Bool("no-roofline"), Lossless: c.Bool("lossless"), Drafts: drafts,
		PerGraphThreads: !c.Bool("shared-threads"), ProfileDir: c.String("profile"),
		DraftConfidence: c.Float64("draft-confidence"), Fuse: c.Bool("fuse"), NoCUDAGraph: !c.Bool("cuda-graph"),
	}
	if opts.ProfileDir != "" {
		if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
	}
	if !c.Bool("quiet") {
		opts.Progress = func(line string) { fmt.Fprintln(c.App.ErrWriter, "bench:", line) }
	}
	if path := c.String("cpuprofile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := bench.Run(c.Context, opts)
	if err != nil {
		return err
	}
	if err := bench.WriteText(c.App.Writer, rep); err != nil {
		return err
	}
	if rep.Profile != nil {
		fmt.Fprintln(c.App.Writer)
		if err := bench.WriteProfile(c.App.Writer, *rep.Profile); err != nil {
			return err
		}
	}
	if c.Bool("calibrate") {
		if err := bench.CalibrationFromReport(rep).Save(c.String("model")); err != nil {
			return fmt.Errorf("--calibrate: %w", err)
		}
		fmt.Fprintf(c.App.ErrWriter, "strata: calibration written to %s\n", filepath.Join(c.String("model"), bench.CalibrationFile))
	}
	if path := c.String("json"); path != "" {
		if err := bench.WriteFile(path, func(w io.Writer) error { return bench.WriteJSON(w, rep.Rows) }); err != nil {
			return err
		}
	}
	if path := c.String("markdown"); path != "" {
		if err := bench.WriteFile(path, func(w io.Writer) error { return bench.WriteMarkdown(w, rep) }); err != nil {
			return err
		}
	}
	if path := c.String("plot"); path != "" {
		if err := bench.WritePlot(path, rep); err != nil {
			return err
		}
	}
	return nil
}

// benchBatches parses --batch: batch sizes of at least 1.
func benchBatches(value string) ([]int, error) {
	batches, err := benchList(value, "--batch", strconv.Atoi)
	if err != nil {
		return nil, err
	}
	for _, b := range batches {
		if b < 1 {
			return nil, usageError(fmt.Errorf("--batch %d: must be at least 1", b))
		}
	}
	return batches, nil
}

// benchList parses a comma-separated flag value.
func benchList[T any](value, flag string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(value, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a number", flag, f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty list", flag)
	}
	return out, nil
}

// runMixedBench measures static against continuous batching on a job of
// requests of mixed lengths.
func runMixedBench(c *cli.Context) error {
	batchFlag := "8,16"
	if c.IsSet("batch") {
		batchFlag = c.String("batch")
	}
	batches, err := benchBatches(batchFlag)
	if err != nil {
		return err
	}
	ortLib, err := ortLibFor(c)
	if err != nil {
		return err
	}
	opts := bench.MixedOptions{Model: c.String("model"), Requests: c.Int("requests"), Batches: batches,
		Seed: c.Uint64("seed"), Device: c.String("device"), Threads: c.Int("threads"), ORTLib: ortLib}
	if !c.Bool("quiet") {
		opts.Progress = func(line string) { fmt.Fprintln(c.App.ErrWriter, "bench:", line) }
	}
	rows, err := bench.RunMixed(c.Context, opts)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "batching\tbatch\trequests\ttokens\ttotal tok/s\tp50 ms\tp95 ms\tutilisation\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.0f\t%.0f\t%.2f\t\n", r.Batching, r.Batch, r.Requests, r.Tokens, r.TotalTPS, r.P50Millis, r.P95Millis, r.Utilization)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if path := c.String("json"); path != "" {
		return bench.WriteFile(path, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(rows)
		})
	}
	return nil
}
