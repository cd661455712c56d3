package bloom

import (
	"fmt"
	"slices"
	"testing"

	"github.com/strata-llm/strata/engine/ort/orttest"
	"github.com/strata-llm/strata/models/graph"
)

const testMaxSeq = 32

// testConfig has 6 heads, not a power of two, so ALiBi's second slope
// branch is used; head_dim 16 is the smallest GroupQueryAttention accepts.
func testConfig(postLN bool) Config {
	return Config{NumLayers: 4, HiddenSize: 96, NumHeads: 6, VocabSize: 80, LayerNormEps: 1e-5,
		ResidualPostLayerNorm: postLN, BOSID: 1, EOSIDs: []int{2}}
}

func TestSlopes(t *testing.T) {
	for _, tc := range []struct {
		heads int
		want  []float32
	}{
		{1, []float32{1.0 / 256}},
		{4, []float32{0.25, 0.0625, 0.015625, 0.00390625}},
		{6, []float32{0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125}},
		{8, []float32{0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625}},
	} {
		if got := Slopes(tc.heads); !slices.Equal(got, tc.want) {
			t.Errorf("Slopes(%d) = %v, want %v", tc.heads, got, tc.want)
		}
	}
}

func TestSplitQKV(t *testing.T) {
	// 2 heads of 2: rows are q0 q0 k0 k0 v0 v0 q1 q1 k1 k1 v1 v1.
	in := []float32{0, 1, 10, 11, 20, 21, 2, 3, 12, 13, 22, 23}
	want := []float32{0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23}
	if got := splitQKV(in, 2, 2, 1); !slices.Equal(got, want) {
		t.Errorf("splitQKV = %v, want %v", got, want)
	}
}

// TestGraphsMatchReference runs the fp32 graphs of both residual variants
// through ORT (prefill at full depth, then decode through a subset of the
// layers, as ULS does) against the plain-Go reference, and the fp16 and int4
// graphs against the reference over their stored weights.
func TestGraphsMatchReference(t *testing.T) {
	prompt, decode := []int{1, 17, 5, 33, 9, 70, 12}, []int{4, 22, 8, 30, 61}
	for _, tc := range []struct {
		postLN bool
		dtype  string
		tol    float64 // absolute
		tolRel float64 // relative to max |logit|, added to tol
	}{
		{false, graph.DTypeFP32, 1e-4, 0}, {true, graph.DTypeFP32, 1e-4, 0},
		{false, graph.DTypeFP16, 1e-4, 0},
		// MatMulNBits with accuracy_level 4 quantizes activations to int8.
		{false, graph.DTypeInt4, 0.01, 0.02},
	} {
		t.Run(fmt.Sprintf("postln=%v/%s", tc.postLN, tc.dtype), func(t *testing.T) {
			cfg := testConfig(tc.postLN)
			src := RandomWeights(cfg, 11)
			dir := t.TempDir()
			if _, err := WriteAll(dir, cfg, src, GraphOptions{DType: tc.dtype, MaxSeqLen: testMaxSeq}, false); err != nil {
				t.Fatal(err)
			}
			ref, err := NewReference(cfg, StoredWeights(src, tc.dtype))
			if err != nil {
				t.Fatal(err)
			}
			if tc.dtype == graph.DTypeInt4 {
				// The int4 head holds a 4-bit copy of the tied embedding.
				e := src[EmbedName]
				p, s, _ := graph.QuantizeInt4(e.Data, e.Shape[0], e.Shape[1], graph.Int4BlockSize)
				ref.head = graph.DequantizeInt4(p, s, e.Shape[0], e.Shape[1], graph.Int4BlockSize)
			}
			var worst float64
			for _, kept := range [][]int{nil, {0, 2}, {1, 3}} {
				want := orttest.RefRun(t, ref, prompt, decode, kept)
				got := orttest.NewRunner(t, dir, cfg.Decoder().Dims(), testMaxSeq, 1).ULSRun(prompt, decode, kept)
				for p := range want {
					d, scale := orttest.MaxDiff(got[p], want[p])
					worst = max(worst, d)
					if tol := tc.tol + tc.tolRel*scale; d > tol {
						t.Errorf("layers %v, position %d: max |Δlogit| %.3g exceeds %.3g", kept, p, d, tol)
					}
				}
			}
			t.Logf("max |Δlogit| %.2g", worst)
		})
	}
}

// TestBatchRightPadding prefills two prompts of different lengths in one
// batch (the shorter one right-padded) and decodes both rows together
// through two kept layers; each row must match the reference run alone.
func TestBatchRightPadding(t *testing.T) {
	cfg := testConfig(false)
	src := RandomWeights(cfg, 5)
	dir := t.TempDir()
	if _, err := WriteAll(dir, cfg, src, GraphOptions{MaxSeqLen: testMaxSeq}, false); err != nil {
		t.Fatal(err)
	}
	ref, err := NewReference(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int{{1, 17, 5, 33, 9, 12}, {1, 40, 2}}
	decode := [][]int{{4, 22, 8}, {6, 13, 44}}
	kept := []int{1, 2}
	want := [][][]float32{orttest.RefRun(t, ref, prompts[0], decode[0], kept), orttest.RefRun(t, ref, prompts[1], decode[1], kept)}

	r := orttest.NewRunner(t, dir, cfg.Decoder().Dims(), testMaxSeq, 2)
	s := len(prompts[0])
	padded := [][]int{prompts[0], append(slices.Clone(prompts[1]), make([]int, s-len(prompts[1]))...)}
	lens := []int{len(prompts[0]), len(prompts[1])}
	got := r.Step(padded, []int32{int32(lens[0] - 1), int32(lens[1] - 1)}, int32(s), nil)
	for b := range prompts {
		for p := 0; p < lens[b]; p++ {
			if d, _ := orttest.MaxDiff(got[b][p], want[b][p]); d > 1e-4 {
				t.Errorf("row %d prefill position %d: max |Δlogit| = %.3g", b, p, d)
			}
		}
	}
	for j := range decode[0] {
		ids := [][]int{{decode[0][j]}, {decode[1][j]}}
		got := r.Step(ids, []int32{int32(lens[0]), int32(lens[1])}, int32(max(lens[0], lens[1])+1), kept)
		for b := range prompts {
			if d, _ := orttest.MaxDiff(got[b][0], want[b][len(prompts[b])+j]); d > 1e-4 {
				t.Errorf("row %d decode position %d: max |Δlogit| = %.3g", b, lens[b], d)
			}
			lens[b]++
		}
	}
}

// TestFullGraph runs model_full.onnx (the bias built once for every layer,
// its sequence length read off input_ids) against the reference.
func TestFullGraph(t *testing.T) {
	cfg := testConfig(false)
	src := RandomWeights(cfg, 3)
	path, err := graph.WriteFull(t.TempDir(), cfg.Decoder(), src, GraphOptions{MaxSeqLen: testMaxSeq})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := NewReference(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	prompt, decode := []int{1, 17, 5, 33}, []int{4, 22, 8}
	want := orttest.RefRun(t, ref, prompt, decode, nil)
	got := orttest.RunFull(t, path, cfg.Decoder().Dims(), testMaxSeq, prompt, decode)
	for p := range want {
		if d, _ := orttest.MaxDiff(got[p], want[p]); d > 1e-4 {
			t.Errorf("position %d: max |Δlogit| = %.3g", p, d)
		}
	}
}
