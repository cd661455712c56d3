package placement

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/export"
	"github.com/strata-llm/strata/export/synth"
	"github.com/strata-llm/strata/models/manifest"
)

// TestExportedPackages checks what strata's exporter writes: this test's
// job is the exporter's output, so it exports synthetic checkpoints
// through the export package (which engine code never imports). Every
// family in every weight dtype and compute type places on the CPU. On CUDA
// float32 activations leave exactly one node per layer graph without a
// kernel, GroupQueryAttention, whose CUDA kernel takes float16 and
// bfloat16 only; float16 activations place. On WebGPU every family
// places in both compute types (BLOOM's ALiBi bias is built without the
// int64 shape arithmetic WebGPU has no kernels for).
func TestExportedPackages(t *testing.T) {
	small := func(s synth.Spec) synth.Spec {
		s.Layers = 2
		return s
	}
	for _, family := range []struct {
		name string
		spec synth.Spec
	}{
		{"llama", small(synth.Llama2Like())},
		{"bloom", small(synth.BloomLike())},
	} {
		ckpt := filepath.Join(t.TempDir(), "ckpt")
		if err := synth.Write(ckpt, family.spec); err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct{ dtype, compute string }{
			{"fp32", "fp32"}, {"fp16", "fp32"}, {"int4", "fp32"}, {"fp16", "fp16"}, {"int4", "fp16"},
		} {
			t.Run(family.name+"/"+p.dtype+"/compute-"+p.compute, func(t *testing.T) {
				pkg := filepath.Join(t.TempDir(), "pkg")
				opts := export.Options{In: ckpt, Out: pkg, DType: p.dtype, Compute: p.compute, MaxSeqLen: 32}
				if err := export.Export(context.Background(), opts); err != nil {
					t.Fatal(err)
				}
				m, err := manifest.Load(pkg)
				if err != nil {
					t.Fatal(err)
				}
				layers := family.spec.Layers
				graphs := 2 + layers // embed, layers, head
				if m.Files.HeadLast != "" {
					graphs++
				}

				cpu, err := Check(pkg, "cpu")
				if err != nil {
					t.Fatal(err)
				}
				if !cpu.OK() || cpu.Graphs != graphs || cpu.Nodes == 0 {
					t.Errorf("cpu: %d graphs, %d nodes, misses %v; want %d graphs, none missing", cpu.Graphs, cpu.Nodes, cpu.Misses, graphs)
				}
				if want := fmt.Sprintf("every node of %d graphs has a kernel on cpu (ORT 1.30.0)", graphs); !strings.HasPrefix(cpu.Summary(), want) {
					t.Errorf("cpu summary %q, want it to start %q", cpu.Summary(), want)
				}
				if fp16 := p.compute == "fp16"; fp16 != (cpu.CastFallbacks > 0) {
					t.Errorf("cpu: %d nodes run between inserted Casts; want some only for float16 activations", cpu.CastFallbacks)
				}

				cuda, err := Check(pkg, "cuda")
				if err != nil {
					t.Fatal(err)
				}
				if p.compute == "fp16" {
					if !cuda.OK() {
						t.Errorf("cuda misses %v, want none", cuda.Misses)
					}
				} else {
					expectOnePerLayer(t, cuda, layers, "GroupQueryAttention", "type float of input query is not allowed for T (bfloat16, float16)")
					if want := fmt.Sprintf("of %d graphs have no kernel on cuda (ORT 1.29.0)", graphs); !strings.Contains(cuda.Summary(), want) {
						t.Errorf("cuda summary %q, want it to contain %q", cuda.Summary(), want)
					}
				}

				webgpu, err := Check(pkg, "webgpu")
				if err != nil {
					t.Fatal(err)
				}
				if !webgpu.OK() {
					t.Errorf("webgpu misses %v, want none", webgpu.Misses)
				}
			})
		}
	}
}

// expectOnePerLayer checks that r misses exactly one node, of op, in each
// layer graph, for reason.
func expectOnePerLayer(t *testing.T, r *Report, layers int, op, reason string) {
	t.Helper()
	if len(r.Misses) != layers {
		t.Fatalf("%s: %d misses, want %d (one %s per layer): %v", r.Device, len(r.Misses), layers, op, r.Misses)
	}
	for i, m := range r.Misses {
		if m.Graph != fmt.Sprintf("layer_%02d.onnx", i) || m.Op != op || m.Reason != reason || m.Node == "" {
			t.Errorf("%s miss %d: %s; want %s in layer_%02d.onnx: %s", r.Device, i, m, op, i, reason)
		}
	}
}
