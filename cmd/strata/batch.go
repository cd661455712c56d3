package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/requests"
)

func batchCommand() *cli.Command {
	flags := append(modelFlags(false),
		&cli.StringFlag{Name: "in", Usage: "requests, one JSON object per line", Required: true},
		&cli.StringFlag{Name: "out", Usage: "results, one JSON object per line (appended; a rerun skips ids already there and retries failed ones)", Required: true},
		&cli.BoolFlag{Name: "allow-mismatch", Usage: "append to an --out produced by another model package or other settings"},
		&cli.BoolFlag{Name: "skip-failed", Usage: "on a rerun, leave requests whose last result is an error instead of retrying them"},
		&cli.IntFlag{Name: "batch-size", Value: 8, Usage: "rows decoded together (a finished request's row takes the next request at once)"},
		&cli.StringFlag{Name: "deadline", Usage: "finish within this time (e.g. 30m): pick the smallest speedup that meets it, from the package's calibration (strata bench --calibrate); a resumed --out keeps the ratio it started with"},
	)
	flags = append(flags, scheduleFlags()...)
	flags = append(flags, samplingFlags()...)
	flags = append(flags, shardFlags()...)
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
			"Ctrl-C or SIGTERM stops at the next decode step, says what is done and what is left, and exits\n" +
			"with status 130; the same command run again finishes the rest.",
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
	// Signals are caught from the start, so that an interruption at any
	// moment ends with the interrupted message and status, and stay caught
	// until the process exits: one arriving after the last result cannot
	// kill it half-way through its exit.
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
	deadline, err := deadlineFlag(c)
	if err != nil {
		return err
	}
	if deadline > 0 && c.IsSet("speedup") {
		return fmt.Errorf("--deadline picks the speedup itself: leave out --speedup")
	}
	reqs, err := readRequests(c.String("in"), defaults)
	if err != nil {
		return inputError(err)
	}
	reqs, merged, err := shardRequests(c, reqs)
	if err != nil || merged {
		return err
	}
	if len(reqs) == 0 {
		fmt.Fprintf(c.App.ErrWriter, "strata: shard %s holds none of the requests in %s; nothing to do\n", c.String("shard"), c.String("in"))
		return nil
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
	ident, err := batchProducer(c, dir, defaults, deadline)
	if err != nil {
		return err
	}
	todo, retried := pendingRequests(reqs, results, c.Bool("skip-failed"))
	if len(todo) == 0 {
		fmt.Fprintf(c.App.ErrWriter, "strata: all %d requests are already in %s\n", len(reqs), c.String("out"))
		return results.compact()
	}
	// Refused before the model loads; the header is written once the
	// speedup a deadline picks is known.
	if err := results.check(&ident, c.Bool("allow-mismatch")); err != nil {
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
	job := batchJob{c: c, total: len(reqs), already: len(reqs) - len(todo), todo: len(todo)}
	if ctx.Err() != nil {
		return job.interrupted()
	}

	progress := newProgress(c.App.ErrWriter, "requests", len(reqs), len(reqs)-len(todo))
	var runnable []engine.Request
	var refused []errorLine // written once the header is
	for _, r := range todo {
		err := requests.CheckPromptBytes(r.Prompt, m.Manifest.MaxSeqLen)
		if r.PromptIDs == nil && err == nil {
			r.Prompt = format(r.Prompt)
		}
		if err == nil {
			err = m.Check(r)
		}
		if err != nil {
			refused = append(refused, errorLine{ID: r.ID, Error: err.Error()})
			continue
		}
		runnable = append(runnable, r)
	}
	if ctx.Err() != nil {
		return job.interrupted()
	}
	if deadline > 0 && len(runnable) > 0 {
		speedup := ident.Settings.Speedup // a resumed file keeps the ratio its first part ran at
		if speedup == 0 {
			if speedup, err = pickDeadline(c.App.ErrWriter, m, runnable, c.Int("batch-size"), deadline); err != nil {
				return err
			}
			ident.Settings.Speedup = speedup
		} else {
			fmt.Fprintf(c.App.ErrWriter, "strata: deadline %v: resuming at ratio %g, the ratio %s was started at\n", deadline, speedup, c.String("out"))
		}
		for i := range runnable {
			if runnable[i].Speedup == 0 && !strings.HasPrefix(runnable[i].Schedule, "layers:") {
				runnable[i].Speedup = speedup
			}
		}
	}
	if err := results.claim(ident); err != nil {
		return err
	}
	for _, e := range refused {
		if err := results.write(e.ID, e); err != nil {
			return err
		}
		job.failed++
		progress.fail()
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
	for done := range m.Stream(ctx, in, nil) {
		if done.Err != nil {
			if ctx.Err() != nil || errors.Is(done.Err, context.Canceled) {
				continue // not finished: the next run does it
			}
			id := runnable[done.Index].ID
			if err := results.write(id, errorLine{ID: id, Error: done.Err.Error()}); err != nil {
				return err
			}
			job.failed++
			progress.fail()
			continue
		}
		if err := results.write(done.Result.ID, done.Result); err != nil {
			return err
		}
		job.ok++
		progress.add(len(done.Result.TokenIDs))
	}
	// A cancelled stream may end without a word about the requests it
	// dropped: what counts is what was written.
	if ctx.Err() != nil || job.ok+job.failed < job.todo {
		progress.stop() // the closing line is the interruption's
		if job.ok+job.failed == job.todo {
			if err := results.compact(); err != nil {
				return err
			}
		}
		return job.interrupted()
	}
	progress.finish()
	return results.compact()
}

// batchJob counts a batch run's requests for its closing message.
type batchJob struct {
	c *cli.Context
	// total requests (of this shard), already in --out when the run
	// started, todo in this run; ok and failed: this run's results.
	total, already, todo, ok, failed int
}

// interrupted is the error of a batch stopped by a signal: it says what is
// done and what is left, and exits with exitInterrupted.
func (j batchJob) interrupted() error {
	out := j.c.String("out")
	left := j.todo - j.ok - j.failed
	failed := ""
	if j.failed > 0 {
		failed = fmt.Sprintf(" (%d of this run's failed)", j.failed)
	}
	if left == 0 {
		return interrupted(fmt.Errorf("interrupted after the last request: all %d requests have a line in %s%s, none is left", j.total, out, failed))
	}
	return interrupted(fmt.Errorf("interrupted: %d of %d requests have a line in %s%s, %d are left; run the same command again to finish them",
		j.already+j.ok+j.failed, j.total, out, failed, left))
}

// deadlineFlag parses --deadline ("30m"; 0 when not given).
func deadlineFlag(c *cli.Context) (time.Duration, error) {
	if !c.IsSet("deadline") {
		return 0, nil
	}
	s := c.String("deadline")
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, usageError(fmt.Errorf("--deadline %s: want a duration such as 30m", s))
	}
	if d <= 0 {
		return 0, usageError(fmt.Errorf("--deadline %s: must be a positive duration such as 30m", s))
	}
	return d, nil
}

// batchProducer describes this run for the results file's first line.
func batchProducer(c *cli.Context, dir string, defaults engine.Request, deadline time.Duration) (producerInfo, error) {
	id, err := packageIdentity(dir)
	if err != nil {
		return producerInfo{}, err
	}
	spec := c.String("schedule")
	speedup, err := engine.RuleRatio(dir, spec, c.Float64("speedup"))
	if err != nil {
		return producerInfo{}, scheduleError(spec, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return producerInfo{Package: id, Model: abs, Settings: batchSettings{
		MaxTokens: defaults.MaxTokens, Stop: defaults.Stop, SamplingOptions: defaults.SamplingOptions,
		Schedule: spec, Speedup: speedup, Raw: c.Bool("raw"), Lossless: defaults.Lossless, Deadline: deadlineText(deadline),
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

// maxRequestLine is the longest request line read.
var maxRequestLine = requests.MaxLineBytes

// readRequests parses the JSONL input (requests.Decode: one object per
// line). A field a request leaves out takes the command-line value; ids
// must be unique (a missing id becomes the line number). A file without a
// request is an error.
func readRequests(path string, defaults engine.Request) ([]engine.Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open requests: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("--in %s is a directory: give the requests file", path)
	}
	var reqs []engine.Request
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, min(1<<20, maxRequestLine)), maxRequestLine)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			text = requests.StripBOM(text)
		}
		if len(text) == 0 {
			continue
		}
		r, err := requests.Decode(text, defaults)
		if err != nil {
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
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s line %d is longer than %d bytes, the most one request line may hold", path, line+1, maxRequestLine)
		}
		return nil, fmt.Errorf("read requests %s: %w", path, err)
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("--in %s holds no requests", path)
	}
	return reqs, nil
}
