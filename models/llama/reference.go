package llama

import (
	"fmt"
	"math"

	"github.com/strata-llm/strata/models/refmath"
)

// Reference is a plain-Go float32 forward pass of a LLaMA-family model,
// written to follow transformers' modelling code step by step (RMSNorm,
// rotate_half RoPE with the scaled inverse frequencies, grouped-query
// attention, SwiGLU MLP). It keeps a KV cache per layer and implements
// Unified Layer Skipping: Forward runs only the layers it is given.
type Reference struct {
	cfg     Config
	invFreq []float64
	embed   []float32 // [V, D]
	head    []float32 // [V, D]; the embedding when tied
	norm    []float32
	layers  []refLayer
	refmath.Caches
}

type refLayer struct {
	ln1, ln2       []float32
	wq, wk, wv, wo []float32 // HF layout [out, in]
	bq, bk, bv     []float32 // nil without attention bias
	gate, up, down []float32
}

// NewReference loads every weight of cfg from src as float32.
func NewReference(cfg Config, src WeightSource) (*Reference, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Reference{cfg: cfg, invFreq: cfg.InvFreq(), layers: make([]refLayer, cfg.NumLayers), Caches: refmath.NewCaches(cfg.NumLayers)}
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
		data, err = Load(src, name, shape)
		return data
	}
	r.embed = load(EmbedName)
	r.norm = load(NormName)
	r.head = load(cfg.HeadWeightName())
	for i := range r.layers {
		p := LayerPrefix(i)
		l := &r.layers[i]
		l.ln1 = load(p + "input_layernorm.weight")
		l.wq = load(p + "self_attn.q_proj.weight")
		l.wk = load(p + "self_attn.k_proj.weight")
		l.wv = load(p + "self_attn.v_proj.weight")
		if cfg.AttentionBias {
			l.bq = load(p + "self_attn.q_proj.bias")
			l.bk = load(p + "self_attn.k_proj.bias")
			l.bv = load(p + "self_attn.v_proj.bias")
		}
		l.wo = load(p + "self_attn.o_proj.weight")
		l.ln2 = load(p + "post_attention_layernorm.weight")
		l.gate = load(p + "mlp.gate_proj.weight")
		l.up = load(p + "mlp.up_proj.weight")
		l.down = load(p + "mlp.down_proj.weight")
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
// nothing, so a kept layer attends exactly to the positions it ran: the
// full-depth prompt plus earlier tokens decoded with the same schedule.
// (The ORT graphs attend to slots 0..seqlens_k of a layer's buffer, which
// is the same thing as long as the schedule stays fixed for the decode.)
func (r *Reference) Forward(tokens []int, layers []int) ([][]float32, error) {
	return r.Run(tokens, layers, r.cfg.VocabSize, r.step)
}

// step runs one token at position r.Pos().
func (r *Reference) step(tok int, layers []int) []float32 {
	c := r.cfg
	d := c.HiddenSize
	x := make([]float32, d)
	copy(x, r.embed[tok*d:(tok+1)*d])
	for _, l := range layers {
		r.layer(l, x)
	}
	h := rmsNorm(x, r.norm, c.RMSNormEps)
	return refmath.MatVec(r.head, h, c.VocabSize, d)
}

// layer runs decoder layer l on the hidden state x in place.
func (r *Reference) layer(l int, x []float32) {
	c := r.cfg
	w := &r.layers[l]
	d, dh, nh, nkv := c.HiddenSize, c.HeadDim, c.NumHeads, c.NumKVHeads

	// Self-attention block.
	h := rmsNorm(x, w.ln1, c.RMSNormEps)
	q := refmath.AddBias(refmath.MatVec(w.wq, h, nh*dh, d), w.bq)
	k := refmath.AddBias(refmath.MatVec(w.wk, h, nkv*dh, d), w.bk)
	v := refmath.AddBias(refmath.MatVec(w.wv, h, nkv*dh, d), w.bv)
	cos, sin := ropeAt(r.invFreq, r.Pos())
	for i := 0; i < nh; i++ {
		rotateHalf(q[i*dh:(i+1)*dh], cos, sin)
	}
	for i := 0; i < nkv; i++ {
		rotateHalf(k[i*dh:(i+1)*dh], cos, sin)
	}
	kc := r.Layer(l)
	kc.Append(r.Pos(), k, v)

	att := refmath.Attend(q, kc.K, kc.V, nh, nkv, dh, nil)
	o := refmath.MatVec(w.wo, att, d, nh*dh)
	for i := range x {
		x[i] += o[i]
	}

	// MLP block: down(silu(gate(h)) * up(h)).
	h = rmsNorm(x, w.ln2, c.RMSNormEps)
	g := refmath.MatVec(w.gate, h, c.IntermediateSize, d)
	u := refmath.MatVec(w.up, h, c.IntermediateSize, d)
	for i := range g {
		g[i] = silu(g[i]) * u[i]
	}
	m := refmath.MatVec(w.down, g, d, c.IntermediateSize)
	for i := range x {
		x[i] += m[i]
	}
}

// rmsNorm returns w * x / sqrt(mean(x²) + eps).
func rmsNorm(x, w []float32, eps float64) []float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(float64(v)*inv) * w[i]
	}
	return out
}

func silu(x float32) float32 { return float32(float64(x) / (1 + math.Exp(-float64(x)))) }

// ropeAt returns cos and sin of position p's angles, computed exactly as
// Config.RopeCache does.
func ropeAt(invFreq []float64, p int) (cos, sin []float32) {
	cos = make([]float32, len(invFreq))
	sin = make([]float32, len(invFreq))
	for i, f := range invFreq {
		a := float64(float32(p) * float32(f))
		cos[i], sin[i] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	return cos, sin
}

// rotateHalf applies transformers' rotate_half rotary embedding to one
// head: the first and second halves form the (real, imaginary) pairs.
func rotateHalf(x, cos, sin []float32) {
	half := len(x) / 2
	for i := 0; i < half; i++ {
		x1, x2 := x[i], x[i+half]
		x[i] = x1*cos[i] - x2*sin[i]
		x[i+half] = x2*cos[i] + x1*sin[i]
	}
}

// Argmax returns the index of the largest logit, the first one on ties: the
// greedy choice.
func Argmax(logits []float32) int { return refmath.Argmax(logits) }
