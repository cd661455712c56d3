package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
)

func batchCommand() *cli.Command {
	flags := append(modelFlags(false),
		&cli.StringFlag{Name: "in", Usage: "requests, one JSON object per line", Required: true},
		&cli.StringFlag{Name: "out", Usage: "results, one JSON object per line (appended; a rerun skips ids already there)", Required: true},
		&cli.IntFlag{Name: "batch-size", Value: 8, Usage: "requests decoded together"},
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
			"finishes the requests whose ids are not in the output yet. Ctrl-C stops at the next decode step.",
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
	reqs, err := readRequests(c.String("in"), defaults)
	if err != nil {
		return err
	}
	reqs, merged, err := shardRequests(c, reqs)
	if err != nil || merged {
		return err
	}
	done, err := finishedIDs(c.String("out"))
	if err != nil {
		return err
	}
	var todo []engine.Request
	for _, r := range reqs {
		if !done[r.ID] {
			todo = append(todo, r)
		}
	}
	if len(todo) == 0 {
		fmt.Fprintf(c.App.ErrWriter, "strata: all %d requests are already in %s\n", len(reqs), c.String("out"))
		return nil
	}
	m, format, err := loadModel(c)
	if err != nil {
		return err
	}
	defer m.Close()

	out, err := os.OpenFile(c.String("out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open results: %w", err)
	}
	defer out.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	progress := newProgress(c.App.ErrWriter, len(reqs), len(reqs)-len(todo))
	size := c.Int("batch-size")
	for start := 0; start < len(todo); start += size {
		chunk := todo[start:min(start+size, len(todo))]
		var runnable []engine.Request
		for _, r := range chunk {
			if r.PromptIDs == nil {
				r.Prompt = format(r.Prompt)
			}
			if err := m.Check(r); err != nil {
				if err := writeLine(out, errorLine{ID: r.ID, Error: err.Error()}); err != nil {
					return err
				}
				progress.add(0)
				continue
			}
			runnable = append(runnable, r)
		}
		results, runErr := m.GenerateBatch(ctx, runnable, nil)
		for _, res := range results {
			if res.StopReason == "" { // interrupted before it finished
				continue
			}
			if err := writeLine(out, res); err != nil {
				return err
			}
			progress.add(len(res.TokenIDs))
		}
		if runErr != nil {
			progress.finish()
			if errors.Is(runErr, context.Canceled) {
				return fmt.Errorf("interrupted; finished results are in %s, run the same command again to finish", c.String("out"))
			}
			return runErr
		}
	}
	progress.finish()
	return nil
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

// finishedIDs reads the ids already in the results file. A last line cut
// short by a crash is removed so the file stays valid JSONL.
func finishedIDs(path string) (map[string]bool, error) {
	done := map[string]bool{}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	if end := bytes.LastIndexByte(data, '\n') + 1; end < len(data) {
		if err := os.Truncate(path, int64(end)); err != nil {
			return nil, fmt.Errorf("drop the torn last line of %s: %w", path, err)
		}
		data = data[:end]
	}
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s line %d is not a result: %w", path, i+1, err)
		}
		done[r.ID] = true
	}
	return done, nil
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

// progress draws a one-line progress bar on a terminal, and prints a
// summary line elsewhere.
type progress struct {
	w           io.Writer
	total, done int
	tokens      int
	start       time.Time
	tty         bool
}

func newProgress(w io.Writer, total, done int) *progress {
	p := &progress{w: w, total: total, done: done, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	p.draw()
	return p
}

func (p *progress) add(tokens int) {
	p.done++
	p.tokens += tokens
	p.draw()
}

func (p *progress) draw() {
	if !p.tty {
		return
	}
	const width = 30
	filled := width * p.done / max(1, p.total)
	bar := bytes.Repeat([]byte("="), filled)
	bar = append(bar, bytes.Repeat([]byte(" "), width-filled)...)
	fmt.Fprintf(p.w, "\r[%s] %d/%d requests, %.1f tok/s", bar, p.done, p.total, float64(p.tokens)/time.Since(p.start).Seconds())
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprintln(p.w)
		return
	}
	fmt.Fprintf(p.w, "strata: %d/%d requests done, %d tokens in %.1fs\n", p.done, p.total, p.tokens, time.Since(p.start).Seconds())
}
