package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/export/synth"
	"github.com/strata-llm/strata/internal/hostmem"
)

func synthCommand() *cli.Command {
	return &cli.Command{
		Name:  "synth",
		Usage: "write a synthetic Hugging Face checkpoint (random weights) of a named shape",
		Description: "Writes config.json, generation_config.json and safetensors weights, deterministic from the\n" +
			"shape's seed, to try export, verify and bench without downloading a model:\n\n" +
			"   strata synth --shape tiny --out ./ckpt && strata export --in ./ckpt --out ./pkg --reference\n\n" +
			"Shapes: tiny (4 layers, hidden 64, under 1 MB), bench (24 layers, hidden 1024, about 680 MB\n" +
			"bf16) and tinyllama (TinyLlama-1.1B's shape, about 2.2 GB bf16). The text it generates is noise.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "shape", Value: "tiny", Usage: "model shape: " + strings.Join(shapeNames(), ", ")},
			&cli.StringFlag{Name: "out", Required: true, Usage: "checkpoint `DIR` to create"},
			&cli.IntFlag{Name: "layers", Usage: "override the shape's layer count (0: the shape's)"},
		},
		Action: runSynth,
	}
}

func shapeNames() []string {
	var names []string
	for n := range synth.Shapes() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func runSynth(c *cli.Context) error {
	spec, ok := synth.Shapes()[c.String("shape")]
	if !ok {
		return usageError(fmt.Errorf("--shape %q: want one of %s", c.String("shape"), strings.Join(shapeNames(), ", ")))
	}
	if n := c.Int("layers"); n < 0 || n > 1024 {
		return usageError(fmt.Errorf("--layers %d is out of range (0..1024)", n))
	} else if n > 0 {
		spec.Layers = n
	}
	out := filepath.Clean(c.String("out"))
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return usageError(fmt.Errorf("--out %s exists and is not empty", out))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	if err := hostmem.Check(fmt.Sprintf("the %s checkpoint's largest tensor", c.String("shape")), 8*int64(spec.Vocab)*int64(spec.Hidden)); err != nil {
		return err
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".synth-")
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := synth.Write(tmp, spec); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	os.Chmod(tmp, 0o755)
	os.Remove(out) // an empty directory
	if err := os.Rename(tmp, out); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("move checkpoint into place: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "wrote %s (%s, %d layers, %s)\n", out, c.String("shape"), spec.Layers, hostmem.Bytes(spec.Bytes()))
	return nil
}
