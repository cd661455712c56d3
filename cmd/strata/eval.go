package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/eval"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "output quality (BLEU, chrF, exact match) and decode speed per skipping schedule and ratio",
		Description: "Decodes a held-out test set greedily under each schedule and ratio and prints a table\n" +
			"shaped like the paper's Table 4. The set is a built-in task (--task) or your own JSONL file (--data)\n" +
			"of {\"prompt\": ..., \"reference\": ...} lines; prompts from --data are used as they are, without\n" +
			"the package's prompt template. Without --model the built-in model is evaluated.",
		Flags: append(modelFlags(false),
			&cli.StringFlag{Name: "task", Value: "bible-en-es", Usage: "built-in evaluation set: " + strings.Join(taskNames(), ", ")},
			&cli.StringFlag{Name: "data", Usage: "your own test set: JSONL of {\"prompt\", \"reference\"} (instead of --task)"},
			&cli.BoolFlag{Name: "lossless", Usage: "add lossless rows: each schedule and ratio above 1 drafts, every layer verifies; reports the share of the draft accepted"},
			&cli.IntFlag{Name: "draft", Usage: "most tokens drafted per lossless round (0: the engine's default)"},
			&cli.Float64Flag{Name: "draft-confidence", Usage: fmt.Sprintf("a lossless round stops drafting once the draft's probability of its last token is below this (negative: always draft --draft tokens; the output never changes) (default %g)", engine.DefaultDraftConfidence)},
			&cli.StringSliceFlag{Name: "stop", Usage: "stop a hypothesis at this string (repeatable; default: a newline for --task, none for --data)"},
			&cli.StringFlag{Name: "ratios", Value: "1,2,3", Usage: "speedup ratios"},
			&cli.StringFlag{Name: "schedules", Value: "uls,top,bottom", Usage: "schedules to compare"},
			&cli.IntFlag{Name: "limit", Usage: "evaluate only the first N sentences (0: all)"},
			&cli.IntFlag{Name: "batch-size", Value: 8, Usage: "sentences decoded together"},
			&cli.IntFlag{Name: "max-tokens", Value: 160, Usage: "maximum tokens per translation"},
			&cli.StringFlag{Name: "json", Usage: "write the rows as JSON to FILE"},
			&cli.StringFlag{Name: "markdown", Usage: "write the table as Markdown to FILE"},
			&cli.StringFlag{Name: "title", Usage: "table title (default: the model directory)"},
			&cli.Float64Flag{Name: "baseline-bleu", Usage: "BLEU the \"% of full\" column is relative to, e.g. the model before ULS fine-tuning (default: this model at full depth)"},
		),
		Action: runEval,
	}
}

func taskNames() []string {
	var names []string
	for n := range eval.Tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func runEval(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("eval takes no arguments, got %q", c.Args().First())
	}
	examples, setName, stop, err := evalSet(c)
	if err != nil {
		return err
	}
	var ratios []float64
	for _, f := range strings.Split(c.String("ratios"), ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(r >= 1) || math.IsInf(r, 0) {
			return fmt.Errorf("--ratios: %q is not a ratio ≥ 1", f)
		}
		ratios = append(ratios, r)
	}
	schedules := strings.Split(c.String("schedules"), ",")
	for i := range schedules {
		schedules[i] = strings.TrimSpace(schedules[i])
	}
	if err := (eval.Options{Schedules: schedules, Ratios: ratios}).Validate(); err != nil {
		return usageError(fmt.Errorf("--%w", err))
	}
	for _, f := range []struct {
		name string
		min  int
	}{{"batch-size", 1}, {"max-tokens", 1}, {"limit", 0}} {
		if v := c.Int(f.name); v < f.min {
			return fmt.Errorf("--%s %d: must be at least %d", f.name, v, f.min)
		}
	}
	if c.IsSet("draft") && !c.Bool("lossless") {
		return fmt.Errorf("--draft needs --lossless")
	}
	if err := checkDraftConfidence(c, c.Bool("lossless")); err != nil {
		return err
	}
	if n := c.Int("limit"); n > 0 && n < len(examples) {
		examples = examples[:n]
	}
	m, _, err := loadModel(c)
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	p := newProgress(c.App.ErrWriter, "examples", 0, 0)
	p.tokens = -1 // eval reports examples, not tokens
	rows, err := eval.Run(ctx, m, examples, eval.Options{
		Schedules: schedules, Ratios: ratios, MaxTokens: c.Int("max-tokens"), BatchSize: c.Int("batch-size"), Stop: stop,
		BaselineBLEU: c.Float64("baseline-bleu"), Lossless: c.Bool("lossless"), Draft: c.Int("draft"),
		DraftConfidence: c.Float64("draft-confidence"),
		Progress:        p.set,
	})
	p.finish()
	if ctx.Err() != nil {
		return interrupted(fmt.Errorf("interrupted: the evaluation did not finish (%d of %d examples decoded); nothing was written", p.done, p.total))
	}
	if err != nil {
		return err
	}
	title := c.String("title")
	if title == "" {
		title = fmt.Sprintf("%s on %s (%d examples)", m.Dir(), setName, len(examples))
	}
	md := eval.Markdown(title, rows)
	fmt.Fprint(c.App.Writer, md)
	if path := c.String("markdown"); path != "" {
		if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if path := c.String("json"); path != "" {
		data, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// evalSet returns the examples (from --data or the built-in --task), the
// set's name for the title, and the stop strings.
func evalSet(c *cli.Context) ([]eval.Example, string, []string, error) {
	stop := c.StringSlice("stop")
	if path := c.String("data"); path != "" {
		if c.IsSet("task") {
			return nil, "", nil, fmt.Errorf("give --data or --task, not both")
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, "", nil, fmt.Errorf("open test set: %w", err)
		}
		defer f.Close()
		examples, err := eval.ReadExamples(f)
		if err != nil {
			return nil, "", nil, inputError(fmt.Errorf("%s: %w", path, err))
		}
		return examples, filepath.Base(path), stop, nil
	}
	load, ok := eval.Tasks[c.String("task")]
	if !ok {
		return nil, "", nil, fmt.Errorf("unknown task %q: want one of %s", c.String("task"), strings.Join(taskNames(), ", "))
	}
	examples, err := load()
	if err != nil {
		return nil, "", nil, err
	}
	if !c.IsSet("stop") {
		stop = []string{"\n"}
	}
	return examples, c.String("task"), stop, nil
}
