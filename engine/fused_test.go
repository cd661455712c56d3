package engine

import (
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
	"slices"
	"testing"
)

// TestFusedSessions: a decode step opens one fused session per schedule it
// decodes with, keyed by the schedule's layers; a request that never
// decodes (its one token comes from prefill) opens none, and FuseOff — or
// FuseAuto, the default, on the CPU — opens none at all.
func TestFusedSessions(t *testing.T) {
	dir, _, _ := testPackage(t)
	for _, mode := range []FuseMode{FuseOn, FuseOff, FuseAuto} {
		noFuse := mode != FuseOn
		m, err := Load(dir, Options{NoTokenizer: true, Threads: 1, Fuse: mode})
		if err != nil {
			t.Fatal(err)
		}
		if noFuse {
			if m.g.fusion != nil {
				t.Errorf("mode %d on the CPU: graphs prepared fusion", mode)
			}
		} else {
			if _, err := m.Generate(t.Context(), Request{PromptIDs: []int{1, 5, 9}, MaxTokens: 1, Schedule: "uls", Speedup: 2}); err != nil {
				t.Fatal(err)
			}
			if n := len(m.g.fusion.sessions); n != 0 {
				t.Errorf("a prefill-only request opened %d fused sessions", n)
			}
			var want []string
			for _, speedup := range []float64{1, 2, 3, 2} {
				res, err := m.Generate(t.Context(), Request{PromptIDs: []int{1, 5, 9}, MaxTokens: 4, Schedule: "uls", Speedup: speedup})
				if err != nil {
					t.Fatal(err)
				}
				if k := layersKey(res.KeptLayers); !slices.Contains(want, k) {
					want = append(want, k)
				}
			}
			var got []string
			for k := range m.g.fusion.sessions {
				got = append(got, k)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("fused sessions for layers %q, want %q", got, want)
			}
		}
		m.Close()
	}
}

// TestSharedWeightsFP16Compute: an fp16-compute package whose norm weights
// live in the external data file (hidden 512: 1 KiB of float16 each) opens
// and decodes on the CPU with fusion on. ONNX Runtime refuses to share such
// a weight with its float16 layer-norm kernel, so those graphs hold their
// weights themselves.
func TestSharedWeightsFP16Compute(t *testing.T) {
	cfg := llama.Config{ModelType: "llama", NumLayers: 2, HiddenSize: 512, NumHeads: 8, NumKVHeads: 2, HeadDim: 64,
		IntermediateSize: 64, VocabSize: 97, MaxPositionEmbeddings: 32, RopeTheta: 10000, RMSNormEps: 1e-5, BOSID: 1}
	dir := t.TempDir()
	if err := writePackageAs(dir, cfg, llama.RandomWeights(cfg, 7), llama.GraphOptions{DType: "fp16", Compute: manifest.ComputeFP16, MaxSeqLen: 32}); err != nil {
		t.Fatal(err)
	}
	var want []int
	for _, mode := range []FuseMode{FuseOff, FuseOn} {
		m, err := Load(dir, Options{NoTokenizer: true, Threads: 1, Fuse: mode})
		if err != nil {
			t.Fatalf("fuse mode %d: %v", mode, err)
		}
		res, err := m.Generate(t.Context(), Request{PromptIDs: []int{1, 5, 9}, MaxTokens: 4})
		m.Close()
		if err != nil {
			t.Fatalf("fuse mode %d: %v", mode, err)
		}
		if want == nil {
			want = res.TokenIDs
		} else if !slices.Equal(res.TokenIDs, want) {
			t.Errorf("fused ids %v, per-layer %v", res.TokenIDs, want)
		}
	}
}
