package bloom

import (
	"fmt"

	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// Decoder returns the family's graph pieces for c.
func (c Config) Decoder() graph.Decoder { return decoder{cfg: c} }

// decoder builds the BLOOM graphs: LayerNorm, packed-QKV GroupQueryAttention
// with the ALiBi bias as attention_bias, tanh-approximated GELU MLP, tied head.
type decoder struct {
	cfg Config
}

func (d decoder) Dims() graph.Dims {
	c := d.cfg
	return graph.Dims{Layers: c.NumLayers, Hidden: c.HiddenSize, Vocab: c.VocabSize, KVHeads: c.NumHeads, HeadDim: c.HeadDim()}
}

// Normalize checks the options; without a position table the KV buffer
// length has no model limit.
func (d decoder) Normalize(o graph.Options) (graph.Options, error) {
	if err := d.cfg.Validate(); err != nil {
		return o, err
	}
	return graph.CheckOptions(o, 0, d.cfg.HeadDim())
}

func (d decoder) ShapeOf(name string) ([]int, error) { return d.cfg.ShapeOf(name) }

// Prepare adds the ALiBi bias [1, heads, S, total_seq_len]: head h's score
// of key position j gets slope_h·(j−(T−1)) for T = total_seq_len, the same
// for every query row. (The softmax is invariant to a per-row constant, so
// this equals transformers' slope_h·(j−i) form; counting back from the
// last position keeps the recent keys' biases small, which float16
// compute needs.) io.Hidden must be the [B, S, D] hidden states. Key slots are positions, since every row's tokens sit at
// slots 0..seqlens_k (right padding); the causal limit is
// GroupQueryAttention's.
func (d decoder) Prepare(g *graph.Builder, io *graph.LayerIO) {
	n := d.cfg.NumHeads
	slopes := g.Floats("/alibi/slopes", []int64{1, int64(n), 1, 1}, Slopes(n))
	one := g.Initializer("/alibi/one", onnx.Int32, nil, onnx.Int32Bytes([]int32{1}))
	start := g.Op("Sub", "/alibi/start", []string{one, io.Total}) // 1−T
	pos := g.Op("Range", "/alibi/positions", []string{start, one, one})
	posf := g.Op("Cast", "/alibi/positions_f", []string{pos}, onnx.IntAttr("to", int64(g.Act())))
	bias := g.Op("Mul", "/alibi/bias_1n1t", []string{slopes, posf}) // [1, N, 1, T]
	// GroupQueryAttention wants the query length as dimension 2: add zeros
	// of shape [1, S, 1] taken from the [B, S, D] hidden states. (No
	// int64 shape arithmetic: the GPU providers lack some of its kernels.)
	col := g.Op("Slice", "/alibi/column", []string{io.Hidden, g.Int64s("/alibi/col_starts", 0, 0), g.Int64s("/alibi/col_ends", 1, 1), g.Int64s("/alibi/col_axes", 0, 2)}) // [1, S, 1]
	zeros := g.Op("Mul", "/alibi/zeros", []string{col, g.Floats("/alibi/zero_f", nil, []float32{0})})
	io.Bias = g.Op("Add", "/alibi/bias", []string{bias, zeros}) // [1, N, 1, T] + [1, S, 1] → [1, N, S, T]
}

// Embed adds the embedding lookup and its LayerNorm.
func (d decoder) Embed(g *graph.Builder, ids, out string) string {
	e := g.Embed(EmbedName, ids, "/embed/tokens")
	return g.LayerNorm(e, EmbedNormName+".weight", EmbedNormName+".bias", d.cfg.LayerNormEps, out)
}

// Layer adds decoder layer i as transformers' BloomBlock computes it:
//
//	x = LN1(h); r = x if post-LN residual else h
//	a = dense(attention(x)) + r
//	y = LN2(a); r = y if post-LN residual else a
//	out = 4h_to_h(gelu_tanh(h_to_4h(y))) + r
//
// The fused query_key_value projection is reordered at export into the
// packed [q|k|v] layout and fed to GroupQueryAttention as one tensor; the
// dense bias, the residual add and LN2 are one SkipLayerNormalization.
func (d decoder) Layer(g *graph.Builder, i int, io graph.LayerIO) {
	c := d.cfg
	p := LayerPrefix(i)
	v := fmt.Sprintf("/layers.%d/", i)
	nh, dh, dm := c.NumHeads, c.HeadDim(), c.HiddenSize
	x := g.LayerNorm(io.Hidden, p+"input_layernorm.weight", p+"input_layernorm.bias", c.LayerNormEps, v+"input_layernorm")
	qkvName := p + "self_attention.query_key_value"
	w, _ := g.Load(qkvName + ".weight")
	b, _ := g.Load(qkvName + ".bias")
	qkv := g.MatMul(x, qkvName+".weight", splitQKV(w, nh, dh, dm), 3*dm, dm, v+"qkv", true)
	qkv = g.Op("Add", v+"qkv", []string{qkv, g.Floats(qkvName+".bias", []int64{int64(3 * dm)}, splitQKV(b, nh, dh, 1))})
	att := g.GQA(qkv, "", "", graph.Attention{NumHeads: nh, KVHeads: nh, HeadDim: dh}, io, v+"attn")
	o := g.MatMul(att, p+"self_attention.dense.weight", d.load(g, p+"self_attention.dense.weight"), dm, dm, v+"dense", false)
	resid := io.Hidden
	if c.ResidualPostLayerNorm {
		resid = x
	}
	y, sum := g.SkipLayerNorm(o, resid, p+"post_attention_layernorm.weight", p+"post_attention_layernorm.bias", p+"self_attention.dense.bias",
		c.LayerNormEps, v+"post_attention_layernorm", v+"residual")
	if c.ResidualPostLayerNorm {
		sum = y
	}
	h := g.Linear(y, p+"mlp.dense_h_to_4h.weight", "", v+"dense_h_to_4h")
	act := g.FastGelu(h, p+"mlp.dense_h_to_4h.bias", v+"gelu")
	m := g.Linear(act, p+"mlp.dense_4h_to_h.weight", p+"mlp.dense_4h_to_h.bias", v+"dense_4h_to_h")
	g.Op("Add", io.Out, []string{m, sum})
}

func (d decoder) load(g *graph.Builder, name string) []float32 {
	w, _ := g.Load(name)
	return w
}

// Head adds ln_f and the projection onto the (tied) embedding matrix.
func (d decoder) Head(g *graph.Builder, hidden, out string) string {
	h := g.LayerNorm(hidden, FinalNormName+".weight", FinalNormName+".bias", d.cfg.LayerNormEps, "/head/norm")
	return g.Linear(h, EmbedName, "", out)
}

// GraphOptions selects how the graphs are written (graph.Options; a zero
// MaxSeqLen is graph.DefaultMaxSeqLen).
type GraphOptions = graph.Options

// WriteAll writes every graph of a model package into dir (graph.WriteAll).
func WriteAll(dir string, cfg Config, src WeightSource, opts GraphOptions, full bool) (manifest.Files, error) {
	return graph.WriteAll(dir, cfg.Decoder(), src, opts, full)
}
