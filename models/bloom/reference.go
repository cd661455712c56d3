package bloom

import (
	"fmt"
	"math"

	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/refmath"
)

// Reference is a plain-Go float32 forward pass of a BLOOM model, written to
// follow transformers' BloomForCausalLM step by step (embedding LayerNorm,
// fused per-head query_key_value, ALiBi attention, tanh GELU, residuals
// before or after the LayerNorms, ln_f and the tied head). It keeps a KV
// cache per layer and implements Unified Layer Skipping: Forward runs only
// the layers it is given. Its methods match llama.Reference's.
type Reference struct {
	cfg            Config
	slopes         []float32
	embed          []float32 // [V, D]
	head           []float32 // [V, D]: the embedding (tied)
	embLnW, embLnB []float32
	lnfW, lnfB     []float32
	layers         []refLayer
	refmath.Caches
}

type refLayer struct {
	ln1W, ln1B, ln2W, ln2B []float32
	qkv, qkvB              []float32 // HF layout [heads, 3, head_dim] × D
	dense, denseB          []float32
	up, upB, down, downB   []float32
}

// NewReference loads every weight of cfg from src as float32.
func NewReference(cfg Config, src WeightSource) (*Reference, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Reference{cfg: cfg, slopes: Slopes(cfg.NumHeads), layers: make([]refLayer, cfg.NumLayers), Caches: refmath.NewCaches(cfg.NumLayers)}
	var err error
	load := func(name string) []float32 {
		if err != nil {
			return nil
		}
		var shape []int
		if shape, err = cfg.ShapeOf(name); err != nil {
			return nil
		}
		var data []float32
		data, err = graph.Load(src, name, shape)
		return data
	}
	r.embed = load(EmbedName)
	r.head = r.embed
	r.embLnW, r.embLnB = load(EmbedNormName+".weight"), load(EmbedNormName+".bias")
	r.lnfW, r.lnfB = load(FinalNormName+".weight"), load(FinalNormName+".bias")
	for i := range r.layers {
		p := LayerPrefix(i)
		l := &r.layers[i]
		l.ln1W, l.ln1B = load(p+"input_layernorm.weight"), load(p+"input_layernorm.bias")
		l.qkv, l.qkvB = load(p+"self_attention.query_key_value.weight"), load(p+"self_attention.query_key_value.bias")
		l.dense, l.denseB = load(p+"self_attention.dense.weight"), load(p+"self_attention.dense.bias")
		l.ln2W, l.ln2B = load(p+"post_attention_layernorm.weight"), load(p+"post_attention_layernorm.bias")
		l.up, l.upB = load(p+"mlp.dense_h_to_4h.weight"), load(p+"mlp.dense_h_to_4h.bias")
		l.down, l.downB = load(p+"mlp.dense_4h_to_h.weight"), load(p+"mlp.dense_4h_to_h.bias")
	}
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	return r, nil
}

// Config returns the model's configuration.
func (r *Reference) Config() Config { return r.cfg }

// SetHead replaces the head's weight matrix [V, D]. An int4 package with
// tied embeddings multiplies by a 4-bit copy of the embedding, which a
// Reference over graph.StoredWeights does not (it reads the embedding):
// comparing with such graphs, give the dequantized copy here.
func (r *Reference) SetHead(w []float32) error {
	if want := r.cfg.VocabSize * r.cfg.HiddenSize; len(w) != want {
		return fmt.Errorf("reference head: %d weights, want %d (vocabulary × hidden size)", len(w), want)
	}
	r.head = w
	return nil
}

// Forward appends tokens at the next positions, running only the given
// layers (nil: all; they must be increasing), and returns the logits of
// every new token. Skipped layers pass the hidden state through and store
// nothing, so a kept layer attends exactly to the positions it ran.
func (r *Reference) Forward(tokens []int, layers []int) ([][]float32, error) {
	return r.Run(tokens, layers, r.cfg.VocabSize, r.step)
}

// step runs one token at position r.Pos().
func (r *Reference) step(tok int, layers []int) []float32 {
	c := r.cfg
	d := c.HiddenSize
	x := layerNorm(r.embed[tok*d:(tok+1)*d], r.embLnW, r.embLnB, c.LayerNormEps)
	for _, l := range layers {
		x = r.layer(l, x)
	}
	h := layerNorm(x, r.lnfW, r.lnfB, c.LayerNormEps)
	return refmath.MatVec(r.head, h, c.VocabSize, d)
}

// layer runs decoder layer l on the hidden state h and returns its output.
func (r *Reference) layer(l int, h []float32) []float32 {
	c := r.cfg
	w := &r.layers[l]
	d, nh, dh := c.HiddenSize, c.NumHeads, c.HeadDim()

	// Self-attention block.
	x := layerNorm(h, w.ln1W, w.ln1B, c.LayerNormEps)
	residual := h
	if c.ResidualPostLayerNorm {
		residual = x
	}
	fused := refmath.AddBias(refmath.MatVec(w.qkv, x, 3*d, d), w.qkvB)
	// The fused output is [heads, 3, head_dim]: per head its q, k and v.
	q, k, v := make([]float32, d), make([]float32, d), make([]float32, d)
	for i := 0; i < nh; i++ {
		base := i * 3 * dh
		copy(q[i*dh:(i+1)*dh], fused[base:base+dh])
		copy(k[i*dh:(i+1)*dh], fused[base+dh:base+2*dh])
		copy(v[i*dh:(i+1)*dh], fused[base+2*dh:base+3*dh])
	}
	kc := r.Layer(l)
	kc.Append(r.Pos(), k, v)
	// ALiBi: head i's score of the key at position p gets slope_i·p.
	alibi := func(head, t int) float64 { return float64(r.slopes[head] * float32(kc.Pos[t])) }
	att := refmath.Attend(q, kc.K, kc.V, nh, nh, dh, alibi)
	a := refmath.AddBias(refmath.MatVec(w.dense, att, d, d), w.denseB)
	for i := range a {
		a[i] += residual[i]
	}

	// MLP block: 4h_to_h(gelu(h_to_4h(y))) + residual.
	y := layerNorm(a, w.ln2W, w.ln2B, c.LayerNormEps)
	residual = a
	if c.ResidualPostLayerNorm {
		residual = y
	}
	f := refmath.AddBias(refmath.MatVec(w.up, y, c.IntermediateSize(), d), w.upB)
	for i := range f {
		f[i] = geluTanh(f[i])
	}
	out := refmath.AddBias(refmath.MatVec(w.down, f, d, c.IntermediateSize()), w.downB)
	for i := range out {
		out[i] += residual[i]
	}
	return out
}

// layerNorm returns w * (x - mean) / sqrt(var + eps) + b.
func layerNorm(x, w, b []float32, eps float64) []float32 {
	var mean float64
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	var variance float64
	for _, v := range x {
		variance += (float64(v) - mean) * (float64(v) - mean)
	}
	inv := 1 / math.Sqrt(variance/float64(len(x))+eps)
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32((float64(v)-mean)*inv)*w[i] + b[i]
	}
	return out
}

// geluTanh is transformers' bloom_gelu_forward:
// x·0.5·(1 + tanh(0.79788456·x·(1 + 0.044715·x²))).
func geluTanh(x float32) float32 {
	v := float64(x)
	return float32(v * 0.5 * (1 + math.Tanh(0.79788456*v*(1+0.044715*v*v))))
}
