package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
)

func batchCommand() *cli.Command {
	flags := append(modelFlags(false),
		&cli.StringFlag{Name: "in", Usage: "requests, one JSON object per line", Required: true},
		&cli.StringFlag{Name: "out", Usage: "results, one JSON object per line (appended; a rerun skips ids already there and retries failed ones)", Required: true},
		&cli.BoolFlag{Name: "allow-mismatch", Usage: "append to an --out produced by another model package or other settings"},
		&cli.BoolFlag{Name: "skip-failed", Usage: "on a rerun, leave requests whose last result is an error instead of retrying them"},
		&cli.IntFlag{Name: "batch-size", Value: 8, Usage: "rows decoded together (a finished request's row takes the next request at once)"},
		&cli.DurationFlag{Name: "deadline", Usage: "finish within this time (e.g. 30m): pick the smallest speedup that meets it, from the package's calibration (strata bench --calibrate)"},
	)
	flags = append(flags, scheduleFlags()...)
	flags = append(flags, samplingFlags()...)
	return &cli.Command{
		Name:  "batch",
		Usage: "generate for many requests (JSONL in, JSONL out), resumable",
		Description: "Each input line is a request: {\"id\": \"…\", \"prompt\": \"…\" | \"prompt_ids\": […], \"max_tokens\": N,\n" +
			"\"temperature\": T, \"top_k\": K, \"top_p\": P, \"min_p\": P, \"repetition_penalty\": X, \"seed\": S, \"stop\": […],\n" +
			"\"schedule\": \"uls\", \"speedup\": R}; fields left out take the command-line values. Each output line is\n" +
			"{\"id\", \"token_ids\", \"text\", \"stop_reason\", \"kept_layers\", \"stats\"} or {\"id\", \"error\"}.\n" +
			"Results are appended and flushed per request: after a crash, run the same command again and it\n" +
			"finishes the requests whose ids are not in the output yet, and retries those that failed. The\n" +
			"first output line, {\"strata_batch\": {…}}, records the model package and settings; a rerun with\n" +
			"others is refused (--allow-mismatch appends anyway). One run at a time holds --out (a file lock).\n" +
			"Ctrl-C stops at the next decode step.",
		Flags:  flags,
		Action: runBatch,
	}
}

// errorLine is the output line of a request that could not run.
type errorLine struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

