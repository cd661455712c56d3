package llama

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/strata-llm/strata/models/graph"
)

// WeightSource serves a checkpoint's tensors by their Hugging Face names
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...).
type WeightSource = graph.WeightSource

// WeightInfo names one tensor of a checkpoint and its expected shape.
type WeightInfo = graph.WeightInfo

// LayerPrefix is the name prefix of layer i's tensors.
func LayerPrefix(i int) string { return fmt.Sprintf("model.layers.%d.", i) }

// Weight names outside the layers.
const (
	EmbedName  = "model.embed_tokens.weight"
	NormName   = "model.norm.weight"
	LMHeadName = "lm_head.weight"
)

// LayerWeights lists layer i's tensors in checkpoint order.
func (c Config) LayerWeights(i int) []WeightInfo {
	p := LayerPrefix(i)
	d, q, kv := c.HiddenSize, c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	ws := []WeightInfo{
		{Name: p + "input_layernorm.weight", Shape: []int{d}},
		{Name: p + "self_attn.q_proj.weight", Shape: []int{q, d}},
		{Name: p + "self_attn.k_proj.weight", Shape: []int{kv, d}},
		{Name: p + "self_attn.v_proj.weight", Shape: []int{kv, d}},
	}
	if c.AttentionBias {
		ws = append(ws,
			WeightInfo{Name: p + "self_attn.q_proj.bias", Shape: []int{q}},
			WeightInfo{Name: p + "self_attn.k_proj.bias", Shape: []int{kv}},
			WeightInfo{Name: p + "self_attn.v_proj.bias", Shape: []int{kv}})
	}
	return append(ws,
		WeightInfo{Name: p + "self_attn.o_proj.weight", Shape: []int{d, q}},
		WeightInfo{Name: p + "post_attention_layernorm.weight", Shape: []int{d}},
		WeightInfo{Name: p + "mlp.gate_proj.weight", Shape: []int{c.IntermediateSize, d}},
		WeightInfo{Name: p + "mlp.up_proj.weight", Shape: []int{c.IntermediateSize, d}},
		WeightInfo{Name: p + "mlp.down_proj.weight", Shape: []int{d, c.IntermediateSize}})
}

// Weights lists every tensor the model needs (lm_head.weight only when the
// embeddings are not tied).
func (c Config) Weights() []WeightInfo {
	ws := []WeightInfo{{Name: EmbedName, Shape: []int{c.VocabSize, c.HiddenSize}}}
	for i := 0; i < c.NumLayers; i++ {
		ws = append(ws, c.LayerWeights(i)...)
	}
	ws = append(ws, WeightInfo{Name: NormName, Shape: []int{c.HiddenSize}})
	if !c.TieWordEmbeddings {
		ws = append(ws, WeightInfo{Name: LMHeadName, Shape: []int{c.VocabSize, c.HiddenSize}})
	}
	return ws
}

// ShapeOf returns the expected shape of the named tensor.
func (c Config) ShapeOf(name string) ([]int, error) {
	for _, w := range c.Weights() {
		if w.Name == name {
			return w.Shape, nil
		}
	}
	return nil, fmt.Errorf("tensor %q is not part of this %s model", name, c.ModelType)
}

// Load fetches one tensor from src and checks its shape against want.
func Load(src WeightSource, name string, want []int) ([]float32, error) {
	return graph.Load(src, name, want)
}

// HeadWeightName is the tensor the head multiplies by: lm_head.weight, or
// the embedding matrix when the embeddings are tied.
func (c Config) HeadWeightName() string {
	if c.TieWordEmbeddings {
		return EmbedName
	}
	return LMHeadName
}

// MapTensor is one in-memory tensor.
type MapTensor = graph.MapTensor

// MapSource is an in-memory WeightSource.
type MapSource = graph.MapSource

// RandomWeights returns a complete, deterministic random checkpoint for
// cfg: norms near 1, linear weights uniform in ±1/sqrt(in) (so activations
// keep their scale through the layers), embeddings and biases of order 1
// and 0.1. The same (cfg, seed) always gives the same weights.
func RandomWeights(cfg Config, seed uint64) MapSource {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	uniform := func(n int, scale float64, offset float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = offset + float32((2*rng.Float64()-1)*scale)
		}
		return v
	}
	m := MapSource{}
	for _, w := range cfg.Weights() {
		n := 1
		for _, d := range w.Shape {
			n *= d
		}
		var data []float32
		switch {
		case len(w.Shape) == 1 && isNorm(w.Name):
			data = uniform(n, 0.2, 1)
		case len(w.Shape) == 1: // bias
			data = uniform(n, 0.1, 0)
		case w.Name == EmbedName:
			data = uniform(n, 1, 0)
		default:
			data = uniform(n, 1/math.Sqrt(float64(w.Shape[1])), 0)
		}
		m[w.Name] = MapTensor{Data: data, Shape: slices.Clone(w.Shape)}
	}
	return m
}

func isNorm(name string) bool {
	return name == NormName || strings.HasSuffix(name, "layernorm.weight")
}
