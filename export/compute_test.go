package export

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/export/synth"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

// exportedAs exports the checkpoint ckpt with the given dtype and compute
// type (with reference weights when reference is set) and returns the
// package directory.
func exportedAs(t *testing.T, ckpt, dtype, compute string, reference bool) string {
	t.Helper()
	pkg := filepath.Join(t.TempDir(), "pkg-"+dtype+"-"+compute)
	if err := Export(context.Background(), Options{In: ckpt, Out: pkg, DType: dtype, Compute: compute, MaxSeqLen: 64, Reference: reference}); err != nil {
		t.Fatal(err)
	}
	return pkg
}

// greedy decodes n greedy tokens of prompt on pkg with schedule sched.
// With resident set the CPU runs the device-memory code path
// (engine.Options.DeviceResident).
func greedy(t *testing.T, pkg string, prompts [][]int, sched string, n int, resident bool) [][]int {
	t.Helper()
	m, err := engine.Load(pkg, engine.Options{NoTokenizer: true, Threads: 1, MaxBatch: len(prompts), DeviceResident: resident})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var reqs []engine.Request
	for _, p := range prompts {
		reqs = append(reqs, engine.Request{PromptIDs: p, MaxTokens: n, IgnoreEOS: true, Schedule: sched})
	}
	res, err := m.GenerateBatch(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]int, len(res))
	for i, r := range res {
		out[i] = r.TokenIDs
	}
	return out
}

// TestComputeFP16 exports every family in fp16 compute (hidden states, KV
// cache, attention and norms in float16; docs/gpu.md) and checks what the
// GPU providers will run, on the CPU: the manifest records the compute
// type; with fp16 weights `strata verify` bounds the logits against the
// plain-Go reference with the fp16 relative tolerance and greedy decoding
// at full depth and at 1.5× gives the fp32-compute package's first 8 ids,
// at batch 1 and in a ragged batch, on host memory and on the device-memory
// code path; with int4 weights the error against the
// reference stays within a quarter of fp32 compute's.
func TestComputeFP16(t *testing.T) {
	f32 := func(s synth.Spec) synth.Spec { s.DType = "F32"; s.ProjScale = 4; return s }
	prompts := [][]int{{1, 17, 5, 33, 9, 70, 12}, {1, 42}, {1, 3, 3, 8, 60}}
	for _, tc := range []struct {
		name string
		spec synth.Spec
	}{
		{"llama2", f32(synth.Llama2Like())},
		{"qwen2", f32(synth.Qwen2Like())},
		{"mistral", f32(synth.MistralLike())},
		{"bloom", f32(synth.BloomLike())},
	} {
		for _, dtype := range []string{graph.DTypeFP16, graph.DTypeInt4} {
			t.Run(tc.name+"/"+dtype, func(t *testing.T) {
				spec := tc.spec
				if dtype == graph.DTypeInt4 {
					spec.ProjScale = 0 // int4's error bound below holds for unamplified weights
				}
				ckpt := checkpoint(t, spec)
				half := exportedAs(t, ckpt, dtype, manifest.ComputeFP16, true)
				m, err := manifest.Load(half)
				if err != nil {
					t.Fatal(err)
				}
				if m.ComputeType != manifest.ComputeFP16 {
					t.Fatalf("manifest compute_type %q", m.ComputeType)
				}
				rep, err := verifyPackage(t, half, VerifyOptions{Steps: 8})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("verify: max |Δ| %.3g, rel %.3g, agreement %.2f", rep.MaxAbs, rep.MaxRel, rep.Agreement)
				single := exportedAs(t, ckpt, dtype, manifest.ComputeFP32, true)
				if dtype == graph.DTypeInt4 {
					// MatMulNBits quantizes activations to 8 bits (accuracy_level
					// 4) in both compute types, on differently rounded values, so
					// greedy ids part at near-ties; the error against the fp32
					// reference must stay that of fp32 compute.
					rep32, err := verifyPackage(t, single, VerifyOptions{Steps: 8})
					if err != nil {
						t.Fatal(err)
					}
					if rep.MaxRel > 1.25*rep32.MaxRel+0.02 || rep.MaxRel == 0 {
						t.Errorf("int4 fp16 compute: max rel %.3g against the reference, fp32 compute %.3g", rep.MaxRel, rep32.MaxRel)
					}
					return
				}
				if !rep.Pass || rep.Tol != DefaultTolFP16 || rep.MaxAbs == 0 {
					t.Fatalf("verify: %+v", rep)
				}
				for _, sched := range []string{"uls:1", "balanced:1.5"} {
					want := greedy(t, single, prompts, sched, 8, false)
					got := greedy(t, half, prompts, sched, 8, false)
					resident := greedy(t, half, prompts, sched, 8, true)
					for i := range want {
						if !slices.Equal(got[i], want[i]) || !slices.Equal(resident[i], want[i]) {
							t.Errorf("%s prompt %d: fp16 compute %v (device path %v), fp32 compute %v", sched, i, got[i], resident[i], want[i])
						}
					}
					one := greedy(t, half, prompts[:1], sched, 8, false)
					if !slices.Equal(one[0], got[0]) {
						t.Errorf("%s: batch 1 %v, batch %d %v", sched, one[0], len(prompts), got[0])
					}
				}
			})
		}
	}
}

