package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/export"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "export a Hugging Face checkpoint or llama2.c .bin as a strata model package",
		Description: "Writes one ONNX graph for the embedding, one per layer and one for the head, plus\n" +
			"manifest.json and the tokenizer files. The package appears only when complete.\n\n" +
			"   strata export --in ./TinyLlama --out ./tinyllama-pkg --dtype int4\n\n" +
			"No checkpoint at hand? strata synth --shape tiny|bench|tinyllama --out DIR writes a synthetic one.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Required: true, Usage: "`PATH` of a Hugging Face checkpoint directory or a llama2.c .bin file"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "model package `DIR` to create"},
			&cli.StringFlag{Name: "dtype", Value: "fp32", Usage: "graph weight type: fp32, fp16 or int4"},
			&cli.StringFlag{Name: "compute", Value: "fp32", Usage: "activation type: fp32 (fastest on the CPU) or fp16 (hidden states, KV cache and attention in float16, what --device cuda and webgpu run; needs --dtype fp16 or int4)"},
			&cli.IntFlag{Name: "int4-block-size", Usage: "int4 weights per scale along the input axis: 16, 32, 64, 128 or 256 (larger: fewer bytes and faster int4 kernels, coarser quantization)", DefaultText: "32"},
			&cli.IntFlag{Name: "max-seq-len", Usage: "KV cache length (at most 4194304)", DefaultText: "the model's max_position_embeddings, at most 2048 (2048 for ALiBi models such as BLOOM)"},
			&cli.BoolFlag{Name: "full", Usage: "also write model_full.onnx, the whole model as one graph"},
			&cli.BoolFlag{Name: "reference", Usage: "also write reference.safetensors (fp32 weights) for strata verify"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing non-empty --out directory (a package this export would reproduce is left alone: \"up to date\")"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON report on stdout (package, content hash, family, dtype, compute type, layers, bytes, seconds)"},
		},
		Action: runExport,
	}
}

func runExport(c *cli.Context) error {
	if c.Args().Present() {
		return usageError(fmt.Errorf("unexpected argument %q (flags only)", c.Args().First()))
	}
	if n := c.Int("max-seq-len"); n < 0 || n > manifest.MaxSeqLen {
		return usageError(fmt.Errorf("--max-seq-len %d is out of range (1..%d)", n, manifest.MaxSeqLen))
	}
	if err := graph.CheckDType(c.String("dtype")); err != nil {
		return usageError(fmt.Errorf("--dtype: %w", err))
	}
	if err := manifest.CheckComputeType(c.String("compute")); err != nil {
		return usageError(fmt.Errorf("--compute: %w", err))
	}
	if c.String("compute") == manifest.ComputeFP16 && c.String("dtype") == "fp32" {
		return usageError(errors.New("--compute fp16 needs --dtype fp16 or int4"))
	}
	if c.IsSet("int4-block-size") {
		if c.String("dtype") != "int4" {
			return usageError(errors.New("--int4-block-size applies to --dtype int4 only"))
		}
		if err := manifest.CheckInt4Block(c.Int("int4-block-size")); err != nil {
			return usageError(fmt.Errorf("--int4-block-size: %w", err))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A bar on a terminal; elsewhere (a log) a line every progressInterval.
	var bar *progressbar.ProgressBar
	var lines *progress
	tty := isTerminal(c.App.ErrWriter)
	start := time.Now()
	res, err := export.Write(ctx, export.Options{
		In:        c.String("in"),
		Out:       c.String("out"),
		DType:     c.String("dtype"),
		Int4Block: c.Int("int4-block-size"),
		Compute:   c.String("compute"),
		MaxSeqLen: c.Int("max-seq-len"),
		Full:      c.Bool("full"),
		Reference: c.Bool("reference"),
		Force:     c.Bool("force"),
		Progress: func(done, total int) {
			switch {
			case tty && bar == nil:
				bar = progressbar.NewOptions(total,
					progressbar.OptionSetWriter(c.App.ErrWriter),
					progressbar.OptionSetDescription("exporting"),
					progressbar.OptionShowCount(),
					progressbar.OptionSetElapsedTime(true),
					progressbar.OptionClearOnFinish())
			case !tty && lines == nil:
				lines = newProgress(c.App.ErrWriter, "export steps", total, 0)
				lines.tokens = -1
			}
			if bar != nil {
				bar.Set(done)
			} else {
				lines.set(done, total)
			}
		},
	})
	if bar != nil {
		if err == nil {
			bar.Finish() // 100 %, then cleared
		} else {
			bar.Exit()
			fmt.Fprintln(c.App.ErrWriter) // the error goes on a line of its own
		}
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return interrupted(fmt.Errorf("export interrupted; %s was left as it was", c.String("out")))
	case errors.Is(err, export.ErrOutputNotEmpty):
		return usageError(fmt.Errorf("%w (use --force to replace it)", err))
	case errors.Is(err, export.ErrOutputOverlapsInput):
		return usageError(fmt.Errorf("--out: %w", err))
	case errors.Is(err, export.ErrBadInput):
		return inputError(err)
	case err != nil:
		return err
	}
	rep, err := newExportReport(res, time.Since(start))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, rep)
	}
	if res.UpToDate {
		fmt.Fprintf(c.App.Writer, "%s is up to date\n", c.String("out"))
		return nil
	}
	fmt.Fprintf(c.App.Writer, "exported %s\n", c.String("out"))
	return nil
}

// exportReport is what strata export --json prints.
type exportReport struct {
	// Package is the package directory.
	Package string `json:"package"`
	// ContentHash identifies the package as batch result files record it.
	ContentHash string `json:"content_hash"`
	// UpToDate: the package was already there and nothing was written.
	UpToDate    bool    `json:"up_to_date"`
	Family      string  `json:"family"`
	DType       string  `json:"dtype"`
	ComputeType string  `json:"compute_type"`
	Layers      int     `json:"layers"`
	Bytes       int64   `json:"bytes"`
	Seconds     float64 `json:"seconds"`
	// SourceSHA256 identifies the checkpoint (manifest provenance).
	SourceSHA256 string `json:"source_sha256"`
	// Strata is the version of strata that wrote the package.
	Strata string `json:"strata_version"`
}

func newExportReport(res export.Result, took time.Duration) (exportReport, error) {
	id, err := packageIdentity(res.Out)
	if err != nil {
		return exportReport{}, err
	}
	m := res.Manifest
	rep := exportReport{
		Package: res.Out, ContentHash: id, UpToDate: res.UpToDate,
		Family: m.Architecture, DType: m.DType, ComputeType: m.Compute(), Layers: m.NumLayers,
		Bytes: res.Bytes, Seconds: math.Round(took.Seconds()*1000) / 1000,
	}
	if p := m.Provenance; p != nil {
		rep.SourceSHA256, rep.Strata = p.Source.SHA256, p.Strata
	}
	return rep, nil
}

// writeJSON prints v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}
