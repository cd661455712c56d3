// Command mkpkg writes the deterministic synthetic checkpoint the benchmarks
// run on (a realistic LLaMA shape with random weights) and exports it as
// strata packages, one per dtype, each with model_full.onnx for the
// monolithic comparison. It calls the same export.Export as `strata export`.
//
//	go run ./scripts/bench/mkpkg -dir /tmp/strata-bench -dtypes fp32,int4
//
// writes DIR/hf (the checkpoint) and DIR/<dtype> (the packages), skipping
// any that already exist.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-llm/strata/export"
	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/export/synth"
)

func main() {
	dir := flag.String("dir", "", "output directory (required)")
	dtypes := flag.String("dtypes", "fp32,int4", "package dtypes to export")
	maxSeq := flag.Int("max-seq-len", 512, "KV buffer length of the packages")
	block := flag.Int("int4-block-size", 0, "int4 block size (0: the exporter's default)")
	layers := flag.Int("layers", 0, "override the layer count (0: the shape's)")
	computes := flag.String("computes", "fp32", "compute types to export each dtype with (fp32, fp16): fp32 packages go to DIR/DTYPE, fp16 ones to DIR/DTYPE-fp16 (fp32 weights are exported in fp32 compute only)")
	shape := flag.String("shape", "bench", "model shape: bench (24 layers, hidden 1024), tinyllama (22 layers, hidden 2048, GQA 32:4) or bloom (BLOOM, 24 layers, hidden 1024)")
	flag.Parse()
	if err := run(*dir, *shape, strings.Split(*dtypes, ","), strings.Split(*computes, ","), *maxSeq, *layers, *block); err != nil {
		fmt.Fprintln(os.Stderr, "mkpkg:", err)
		os.Exit(1)
	}
}

// bloomSpec is bloom-560m's layer shape (24 layers, hidden 1024, 16 heads
// of 64, ALiBi, tied head) with the benchmark's 32000-token vocabulary
// instead of BLOOM's 250880.
func bloomSpec() synth.Spec {
	return synth.Spec{Family: synth.Bloom, Layers: 24, Hidden: 1024, Heads: 16, KVHeads: 16, Intermediate: 4096,
		Vocab: 32000, NormEps: 1e-5, Tied: true, DType: safetensors.BF16, Shards: 2, Seed: 20240410, BOSID: 1, EOSIDs: []int{2}}
}

func run(dir, shape string, dtypes, computes []string, maxSeq, layers, block int) error {
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	var spec synth.Spec
	switch shape {
	case "bench":
		spec = synth.Bench()
	case "tinyllama":
		spec = synth.TinyLlama()
	case "bloom":
		spec = bloomSpec()
	default:
		return fmt.Errorf("-shape %q: want bench, tinyllama or bloom", shape)
	}
	if layers > 0 {
		spec.Layers = layers
	}
	hfDir := filepath.Join(dir, "hf")
	if _, err := os.Stat(filepath.Join(hfDir, "config.json")); err != nil {
		slog.Info("writing synthetic checkpoint", "dir", hfDir, "bytes", spec.Bytes())
		if err := synth.Write(hfDir, spec); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
	}
	for _, dt := range dtypes {
		for _, compute := range computes {
			if compute == "fp16" && dt == "fp32" {
				continue
			}
			out := filepath.Join(dir, dt)
			if compute != "fp32" {
				out += "-" + compute
			}
			if _, err := os.Stat(filepath.Join(out, "manifest.json")); err == nil {
				slog.Info("package exists", "dir", out)
				continue
			}
			slog.Info("exporting", "dtype", dt, "compute", compute, "out", out)
			err := export.Export(context.Background(), export.Options{In: hfDir, Out: out, DType: dt, Compute: compute, MaxSeqLen: maxSeq, Full: true, Int4Block: int4Block(dt, block)})
			if err != nil {
				return fmt.Errorf("export %s (compute %s): %w", dt, compute, err)
			}
		}
	}
	return nil
}

// int4Block is the block size for a package of dtype dt: block for int4,
// 0 otherwise.
func int4Block(dt string, block int) int {
	if dt != "int4" {
		return 0
	}
	return block
}
