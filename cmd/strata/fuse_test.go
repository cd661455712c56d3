package main

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/export"
	"github.com/strata-llm/strata/export/synth"
)

// fuseSchedules are the schedules fused decoding is checked on: full depth,
// every ULS ratio the test packages allow, a fractional balanced ratio and
// the top rule.
var fuseSchedules = []struct {
	spec    string
	speedup float64
}{{"uls", 1}, {"uls", 2}, {"uls", 3}, {"balanced", 1.5}, {"top", 2}}

// fuseRun decodes greedily on pkg with fusion on and off (on host memory
// or, with resident, on the device-memory code path) for every schedule:
// each prompt alone, then all of them as one ragged batch whose rows stop
// at different lengths (continuous batching). It returns, per setting,
// the ids of every run in order.
func fuseRun(t *testing.T, pkg string, resident bool, prompts [][]int) (fused, perLayer [][]int) {
	t.Helper()
	for _, noFuse := range []bool{false, true} {
		m, err := engine.Load(pkg, engine.Options{Threads: 1, NoTokenizer: true, MaxBatch: len(prompts), Fuse: testFuseMode(noFuse), DeviceResident: resident})
		if err != nil {
			t.Fatal(err)
		}
		var ids [][]int
		for _, s := range fuseSchedules {
			var reqs []engine.Request
			for i, p := range prompts {
				req := engine.Request{PromptIDs: p, MaxTokens: 6 + 3*i, IgnoreEOS: true, Schedule: s.spec, Speedup: s.speedup}
				reqs = append(reqs, req)
				res, err := m.Generate(context.Background(), req)
				if err != nil {
					t.Fatalf("%s:%g: %v", s.spec, s.speedup, err)
				}
				ids = append(ids, res.TokenIDs)
			}
			res, err := m.GenerateBatch(context.Background(), reqs, nil)
			if err != nil {
				t.Fatalf("%s:%g batch: %v", s.spec, s.speedup, err)
			}
			for _, r := range res {
				ids = append(ids, r.TokenIDs)
			}
		}
		m.Close()
		if noFuse {
			perLayer = ids
		} else {
			fused = ids
		}
	}
	return fused, perLayer
}

// TestFusedDecodeMatchesPerLayer: decoding through one fused graph per
// step gives the per-layer chain's greedy ids for every schedule, both
// families, alone and in ragged batches, on host memory and on the
// device-memory code path.
func TestFusedDecodeMatchesPerLayer(t *testing.T) {
	prompts := [][]int{{1, 17, 5, 33, 9, 70, 12}, {1, 42}, {1, 3, 3, 3, 100, 64, 12, 17, 19, 23, 29}}
	llama := synth.Llama2Like()
	llama.Layers = 6
	bloom := synth.BloomLike()
	bloom.Layers, bloom.ProjScale = 6, 4
	for _, s := range []synth.Spec{llama, bloom} {
		t.Run(string(s.Family), func(t *testing.T) {
			ckpt := filepath.Join(t.TempDir(), "ckpt")
			if err := synth.Write(ckpt, s); err != nil {
				t.Fatal(err)
			}
			pkg := filepath.Join(t.TempDir(), "pkg")
			if err := export.Export(context.Background(), export.Options{In: ckpt, Out: pkg, DType: "fp32", MaxSeqLen: 64}); err != nil {
				t.Fatal(err)
			}
			for _, resident := range []bool{false, true} {
				fused, perLayer := fuseRun(t, pkg, resident, prompts)
				if !slices.EqualFunc(fused, perLayer, slices.Equal) {
					t.Errorf("resident=%v: fused ids\n%v\nper-layer ids\n%v", resident, fused, perLayer)
				}
			}
		})
	}
}

// TestFusedDecodeBuiltInModel: on the built-in checkpoints (trained
// weights, whose greedy ids follow small logit differences) fused decoding
// gives the per-layer ids.
func TestFusedDecodeBuiltInModel(t *testing.T) {
	prompts := [][]int{{1, 40, 41, 42, 43, 44}, {1, 7}, {1, 90, 12, 55, 31, 8, 77, 5, 60}}
	for _, ckpt := range []string{"base", "uls2"} {
		t.Run(ckpt, func(t *testing.T) {
			pkg := filepath.Join(t.TempDir(), "pkg")
			if err := export.Export(context.Background(), export.Options{In: filepath.Join("../../models/default", ckpt), Out: pkg, DType: "fp32"}); err != nil {
				t.Fatal(err)
			}
			fused, perLayer := fuseRun(t, pkg, false, prompts)
			if !slices.EqualFunc(fused, perLayer, slices.Equal) {
				t.Errorf("fused ids\n%v\nper-layer ids\n%v", fused, perLayer)
			}
		})
	}
}

// TestFusedDecodeLogits: on int4 and fp16 packages, whose kernels may sum
// in another order once fused, every full-depth decode step's logits (a
// Forward fed one token at a time) agree with the per-layer chain's within
// the verification tolerance of the compute type: fp32's for int4 weights
// (both paths read the same quantised weights), fp16's for fp16.
func TestFusedDecodeLogits(t *testing.T) {
	s := synth.Llama2Like()
	s.Layers = 6
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if err := synth.Write(ckpt, s); err != nil {
		t.Fatal(err)
	}
	tokens := []int{1, 17, 5, 33, 9, 70, 12, 8, 44, 3}
	for _, tc := range []struct {
		dtype string
		tol   export.Tolerance
	}{{"int4", export.DefaultTolFP32}, {"fp16", export.DefaultTolFP16}} {
		t.Run(tc.dtype, func(t *testing.T) {
			pkg := filepath.Join(t.TempDir(), "pkg")
			if err := export.Export(context.Background(), export.Options{In: ckpt, Out: pkg, DType: tc.dtype, MaxSeqLen: 64}); err != nil {
				t.Fatal(err)
			}
			var logits [2][][]float32
			for k, noFuse := range []bool{false, true} {
				m, err := engine.Load(pkg, engine.Options{Threads: 1, NoTokenizer: true, Fuse: testFuseMode(noFuse)})
				if err != nil {
					t.Fatal(err)
				}
				f, err := m.NewForward()
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range tokens {
					l, err := f.Step([]int{id})
					if err != nil {
						t.Fatal(err)
					}
					logits[k] = append(logits[k], l[0])
				}
				f.Close()
				m.Close()
			}
			for i := range logits[0] {
				var maxRef, maxDiff float64
				for j, v := range logits[1][i] {
					maxRef = max(maxRef, math.Abs(float64(v)))
					maxDiff = max(maxDiff, math.Abs(float64(logits[0][i][j]-v)))
				}
				if limit := tc.tol.Atol + tc.tol.Rtol*maxRef; maxDiff > limit {
					t.Errorf("step %d: max |Δ| %.3g over %.3g", i, maxDiff, limit)
				}
			}
		})
	}
}

// testFuseMode is the engine's fusion setting for a test run with fusion
// off or forced on (the CPU's default is off).
func testFuseMode(off bool) engine.FuseMode {
	if off {
		return engine.FuseOff
	}
	return engine.FuseOn
}
