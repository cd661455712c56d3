package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/export"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "export a Hugging Face checkpoint or llama2.c .bin as a strata model package",
		Description: "Writes one ONNX graph for the embedding, one per layer and one for the head, plus\n" +
			"manifest.json and the tokenizer files. The package appears only when complete.\n\n" +
			"   strata export --in ./TinyLlama --out ./tinyllama-pkg --dtype int4",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "`PATH` of a Hugging Face checkpoint directory or a llama2.c .bin file"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "model package `DIR` to create"},
			&cli.StringFlag{Name: "dtype", Value: "fp32", Usage: "graph weight type: fp32, fp16 or int4"},
			&cli.IntFlag{Name: "max-seq-len", Usage: "KV cache length", DefaultText: "the model's max_position_embeddings, at most 2048 (2048 for ALiBi models such as BLOOM)"},
			&cli.BoolFlag{Name: "full", Usage: "also write model_full.onnx, the whole model as one graph"},
			&cli.BoolFlag{Name: "reference", Usage: "also write reference.safetensors (fp32 weights) for strata verify"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing non-empty --out directory"},
		},
		Action: runExport,
	}
}

func runExport(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("unexpected argument %q (flags only)", c.Args().First())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var bar *progressbar.ProgressBar
	err := export.Export(ctx, export.Options{
		In:        c.String("in"),
		Out:       c.String("out"),
		DType:     c.String("dtype"),
		MaxSeqLen: c.Int("max-seq-len"),
		Full:      c.Bool("full"),
		Reference: c.Bool("reference"),
		Force:     c.Bool("force"),
		Progress: func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total,
					progressbar.OptionSetWriter(c.App.ErrWriter),
					progressbar.OptionSetDescription("exporting"),
					progressbar.OptionShowCount(),
					progressbar.OptionSetElapsedTime(true),
					progressbar.OptionClearOnFinish())
			}
			bar.Set(done)
		},
	})
	if bar != nil {
		bar.Exit()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "exported %s\n", c.String("out"))
	return nil
}
