package llama

import (
	"fmt"

	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

// GraphOptions selects how the graphs are written: the weight dtype and
// the KV buffer length, which also sizes the rotary tables (0: the smaller
// of max_position_embeddings and DefaultMaxSeqLen).
type GraphOptions = graph.Options

// DefaultMaxSeqLen is the KV buffer length used when none is given.
const DefaultMaxSeqLen = graph.DefaultMaxSeqLen

// Decoder returns the family's graph pieces for cfg.
func (c Config) Decoder() graph.Decoder { return decoder{c} }

// decoder builds the LLaMA-family graphs: RMSNorm, rotary GroupQueryAttention,
// SwiGLU MLP.
type decoder struct{ cfg Config }

func (d decoder) Dims() graph.Dims {
	c := d.cfg
	return graph.Dims{Layers: c.NumLayers, Hidden: c.HiddenSize, Vocab: c.VocabSize, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim}
}

func (d decoder) Normalize(o graph.Options) (graph.Options, error) {
	o, err := graph.CheckOptions(o, d.cfg.MaxPositionEmbeddings, d.cfg.HeadDim)
	if err != nil {
		return o, err
	}
	return o, d.cfg.Validate()
}

func (d decoder) ShapeOf(name string) ([]int, error) { return d.cfg.ShapeOf(name) }

// WriteEmbed writes embed.onnx: input_ids int64 [B,S] → hidden [B,S,D].
func WriteEmbed(dir string, cfg Config, src WeightSource, opts GraphOptions) (string, error) {
	return graph.WriteEmbed(dir, cfg.Decoder(), src, opts)
}

// WriteLayer writes layer_NN.onnx for decoder layer i (docs/design.md).
func WriteLayer(dir string, cfg Config, i int, src WeightSource, opts GraphOptions) (string, error) {
	return graph.WriteLayer(dir, cfg.Decoder(), i, src, opts)
}

// WriteHead writes head.onnx: hidden [B,S,D] → logits [B,S,V] (final norm
// and lm_head; with tied embeddings the embedding matrix).
func WriteHead(dir string, cfg Config, src WeightSource, opts GraphOptions) (string, error) {
	return graph.WriteHead(dir, cfg.Decoder(), src, opts)
}

// WriteHeadLast writes head_last.onnx: hidden [B,S,D] → logits [B,1,V] of
// the last position only.
func WriteHeadLast(dir string, cfg Config, src WeightSource, opts GraphOptions) (string, error) {
	return graph.WriteHeadLast(dir, cfg.Decoder(), src, opts)
}

// WriteAll writes every graph of a model package into dir (graph.WriteAll).
func WriteAll(dir string, cfg Config, src WeightSource, opts GraphOptions, full bool) (manifest.Files, error) {
	return graph.WriteAll(dir, cfg.Decoder(), src, opts, full)
}

// WriteFull writes model_full.onnx, the whole model as one graph
// (graph.WriteFull).
func WriteFull(dir string, cfg Config, src WeightSource, opts GraphOptions) (string, error) {
	return graph.WriteFull(dir, cfg.Decoder(), src, opts)
}

// FullPastKey and the other Full* functions name the per-layer inputs and
// outputs of model_full.onnx.
func FullPastKey(i int) string { return graph.FullPastKey(i) }

// FullPastValue names layer i's past value input of model_full.onnx.
func FullPastValue(i int) string { return graph.FullPastValue(i) }

// FullPresentKey names layer i's present key output of model_full.onnx.
func FullPresentKey(i int) string { return graph.FullPresentKey(i) }

// FullPresentValue names layer i's present value output of model_full.onnx.
func FullPresentValue(i int) string { return graph.FullPresentValue(i) }

// Prepare adds the cos/sin tables [MaxSeqLen, HeadDim/2].
func (d decoder) Prepare(g *graph.Builder, io *graph.LayerIO) {
	c, s := d.cfg.RopeCache(g.Opts.MaxSeqLen)
	dims := []int64{int64(g.Opts.MaxSeqLen), int64(d.cfg.HeadDim / 2)}
	io.Cos, io.Sin = g.Floats("cos_cache", dims, c), g.Floats("sin_cache", dims, s)
}

// Embed adds the token embedding lookup.
func (d decoder) Embed(g *graph.Builder, ids, out string) string { return g.Embed(EmbedName, ids, out) }

// Layer adds decoder layer i: RMSNorm → q/k/v as one packed projection →
// GroupQueryAttention → o_proj → SkipSimplifiedLayerNormalization
// (residual) → SwiGLU MLP (gate and up as one projection) → Add.
func (d decoder) Layer(g *graph.Builder, i int, io graph.LayerIO) {
	c := d.cfg
	p := LayerPrefix(i)
	v := fmt.Sprintf("/layers.%d/", i) // prefix of intermediate value names
	x := g.RMSNorm(io.Hidden, p+"input_layernorm.weight", c.RMSNormEps, v+"input_layernorm")
	var biases []string // Qwen2 and others: q, k and v biases
	if c.AttentionBias {
		biases = []string{p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias"}
	}
	qkv := g.LinearPacked(x, p+"self_attn.qkv_proj.weight",
		[]string{p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"}, biases, v+"qkv_proj")
	att := g.GQA(qkv, "", "", graph.Attention{NumHeads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim}, io, v+"attn")
	o := g.Linear(att, p+"self_attn.o_proj.weight", "", v+"o_proj")
	h, resid := g.SkipRMSNorm(o, io.Hidden, p+"post_attention_layernorm.weight", c.RMSNormEps, v+"post_attention_layernorm", v+"residual")
	m := d.mlp(g, h, p, v)
	g.Op("Add", io.Out, []string{m, resid})
}

// mlp adds the SwiGLU feed-forward block: down(silu(gate(x)) * up(x)),
// with gate and up computed as one product and split.
func (d decoder) mlp(g *graph.Builder, x, p, v string) string {
	gateUp := g.LinearPacked(x, p+"mlp.gate_up_proj.weight", []string{p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"}, nil, v+"gate_up_proj")
	n := int64(d.cfg.IntermediateSize)
	parts := g.Split(gateUp, []int64{n, n}, v+"gate_proj", v+"up_proj")
	gate, up := parts[0], parts[1]
	sig := g.Op("Sigmoid", v+"gate_sigmoid", []string{gate})
	act := g.Op("Mul", v+"gate_silu", []string{gate, sig})
	h := g.Op("Mul", v+"swiglu", []string{act, up})
	return g.Linear(h, p+"mlp.down_proj.weight", "", v+"down_proj")
}

// Head adds the final RMSNorm and the vocabulary projection.
func (d decoder) Head(g *graph.Builder, hidden, out string) string {
	h := g.RMSNorm(hidden, NormName, d.cfg.RMSNormEps, "/head/norm")
	return g.Linear(h, d.cfg.HeadWeightName(), "", out)
}
