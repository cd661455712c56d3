package llama

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
)

func TestReferenceULSCache(t *testing.T) {
	cfg := Variants()[1].Config
	ref, err := NewReference(cfg, RandomWeights(cfg, 5))
	if err != nil {
		t.Fatal(err)
	}
	full, err := ref.Forward([]int{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(full) != 3 || len(full[0]) != cfg.VocabSize {
		t.Fatalf("logits shape %d×%d", len(full), len(full[0]))
	}
	if _, err := ref.Forward([]int{4, 5}, []int{0, 2}); err != nil {
		t.Fatal(err)
	}
	// Kept layers cached every position, the skipped one only the prompt.
	for l, want := range []int{5, 3, 5} {
		if got := len(ref.Layer(l).Pos); got != want {
			t.Errorf("layer %d caches %d positions, want %d", l, got, want)
		}
	}
	if ref.Pos() != 5 || ref.Layer(2).Pos[4] != 4 {
		t.Errorf("pos %d, layer 2 positions %v", ref.Pos(), ref.Layer(2).Pos)
	}
	// Running the same tokens one at a time or at once gives the same logits.
	ref.Reset()
	var stepwise [][]float32
	for _, tok := range []int{1, 2, 3} {
		l, err := ref.Forward([]int{tok}, nil)
		if err != nil {
			t.Fatal(err)
		}
		stepwise = append(stepwise, l...)
	}
	for p := range full {
		if d, _ := maxDiff(stepwise[p], full[p]); d != 0 {
			t.Errorf("position %d differs by %g after Reset", p, d)
		}
	}
	// Skipping changes the result (the test would be vacuous otherwise).
	ref.Reset()
	ref.Forward([]int{1, 2}, nil)
	skipped, _ := ref.Forward([]int{3}, []int{0, 2})
	if d, _ := maxDiff(skipped[0], full[2]); d < 1e-3 {
		t.Errorf("skipping layer 1 changed logits by only %g", d)
	}
}

func TestReferenceErrors(t *testing.T) {
	cfg := Variants()[0].Config
	src := RandomWeights(cfg, 1)
	ref, err := NewReference(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tokens []int
		layers []int
		want   string
	}{
		{"token too big", []int{cfg.VocabSize}, nil, "vocabulary"},
		{"negative token", []int{-1}, nil, "vocabulary"},
		{"layer out of range", []int{1}, []int{0, 3}, "increasing"},
		{"unsorted layers", []int{1}, []int{2, 0}, "increasing"},
	}
	for _, tc := range tests {
		if _, err := ref.Forward(tc.tokens, tc.layers); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	bad := MapSource{}
	for k, v := range src {
		bad[k] = v
	}
	bad["model.layers.1.mlp.up_proj.weight"] = MapTensor{Data: make([]float32, 48*64), Shape: []int{64, 48}}
	if _, err := NewReference(cfg, bad); err == nil || !strings.Contains(err.Error(), "up_proj") {
		t.Errorf("shape mismatch: err = %v", err)
	}
}

func TestQuantizeInt4(t *testing.T) {
	// One row, K=3 (padded to one block of 32): the largest magnitude is
	// -4, so scale = 0.5 and codes are round(w/0.5)+8.
	packed, scales, kb := QuantizeInt4([]float32{-4, 1, 0.3}, 1, 3)
	if kb != 1 || len(packed) != 16 || scales[0] != 0.5 {
		t.Fatalf("kBlocks %d, %d bytes, scale %v", kb, len(packed), scales[0])
	}
	// codes 0, 10, 9 (0.6 rounds to 1), then padding 8: low nibble first.
	if packed[0] != 0x00|10<<4 || packed[1] != 9|8<<4 || packed[2] != 0x88 {
		t.Errorf("packed % x", packed[:3])
	}
	if got := DequantizeInt4(packed, scales, 1, 3); got[0] != -4 || got[1] != 1 || got[2] != 0.5 {
		t.Errorf("dequantized %v", got)
	}
	// Random rows with K not a multiple of 32: error at most half a step.
	n, k := 5, 70
	w := RandomWeights(Variants()[0].Config, 2)["model.layers.0.mlp.down_proj.weight"].Data[:n*k]
	p, s, kb := QuantizeInt4(w, n, k)
	if kb != 3 {
		t.Fatalf("kBlocks %d", kb)
	}
	back := DequantizeInt4(p, s, n, k)
	for i := range w {
		step := math.Abs(float64(s[(i/k)*kb+(i%k)/32]))
		if d := math.Abs(float64(w[i] - back[i])); d > step/2+1e-7 && d > step {
			t.Fatalf("w[%d] = %v came back as %v (step %v)", i, w[i], back[i], step)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	cfg := Variants()[0].Config
	src := RandomWeights(cfg, 1)
	dir := t.TempDir()
	odd := cfg
	odd.HeadDim, odd.HiddenSize = 8, 32
	wrong := MapSource{}
	for k, v := range src {
		wrong[k] = v
	}
	delete(wrong, "model.layers.0.self_attn.k_proj.weight")
	tests := []struct {
		name  string
		write func() (string, error)
		want  string
	}{
		{"dtype", func() (string, error) { return WriteHead(dir, cfg, src, GraphOptions{DType: "bf16"}) }, "bf16"},
		{"layer index", func() (string, error) { return WriteLayer(dir, cfg, 3, src, GraphOptions{}) }, "3 layers"},
		{"head dim", func() (string, error) { return WriteLayer(dir, odd, 0, RandomWeights(odd, 1), GraphOptions{}) }, "multiple of 16"},
		{"missing tensor", func() (string, error) { return WriteLayer(dir, cfg, 0, wrong, GraphOptions{}) }, "k_proj"},
		{"bad dir", func() (string, error) { return WriteEmbed(filepath.Join(dir, "nope", "x"), cfg, src, GraphOptions{}) }, "embed.onnx"},
	}
	for _, tc := range tests {
		_, err := tc.write()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, manifest.LayerFile(0)+".data")); !os.IsNotExist(err) {
		t.Errorf("failed write left its data file behind (%v)", err)
	}
}

// TestWeightsGoToExternalData checks that the graph file holds no weights.
func TestWeightsGoToExternalData(t *testing.T) {
	cfg := Variants()[0].Config
	dir := t.TempDir()
	path, err := WriteLayer(dir, cfg, 1, RandomWeights(cfg, 1), GraphOptions{MaxSeqLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	graph, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.Stat(path + ".data")
	if err != nil {
		t.Fatal(err)
	}
	weights := 0 // bytes of the matrices; norms stay inline
	for _, w := range cfg.LayerWeights(1) {
		if len(w.Shape) != 2 {
			continue
		}
		n := 4
		for _, d := range w.Shape {
			n *= d
		}
		weights += n
	}
	if data.Size() < int64(weights) || graph.Size() > 8192 {
		t.Errorf("graph %d bytes, data %d bytes; the layer has %d bytes of weights", graph.Size(), data.Size(), weights)
	}
}