func runBatch(c *cli.Context) error {
	defaults, err := requestFromFlags(c)
	if err != nil {
		return err
	}
	if c.Int("batch-size") < 1 {
		return fmt.Errorf("--batch-size %d: must be at least 1", c.Int("batch-size"))
	}
	if err := checkThreads(c); err != nil {
		return err
	}
	reqs, err := readRequests(c.String("in"), defaults)
	if err != nil {
		return err
	}
	results, err := openResults(c.String("in"), c.String("out"))
	if err != nil {
		return err
	}
	defer results.Close()
	dir, err := modelDir(c)
	if err != nil {
		return err
	}
	ident, err := batchProducer(c, dir, defaults)
	if err != nil {
		return err
	}
	todo, retried := pendingRequests(reqs, results, c.Bool("skip-failed"))
	if len(todo) == 0 {
		fmt.Fprintf(c.App.ErrWriter, "strata: all %d requests are already in %s\n", len(reqs), c.String("out"))
		return results.compact()
	}
	if err := results.claim(ident, c.Bool("allow-mismatch")); err != nil {
		return err
	}
	if retried > 0 {
		fmt.Fprintf(c.App.ErrWriter, "strata: retrying %d requests that failed before (--skip-failed leaves them)\n", retried)
	}
	m, format, err := loadModelDir(c, dir)
	if err != nil {
		return err
	}
	defer m.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	progress := newProgress(c.App.ErrWriter, "requests", len(reqs), len(reqs)-len(todo))
	var runnable []engine.Request
	for _, r := range todo {
		requestRatio(m, &r)
		if r.PromptIDs == nil {
			r.Prompt = format(r.Prompt)
		}
		if err := m.Check(r); err != nil {
			if err := results.write(r.ID, errorLine{ID: r.ID, Error: err.Error()}); err != nil {
				return err
			}
			progress.add(0)
			continue
		}
		runnable = append(runnable, r)
	}
	if d := c.Duration("deadline"); d > 0 && len(runnable) > 0 {
		if c.IsSet("speedup") {
			return fmt.Errorf("--deadline picks the speedup itself: leave out --speedup")
		}
		speedup, err := pickDeadline(c.App.ErrWriter, m, runnable, c.Int("batch-size"), d)
		if err != nil {
			return err
		}
		for i := range runnable {
			if runnable[i].Speedup == 0 && !strings.HasPrefix(runnable[i].Schedule, "layers:") {
				runnable[i].Speedup = speedup
			}
		}
	}
	// Continuous batching over the whole job: a row freed by a finished
	// request takes the next one at once.
	in := make(chan engine.Request)
	go func() {
		defer close(in)
		for _, r := range runnable {
			select {
			case in <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	var runErr error
	for done := range m.Stream(ctx, in, nil) {
		if done.Err != nil {
			if ctx.Err() != nil || errors.Is(done.Err, context.Canceled) {
				runErr = ctx.Err()
				continue // not finished: the next run does it
			}
			id := runnable[done.Index].ID
			if err := results.write(id, errorLine{ID: id, Error: done.Err.Error()}); err != nil {
				return err
			}
			progress.add(0)
			continue
		}
		if err := results.write(done.Result.ID, done.Result); err != nil {
			return err
		}
		progress.add(len(done.Result.TokenIDs))
	}
	if runErr != nil {
		progress.finish()
		return fmt.Errorf("interrupted; finished results are in %s, run the same command again to finish", c.String("out"))
	}
	progress.finish()
	return results.compact()
}

// batchProducer describes this run for the results file's first line.
func batchProducer(c *cli.Context, dir string, defaults engine.Request) (producerInfo, error) {
	id, err := packageIdentity(dir)
	if err != nil {
		return producerInfo{}, err
	}
	spec, speedup, err := scheduleChoice(c, dir)
	if err != nil {
		return producerInfo{}, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return producerInfo{Package: id, Model: abs, Settings: batchSettings{
		MaxTokens: defaults.MaxTokens, Stop: defaults.Stop, SamplingOptions: defaults.SamplingOptions,
		Schedule: spec, Speedup: speedup, Raw: c.Bool("raw"),
	}}, nil
}

// pendingRequests returns the requests still to run: those without a line
// in the results, and those whose last line is an error unless skipFailed.
func pendingRequests(reqs []engine.Request, results *resultsFile, skipFailed bool) (todo []engine.Request, retried int) {
	for _, r := range reqs {
		switch {
		case results.done[r.ID]:
		case results.failed[r.ID] && skipFailed:
		case results.failed[r.ID]:
			retried++
			todo = append(todo, r)
		default:
			todo = append(todo, r)
		}
	}
	return todo, retried
}

// readRequests parses the JSONL input. A field a request leaves out takes
// the command-line value; ids must be unique (a missing id becomes the line number).
func readRequests(path string, defaults engine.Request) ([]engine.Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open requests: %w", err)
	}
	defer f.Close()
	var reqs []engine.Request
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		r := defaults
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		if r.ID == "" {
			r.ID = fmt.Sprintf("line-%d", line)
		}
		if prev, ok := seen[r.ID]; ok {
			return nil, fmt.Errorf("%s line %d: id %q was already used on line %d", path, line, r.ID, prev)
		}
		if r.Prompt == "" && r.PromptIDs == nil {
			return nil, fmt.Errorf("%s line %d: request %q has neither prompt nor prompt_ids", path, line, r.ID)
		}
		seen[r.ID] = line
		reqs = append(reqs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	return reqs, nil
}

// writeLine appends one JSON line with a single write, so a crash never
// leaves half a line behind, and syncs it to disk.
func writeLine(f *os.File, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return f.Sync()
}