// TestComputeFP16Refused checks that fp16 compute over fp32 weights and an
// unknown compute type are refused before anything is written.
func TestComputeFP16Refused(t *testing.T) {
	ckpt := checkpoint(t, synth.Llama2Like())
	for _, tc := range []struct{ dtype, compute, want string }{
		{graph.DTypeFP32, manifest.ComputeFP16, "needs dtype fp16 or int4"},
		{graph.DTypeInt4, "bf16", `compute type "bf16"`},
	} {
		out := filepath.Join(t.TempDir(), "pkg")
		err := Export(context.Background(), Options{In: ckpt, Out: out, DType: tc.dtype, Compute: tc.compute})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s/%s: error %v, want %q", tc.dtype, tc.compute, err, tc.want)
		}
		if matches, _ := filepath.Glob(out + "*"); len(matches) != 0 {
			t.Errorf("%s/%s left %v behind", tc.dtype, tc.compute, matches)
		}
	}
}

// TestCheckPlacementAtLoad checks engine.CheckPlacement, which Load and the
// CLI run before opening a package on a GPU: an fp32-compute package is
// refused on cuda with the GroupQueryAttention node and the export that
// fixes it named; the fp16-compute export of the same checkpoint places on
// cuda and webgpu; the CPU is never refused.
func TestCheckPlacementAtLoad(t *testing.T) {
	ckpt := checkpoint(t, synth.Llama2Like())
	single := exportedAs(t, ckpt, graph.DTypeInt4, manifest.ComputeFP32, true)
	half := exportedAs(t, ckpt, graph.DTypeInt4, manifest.ComputeFP16, true)
	err := engine.CheckPlacement(single, "cuda")
	var pe *engine.PlacementError
	if !errors.As(err, &pe) || pe.Misses == 0 || pe.ORTVersion == "" {
		t.Fatalf("fp32 compute on cuda: %v", err)
	}
	for _, want := range []string{"cannot run on cuda", "GroupQueryAttention", "float", "--dtype int4 --compute fp16"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	for _, tc := range []struct{ pkg, device string }{{half, "cuda"}, {half, "webgpu"}, {single, "cpu"}, {half, "cpu"}} {
		if err := engine.CheckPlacement(tc.pkg, tc.device); err != nil {
			t.Errorf("%s on %s: %v", filepath.Base(tc.pkg), tc.device, err)
		}
	}
	if err := engine.CheckPlacement(half, "tpu"); err == nil {
		t.Error("unknown device accepted")
	}
}

// TestComputeFP16BuiltIn decodes translations with the built-in
// checkpoints (models/default) exported in fp16 weights, once computing in
// float32 and once in float16: every greedy token of every prompt is equal,
// at full depth and at the checkpoint's fine-tuned ratio.
func TestComputeFP16BuiltIn(t *testing.T) {
	prompts := []string{
		"In the beginning God created the heaven and the earth.",
		"The LORD is my shepherd; I shall not want.",
		"Jesus wept.",
		"And God said, Let there be light: and there was light.",
	}
	for _, name := range []string{"base", "uls2"} {
		t.Run(name, func(t *testing.T) {
			ckpt := filepath.Join("..", "models", "default", name)
			var ids [2][][]int
			for i, compute := range []string{manifest.ComputeFP32, manifest.ComputeFP16} {
				pkg := exportedAs(t, ckpt, graph.DTypeFP16, compute, true)
				m, err := engine.Load(pkg, engine.Options{Threads: 1, MaxBatch: len(prompts)})
				if err != nil {
					t.Fatal(err)
				}
				for _, sched := range []string{"uls:1", "uls:2"} {
					var reqs []engine.Request
					for _, p := range prompts {
						reqs = append(reqs, engine.Request{Prompt: m.Manifest.FormatPrompt(p), MaxTokens: 48, Schedule: sched})
					}
					res, err := m.GenerateBatch(context.Background(), reqs, nil)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range res {
						ids[i] = append(ids[i], r.TokenIDs)
					}
				}
				m.Close()
			}
			for i := range ids[0] {
				if len(ids[0][i]) < 3 {
					t.Errorf("request %d decoded only %v", i, ids[0][i])
				}
				if !slices.Equal(ids[0][i], ids[1][i]) {
					t.Errorf("request %d: fp16 compute %v, fp32 compute %v", i, ids[1][i], ids[0][i])
				}
			}
		})
	}
}

// TestVerifyReportJSON checks that every report strata verify can write is
// JSON: an int4 package (not judged, so no bound) and a package compared
// with a zero tolerance (any difference is infinitely over it).
func TestVerifyReportJSON(t *testing.T) {
	ckpt := checkpoint(t, synth.Llama2Like())
	for _, tc := range []struct {
		dtype string
		tol   *Tolerance
	}{{graph.DTypeInt4, nil}, {graph.DTypeFP32, &Tolerance{}}} {
		pkg := exportedAs(t, ckpt, tc.dtype, manifest.ComputeFP32, true)
		rep, err := verifyPackage(t, pkg, VerifyOptions{Steps: 2, Tolerance: tc.tol})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(rep); err != nil {
			t.Errorf("%s: report %+v is not JSON: %v", tc.dtype, rep, err)
		}
		if tc.tol != nil && (rep.Pass || rep.Err() == nil) {
			t.Errorf("%s: a zero tolerance passed: %+v", tc.dtype, rep)
		}
	}
}
