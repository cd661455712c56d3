package llama

import (
	"cmp"
	"fmt"
	"testing"

	"github.com/strata-llm/strata/engine/ort/orttest"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

const testMaxSeq = 32

// testConfigs are small random models covering the family's variants.
func testConfigs() []Config {
	base := Config{ModelType: "llama", NumLayers: 3, HiddenSize: 64, NumHeads: 4, NumKVHeads: 4, HeadDim: 16,
		IntermediateSize: 48, VocabSize: 64, MaxPositionEmbeddings: 128, RopeTheta: 10000, RMSNormEps: 1e-5, BOSID: 1, EOSIDs: []int{2}}
	mistral := base
	mistral.ModelType, mistral.NumKVHeads, mistral.IntermediateSize, mistral.VocabSize = "mistral", 2, 40, 50
	qwen := base
	qwen.ModelType, qwen.NumLayers, qwen.NumKVHeads, qwen.AttentionBias, qwen.TieWordEmbeddings, qwen.RopeTheta = "qwen2", 2, 2, true, true, 1e6
	headDim := base
	headDim.HiddenSize, headDim.NumKVHeads, headDim.HeadDim, headDim.IntermediateSize = 40, 1, 16, 56
	llama3 := base
	llama3.NumHeads, llama3.NumKVHeads, llama3.HeadDim = 2, 1, 16
	llama3.RopeScaling = &manifest.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16}
	return []Config{base, mistral, qwen, headDim, llama3}
}

var testNames = []string{"llama-mha", "mistral-gqa", "qwen2-bias-tied", "headdim16-d40", "llama3-rope"}

// writePackage writes embed, every layer and head into a temp dir.
func writePackage(t *testing.T, cfg Config, src WeightSource, opts GraphOptions) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := WriteEmbed(dir, cfg, src, opts); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < cfg.NumLayers; i++ {
		if _, err := WriteLayer(dir, cfg, i, src, opts); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := WriteHead(dir, cfg, src, opts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGraphsMatchReference runs each dtype's graphs through ORT (prefill of
// five tokens at full depth, then six decode steps through the first and
// last layer only) and compares every position's logits with the
// reference. Against a reference over the weights as stored, every dtype
// must match to fp32 accuracy (int4 looser: MatMulNBits with
// accuracy_level 4 quantizes activations to int8); against the fp32
// reference, fp16 and int4 must stay close.
func TestGraphsMatchReference(t *testing.T) {
	prompt := []int{1, 17, 5, 33, 9}
	decode := []int{4, 22, 8, 30, 11, 3}
	dtypes := []struct {
		dtype           string
		block           int     // int4 block size (0: the default)
		tolStored       float64 // absolute, vs the reference over stored weights
		tolStoredRel    float64 // relative to max |logit|, added to tolStored
		tolFP32Relative float64 // relative to max |logit|, vs the fp32 reference
	}{
		{DTypeFP32, 0, 1e-4, 0, 1e-4},
		{DTypeFP16, 0, 1e-4, 0, 0.01},
		{DTypeInt4, 0, 0.01, 0.02, 0.25},
		{DTypeInt4, 128, 0.01, 0.02, 0.35},
	}
	for ci, cfg := range testConfigs() {
		src := RandomWeights(cfg, uint64(ci+1))
		kept := []int{0, cfg.NumLayers - 1}
		fp32Ref, err := NewReference(cfg, src)
		if err != nil {
			t.Fatal(err)
		}
		want32 := orttest.RefRun(t, fp32Ref, prompt, decode, kept)
		for _, dt := range dtypes {
			name := testNames[ci] + "/" + dt.dtype
			if dt.block != 0 {
				name += fmt.Sprintf("/block%d", dt.block)
			}
			t.Run(name, func(t *testing.T) {
				opts := GraphOptions{DType: dt.dtype, MaxSeqLen: testMaxSeq, Int4Block: dt.block}
				block := cmp.Or(dt.block, Int4BlockSize)
				dir := writePackage(t, cfg, src, opts)
				ref, err := NewReference(cfg, graph.StoredWeights(src, dt.dtype, EmbedName, block))
				if err != nil {
					t.Fatal(err)
				}
				if cfg.TieWordEmbeddings && dt.dtype == DTypeInt4 {
					// The int4 head holds a 4-bit copy of the tied embedding.
					e := src[EmbedName]
					p, s, _ := graph.QuantizeInt4(e.Data, e.Shape[0], e.Shape[1], block)
					ref.head = graph.DequantizeInt4(p, s, e.Shape[0], e.Shape[1], block)
				}
				want := orttest.RefRun(t, ref, prompt, decode, kept)
				got := newRunner(t, dir, cfg, testMaxSeq, 1).ULSRun(prompt, decode, kept)
				var worst, worst32 float64
				for p := range want {
					d, storedScale := maxDiff(got[p], want[p])
					d32, scale := maxDiff(got[p], want32[p])
					worst, worst32 = max(worst, d), max(worst32, d32/scale)
					step := "prefill"
					if p >= len(prompt) {
						step = "decode"
					}
					if tol := dt.tolStored + dt.tolStoredRel*storedScale; d > tol {
						t.Errorf("%s: max |Δlogit| = %.3g vs reference over stored weights, tolerance %.3g", describe(step, p), d, tol)
					}
					if d32 > dt.tolFP32Relative*scale {
						t.Errorf("%s: max |Δlogit| = %.3g vs fp32 reference (max |logit| %.3g), tolerance %g relative",
							describe(step, p), d32, scale, dt.tolFP32Relative)
					}
				}
				t.Logf("max |Δlogit| %.2g (stored weights), %.2g relative (fp32)", worst, worst32)
			})
		}
	}
}
