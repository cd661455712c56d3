package llama

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
)

// WeightSource serves a checkpoint's tensors by their Hugging Face names
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...),
// as float32 in Hugging Face layout (linear weights are [out, in]).
// Implementations read one tensor per call, so exporters can stream.
type WeightSource interface {
	Tensor(name string) (data []float32, shape []int, err error)
}

// WeightInfo names one tensor of a checkpoint and its expected shape.
type WeightInfo struct {
	Name  string
	Shape []int
}

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
		{p + "input_layernorm.weight", []int{d}},
		{p + "self_attn.q_proj.weight", []int{q, d}},
		{p + "self_attn.k_proj.weight", []int{kv, d}},
		{p + "self_attn.v_proj.weight", []int{kv, d}},
	}
	if c.AttentionBias {
		ws = append(ws,
			WeightInfo{p + "self_attn.q_proj.bias", []int{q}},
			WeightInfo{p + "self_attn.k_proj.bias", []int{kv}},
			WeightInfo{p + "self_attn.v_proj.bias", []int{kv}})
	}
	return append(ws,
		WeightInfo{p + "self_attn.o_proj.weight", []int{d, q}},
		WeightInfo{p + "post_attention_layernorm.weight", []int{d}},
		WeightInfo{p + "mlp.gate_proj.weight", []int{c.IntermediateSize, d}},
		WeightInfo{p + "mlp.up_proj.weight", []int{c.IntermediateSize, d}},
		WeightInfo{p + "mlp.down_proj.weight", []int{d, c.IntermediateSize}})
}

// Weights lists every tensor the model needs (lm_head.weight only when the
// embeddings are not tied).
func (c Config) Weights() []WeightInfo {
	ws := []WeightInfo{{EmbedName, []int{c.VocabSize, c.HiddenSize}}}
	for i := 0; i < c.NumLayers; i++ {
		ws = append(ws, c.LayerWeights(i)...)
	}
	ws = append(ws, WeightInfo{NormName, []int{c.HiddenSize}})
	if !c.TieWordEmbeddings {
		ws = append(ws, WeightInfo{LMHeadName, []int{c.VocabSize, c.HiddenSize}})
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
	data, shape, err := src.Tensor(name)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	if !slices.Equal(shape, want) {
		return nil, fmt.Errorf("tensor %s has shape %v, the config needs %v", name, shape, want)
	}
	n := 1
	for _, d := range want {
		n *= d
	}
	if len(data) != n {
		return nil, fmt.Errorf("tensor %s has %d values for shape %v", name, len(data), shape)
	}
	return data, nil
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
type MapTensor struct {
	Data  []float32
	Shape []int
}

// MapSource is an in-memory WeightSource.
type MapSource map[string]MapTensor

// Tensor implements WeightSource.
func (m MapSource) Tensor(name string) ([]float32, []int, error) {
	t, ok := m[name]
	if !ok {
		return nil, nil, fmt.Errorf("tensor %q not found", name)
	}
	return t.Data, t.Shape, nil
}

// Names lists the tensors in sorted order.
func (m MapSource) Names() []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

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
