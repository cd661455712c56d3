package export

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/export/synth"
	"github.com/strata-llm/strata/models/manifest"
)

// exported writes a synthetic checkpoint and exports it, returning the
// checkpoint and package directories.
func exported(t *testing.T, s synth.Spec, dtype string, reference bool) (ckpt, pkg string) {
	t.Helper()
	ckpt = checkpoint(t, s)
	return ckpt, exportedAs(t, ckpt, dtype, manifest.ComputeFP32, reference)
}

func TestVerify(t *testing.T) {
	bf16 := synth.Llama2Like()
	bf16.DType = "BF16"
	bf16.Shards = 2
	// fp16 exports start from F32 checkpoints: BF16 and F16 weights are
	// exact in half precision and would hide the rounding.
	f32 := func(s synth.Spec) synth.Spec { s.DType = "F32"; return s }
	tests := []struct {
		name  string
		spec  synth.Spec
		dtype string
		bound Tolerance
	}{
		{"llama2 fp32", synth.Llama2Like(), "fp32", DefaultTolFP32},
		{"qwen2 fp32", synth.Qwen2Like(), "fp32", DefaultTolFP32},
		{"mistral fp32", synth.MistralLike(), "fp32", DefaultTolFP32},
		{"bloom fp32", synth.BloomLike(), "fp32", DefaultTolFP32},
		{"bloom f32 to fp16", synth.BloomLike(), "fp16", DefaultTolFP16},
		{"llama2 bf16 sharded fp32", bf16, "fp32", DefaultTolFP32},
		{"qwen2 f32 to fp16", f32(synth.Qwen2Like()), "fp16", DefaultTolFP16},
		{"mistral f32 to fp16", f32(synth.MistralLike()), "fp16", DefaultTolFP16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, pkg := exported(t, tc.spec, tc.dtype, true)
			var seen int
			rep, err := verifyPackage(t, pkg, VerifyOptions{Steps: 8, OnStep: func(StepReport) { seen++ }})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Steps) != 9 || seen != 9 || rep.Steps[0].Positions < 2 || rep.Steps[8].Positions != 1 {
				t.Fatalf("steps %+v (callbacks %d)", rep.Steps, seen)
			}
			if rep.Metric != "atol+rtol" || rep.Tol != tc.bound || !rep.Pass || rep.Err() != nil {
				t.Fatalf("report %+v", rep)
			}
			if rep.Worst > 1 {
				t.Fatalf("max |Δ| %g is %g times the tolerance %s", rep.MaxAbs, rep.Worst, tc.bound)
			}
			if rep.MaxAbs == 0 {
				t.Fatal("zero difference: the comparison compared nothing")
			}
			t.Logf("%s: max abs %.3g, max rel %.3g, agreement %.2f", tc.name, rep.MaxAbs, rep.MaxRel, rep.Agreement)
		})
	}
}

// TestVerifyInt4Peaked exports a peaked model as int4 and fp32 and reports
// how often int4's greedy tokens agree with the fp32 reference.
func TestVerifyInt4Peaked(t *testing.T) {
	s := synth.Llama2Like()
	s.Peaked = true
	_, pkg := exported(t, s, "int4", true)
	rep, err := verifyPackage(t, pkg, VerifyOptions{Steps: 8})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Metric != "none" || !rep.Pass {
		t.Fatalf("int4 is report-only by default: %+v", rep)
	}
	t.Logf("int4 vs fp32 reference (peaked): greedy agreement %.2f over %d steps, max abs %.3g, max rel %.3g", rep.Agreement, len(rep.Steps), rep.MaxAbs, rep.MaxRel)
	if rep.Agreement < 0.99 {
		t.Errorf("int4 greedy agreement %.2f on a peaked model", rep.Agreement)
	}
	for _, st := range rep.Steps[1:] {
		if want := s.Successor(rep.Steps[st.Step-1].RefToken); st.RefToken != want {
			t.Errorf("step %d: reference token %d, the peaked model predicts %d", st.Step, st.RefToken, want)
		}
	}
	// A tolerance turns int4 into a relative check that this one fails.
	rep, err = verifyPackage(t, pkg, VerifyOptions{Steps: 2, Tol: 1e-9})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || rep.Metric != "atol+rtol" || rep.Tol != (Tolerance{Rtol: 1e-9}) || rep.Err() == nil {
		t.Fatalf("tiny tolerance passed: %+v", rep)
	}
}

