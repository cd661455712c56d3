package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine/eval"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "translation quality (BLEU, chrF) and decode speed per skipping schedule and ratio",
		Description: "Translates a held-out test set greedily under each schedule and ratio and prints a table\n" +
			"shaped like the paper's Table 4. Without --model the built-in model is evaluated.",
		Flags: append(modelFlags(false),
			&cli.StringFlag{Name: "task", Value: "bible-en-es", Usage: "evaluation set: " + strings.Join(taskNames(), ", ")},
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
	load, ok := eval.Tasks[c.String("task")]
	if !ok {
		return fmt.Errorf("unknown task %q: want one of %s", c.String("task"), strings.Join(taskNames(), ", "))
	}
	var ratios []float64
	for _, f := range strings.Split(c.String("ratios"), ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(r >= 1) || math.IsInf(r, 0) {
			return fmt.Errorf("--ratios: %q is not a ratio ≥ 1", f)
		}
		ratios = append(ratios, r)
	}
	for _, f := range []struct {
		name string
		min  int
	}{{"batch-size", 1}, {"max-tokens", 1}, {"limit", 0}} {
		if v := c.Int(f.name); v < f.min {
			return fmt.Errorf("--%s %d: must be at least %d", f.name, v, f.min)
		}
	}
	schedules := strings.Split(c.String("schedules"), ",")
	examples, err := load()
	if err != nil {
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := newProgress(c.App.ErrWriter, "translations", 0, 0)
	p.tokens = -1 // eval reports translations, not tokens
	rows, err := eval.Run(ctx, m, examples, eval.Options{
		Schedules: schedules, Ratios: ratios, MaxTokens: c.Int("max-tokens"), BatchSize: c.Int("batch-size"),
		BaselineBLEU: c.Float64("baseline-bleu"),
		Progress:     p.set,
	})
	p.finish()
	if err != nil {
		return err
	}
	title := c.String("title")
	if title == "" {
		title = fmt.Sprintf("%s on %s (%d sentences)", m.Dir(), c.String("task"), len(examples))
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
