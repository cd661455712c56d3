package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/export"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "compare a model package's ONNX Runtime logits with the plain-Go reference",
		Description: "Runs the prompt (prefill) and --steps greedy decode steps through embed → every layer → head\n" +
			"and through the reference forward pass over the checkpoint's weights, printing max |Δlogit|\n" +
			"per step. Exits non-zero above the tolerance: 1e-4 absolute for fp32, 2e-2 relative to the\n" +
			"largest logit for fp16; int4 is only reported unless --tol is given.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "model package directory"},
			&cli.StringFlag{Name: "checkpoint", Usage: "reference weights: HF directory, llama2.c .bin or reference.safetensors (default: the package's reference.safetensors)"},
			&cli.StringFlag{Name: "prompt-ids", Usage: "prompt token ids, e.g. 1,2,3 (default: BOS and six ids spread over the vocabulary)"},
			&cli.IntFlag{Name: "steps", Value: 8, Usage: "decode steps after the prefill"},
			&cli.Float64Flag{Name: "tol", Usage: "tolerance (fp32: absolute; fp16/int4: relative); 0 = the dtype's default"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "execution provider: cpu, cuda or webgpu"},
			&cli.IntFlag{Name: "threads", Usage: "ONNX Runtime intra-op threads (0: its default)"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: runVerify,
	}
}

func runVerify(c *cli.Context) error {
	opts := export.VerifyOptions{
		Checkpoint: c.String("checkpoint"),
		Steps:      c.Int("steps"),
		Tol:        c.Float64("tol"),
		Device:     c.String("device"),
		Threads:    c.Int("threads"),
		ORTLib:     c.String("ort-lib"),
	}
	if opts.Steps < 0 {
		return fmt.Errorf("--steps %d must not be negative", opts.Steps)
	}
	if opts.Steps == 0 {
		opts.Steps = -1 // prefill only
	}
	if opts.Tol < 0 {
		return fmt.Errorf("--tol %g must not be negative", opts.Tol)
	}
	if c.IsSet("prompt-ids") {
		ids, err := parseIDs(c.String("prompt-ids"))
		if err != nil {
			return fmt.Errorf("--prompt-ids: %w", err)
		}
		opts.PromptIDs = ids
	}
	ortLib, err := ortLibFor(c)
	if err != nil {
		return err
	}
	opts.ORTLib = ortLib
	out := c.App.Writer
	jsonOut := c.Bool("json")
	if !jsonOut {
		opts.OnStep = func(s export.StepReport) {
			what := fmt.Sprintf("decode %d", s.Step)
			if s.Step == 0 {
				what = fmt.Sprintf("prefill (%d tokens)", s.Positions)
			}
			mark := ""
			if s.Token != s.RefToken {
				mark = "  (greedy tokens differ)"
			}
			fmt.Fprintf(out, "%-20s max |Δ| %.3g  rel %.3g  token %d / reference %d%s\n", what, s.MaxAbs, s.MaxRel, s.Token, s.RefToken, mark)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := export.Verify(ctx, c.String("model"), opts)
	if err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		verdict := "PASS"
		switch {
		case rep.Metric == "none":
			verdict = "reported (int4: no tolerance unless --tol)"
		case !rep.Pass:
			verdict = "FAIL"
		}
		fmt.Fprintf(out, "%s: %s package, max |Δ| %.3g, max rel %.3g, greedy agreement %.0f%%, tolerance %s %.3g\n",
			verdict, rep.DType, rep.MaxAbs, rep.MaxRel, 100*rep.Agreement, rep.Metric, rep.Tol)
	}
	return rep.Err()
}