func TestVerifyCheckpoints(t *testing.T) {
	ckpt, pkg := exported(t, synth.MistralLike(), "fp32", false)
	if _, err := verifyPackage(t, pkg, VerifyOptions{}); err == nil || !errors.Is(err, ErrNoReference) {
		t.Fatalf("no reference: err = %v", err)
	}
	rep, err := verifyPackage(t, pkg, VerifyOptions{Checkpoint: ckpt, PromptIDs: []int{1, 5, 9}, Steps: 3})
	if err != nil || !rep.Pass || len(rep.Steps) != 4 || rep.Steps[0].Positions != 3 {
		t.Fatalf("HF checkpoint: %+v %v", rep, err)
	}
	// Weights of another seed give other logits: the check must fail.
	other := synth.MistralLike()
	other.Seed = 99
	rep, err = verifyPackage(t, pkg, VerifyOptions{Checkpoint: checkpoint(t, other), Steps: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || rep.Err() == nil || rep.MaxAbs < 1e-2 {
		t.Fatalf("wrong weights passed: %+v", rep)
	}
	// A checkpoint of another model is refused.
	if _, err := verifyPackage(t, pkg, VerifyOptions{Checkpoint: checkpoint(t, synth.Llama2Like())}); err == nil {
		t.Fatal("mismatched model: no error")
	}
	for _, o := range []VerifyOptions{
		{Checkpoint: ckpt, PromptIDs: []int{100000}},
		{Checkpoint: ckpt, Steps: 1000},
	} {
		if _, err := verifyPackage(t, pkg, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestVerifyLlama2c(t *testing.T) {
	bin := llama2cFile(t)
	pkg := filepath.Join(t.TempDir(), "pkg")
	if err := Export(context.Background(), Options{In: bin, Out: pkg, MaxSeqLen: 64}); err != nil {
		t.Fatal(err)
	}
	rep, err := verifyPackage(t, pkg, VerifyOptions{Checkpoint: bin, Steps: 8})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || rep.MaxAbs > 1e-4 {
		t.Fatalf("llama2.c: %+v", rep)
	}
}

// TestVerifyReferenceWithoutConfig checks a reference file without the
// config metadata: bias and tying are read off the tensors present.
func TestVerifyReferenceWithoutConfig(t *testing.T) {
	_, pkg := exported(t, synth.Qwen2Like(), "fp32", true)
	c, err := safetensors.OpenCheckpoint(filepath.Join(pkg, ReferenceFile))
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, name := range c.Names() {
		data, shape, err := c.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: data})
	}
	c.Close()
	bare := filepath.Join(t.TempDir(), "bare.safetensors")
	if err := safetensors.WriteFile(bare, ts, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := verifyPackage(t, pkg, VerifyOptions{Checkpoint: bare, Steps: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || rep.MaxAbs > 1e-4 {
		t.Fatalf("report %+v", rep)
	}
}

// verifyPackage verifies pkg through the engine's runner, as `strata verify` does.
func verifyPackage(t *testing.T, pkg string, opts VerifyOptions) (Report, error) {
	t.Helper()
	m, err := engine.Load(pkg, engine.Options{Schedule: "uls", Speedup: 1, NoTokenizer: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	run, err := m.NewForward()
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	return Verify(context.Background(), pkg, run, opts)
}

// TestToleranceFollowsLogitScale checks the comparison against max |Δ| ≤
// atol + rtol·max |ref|: rounding differences of large logits (as an fp32
// BLOOM-shaped checkpoint shows, max |Δ| 1.6e-4 at max |ref| about 40)
// pass the fp32 default, a wrong logit does not, and a caller's tolerance
// replaces the default.
func TestToleranceFollowsLogitScale(t *testing.T) {
	ref := [][]float32{{40, -12, 3.5, 0.25}, {-38, 7, 1, 0}}
	shift := func(d float32, at int) [][]float32 {
		out := [][]float32{append([]float32(nil), ref[0]...), append([]float32(nil), ref[1]...)}
		out[1][at] += d
		return out
	}
	for _, tc := range []struct {
		name string
		got  [][]float32
		tol  Tolerance
		pass bool
	}{
		{"rounding of large logits", shift(1.6e-4, 0), DefaultTolFP32, true},
		{"the same under a fixed 1e-4", shift(1.6e-4, 0), Tolerance{Atol: 1e-4}, false},
		{"a wrong logit", shift(1e-2, 2), DefaultTolFP32, false},
		{"a looser tolerance for float16 compute", shift(1e-2, 2), Tolerance{Atol: 1e-3, Rtol: 1e-3}, true},
		{"identical", shift(0, 0), Tolerance{}, true},
		{"NaN", shift(float32(math.NaN()), 1), Tolerance{Atol: 1, Rtol: 1}, false},
	} {
		sr := compare(tc.got, ref, tc.tol)
		if pass := sr.Worst <= 1; pass != tc.pass {
			t.Errorf("%s: worst %.3g (max |Δ| %.3g) under %s: pass %v, want %v", tc.name, sr.Worst, sr.MaxAbs, tc.tol, pass, tc.pass)
		}
	}
}
