package bloom

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/strata-llm/strata/models/graph"
)

// WeightSource serves a checkpoint's tensors by their Hugging Face names
// (transformer.word_embeddings.weight, transformer.h.N.self_attention...).
type WeightSource = graph.WeightSource

// Prefix is the name prefix BloomForCausalLM gives its tensors; checkpoints
// saved from BloomModel (the original bigscience ones) lack it (see
// Unprefixed).
const Prefix = "transformer."

// Weight names outside the layers.
const (
	EmbedName     = Prefix + "word_embeddings.weight"
	EmbedNormName = Prefix + "word_embeddings_layernorm"
	FinalNormName = Prefix + "ln_f"
)

// LayerPrefix is the name prefix of layer i's tensors.
func LayerPrefix(i int) string { return fmt.Sprintf("%sh.%d.", Prefix, i) }

// LayerWeights lists layer i's tensors in checkpoint order.
func (c Config) LayerWeights(i int) []graph.WeightInfo {
	p := LayerPrefix(i)
	d, f := c.HiddenSize, c.IntermediateSize()
	w := func(name string, shape ...int) graph.WeightInfo {
		return graph.WeightInfo{Name: p + name, Shape: shape}
	}
	return []graph.WeightInfo{
		w("input_layernorm.weight", d), w("input_layernorm.bias", d),
		w("self_attention.query_key_value.weight", 3*d, d), w("self_attention.query_key_value.bias", 3*d),
		w("self_attention.dense.weight", d, d), w("self_attention.dense.bias", d),
		w("post_attention_layernorm.weight", d), w("post_attention_layernorm.bias", d),
		w("mlp.dense_h_to_4h.weight", f, d), w("mlp.dense_h_to_4h.bias", f),
		w("mlp.dense_4h_to_h.weight", d, f), w("mlp.dense_4h_to_h.bias", d),
	}
}

// Weights lists every tensor the model needs. The head is the embedding
// matrix, so there is no lm_head.weight.
func (c Config) Weights() []graph.WeightInfo {
	d := c.HiddenSize
	ws := []graph.WeightInfo{
		{Name: EmbedName, Shape: []int{c.VocabSize, d}},
		{Name: EmbedNormName + ".weight", Shape: []int{d}}, {Name: EmbedNormName + ".bias", Shape: []int{d}},
	}
	for i := 0; i < c.NumLayers; i++ {
		ws = append(ws, c.LayerWeights(i)...)
	}
	return append(ws, graph.WeightInfo{Name: FinalNormName + ".weight", Shape: []int{d}}, graph.WeightInfo{Name: FinalNormName + ".bias", Shape: []int{d}})
}

// ShapeOf returns the expected shape of the named tensor.
func (c Config) ShapeOf(name string) ([]int, error) {
	if s, ok := graph.ShapeOf(c.Weights(), name); ok {
		return s, nil
	}
	return nil, fmt.Errorf("tensor %q is not part of this bloom model", name)
}

// Unprefixed maps the canonical name of a tensor (with Prefix) to the name a
// BloomModel checkpoint stores it under.
func Unprefixed(name string) string { return strings.TrimPrefix(name, Prefix) }

// splitQKV reorders the fused query_key_value rows (or bias), which
// transformers lays out per head as [heads, 3, head_dim], into
// [q heads | k heads | v heads], the packed layout GroupQueryAttention reads.
// rowLen is the length of one row (1 for the bias).
func splitQKV(w []float32, heads, headDim, rowLen int) []float32 {
	out := make([]float32, len(w))
	for h := 0; h < heads; h++ {
		for j := 0; j < 3; j++ {
			src := ((h*3 + j) * headDim) * rowLen
			dst := ((j*heads + h) * headDim) * rowLen
			copy(out[dst:dst+headDim*rowLen], w[src:src+headDim*rowLen])
		}
	}
	return out
}

// RandomWeights returns a complete, deterministic random checkpoint for
// cfg: norm scales near 1, biases of order 0.1, linear weights uniform in
// ±1/sqrt(in), embeddings of order 1. The same (cfg, seed) always gives the
// same weights.
func RandomWeights(cfg Config, seed uint64) graph.MapSource {
	rng := rand.New(rand.NewPCG(seed, 0xb100))
	uniform := func(n int, scale float64, offset float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = offset + float32((2*rng.Float64()-1)*scale)
		}
		return v
	}
	m := graph.MapSource{}
	for _, w := range cfg.Weights() {
		n := 1
		for _, d := range w.Shape {
			n *= d
		}
		var data []float32
		switch {
		case strings.HasSuffix(w.Name, "layernorm.weight") || strings.HasSuffix(w.Name, "ln_f.weight"):
			data = uniform(n, 0.2, 1)
		case len(w.Shape) == 1:
			data = uniform(n, 0.1, 0)
		case w.Name == EmbedName:
			data = uniform(n, 1, 0)
		default:
			data = uniform(n, 1/math.Sqrt(float64(w.Shape[1])), 0)
		}
		m[w.Name] = graph.MapTensor{Data: data, Shape: slices.Clone(w.Shape)}
	}
	return m
}

// StoredWeights wraps src so that every tensor comes back exactly as the
// graphs of dtype hold it (graph.StoredWeights).
func StoredWeights(src WeightSource, dtype string) WeightSource {
	return graph.StoredWeights(src, dtype, EmbedName, graph.Int4BlockSize)
}
