package bloom

import (
	"slices"
	"strings"
	"testing"
)

// testConfig has 6 heads, not a power of two, so ALiBi's second slope
// branch is used; head_dim 16 is the smallest GroupQueryAttention accepts.
// The graphs of this shape run through ONNX Runtime in the engine's tests
// (engine/families_test.go), which compare them with this package's
// reference.
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

// TestReferenceSetHead: a replaced head changes the logits as the new
// matrix says (doubling the tied embedding's copy doubles them, while the
// embedding lookup keeps the original), and a matrix of the wrong size is
// refused.
func TestReferenceSetHead(t *testing.T) {
	cfg := testConfig(false)
	src := RandomWeights(cfg, 3)
	ref, err := NewReference(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Forward([]int{1, 7, 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.SetHead(make([]float32, cfg.VocabSize*cfg.HiddenSize+1)); err == nil || !strings.Contains(err.Error(), "want") {
		t.Errorf("a head of the wrong size: error %v", err)
	}
	double := slices.Clone(src[EmbedName].Data)
	for i := range double {
		double[i] *= 2
	}
	if err := ref.SetHead(double); err != nil {
		t.Fatal(err)
	}
	ref.Reset()
	got, err := ref.Forward([]int{1, 7, 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		for i := range want[p] {
			if got[p][i] != 2*want[p][i] { // scaling by 2 is exact in floating point
				t.Fatalf("position %d logit %d: %g with the doubled head, want %g", p, i, got[p][i], 2*want[p][i])
			}
		}
	}
}
