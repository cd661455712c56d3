package graph

import (
	"fmt"
	"math"
	"strings"

	"github.com/strata-llm/strata/models/onnx"
)

// Embed adds the lookup of ids in the named [V, D] embedding matrix
// (Gather). In fp16 and int4 the table is stored fp16 and, in fp32 compute,
// the gathered rows are cast to float32, so the table stays half size in
// memory.
func (g *Builder) Embed(table, ids, out string) string {
	w, shape := g.Load(table)
	dims := []int64{int64(dim(shape, 0)), int64(dim(shape, 1))}
	if g.Opts.DType == DTypeFP32 {
		t := g.Float32(table, dims, w)
		return g.Op("Gather", out, []string{t, ids}, onnx.IntAttr("axis", 0))
	}
	t := g.Initializer(table+".fp16", onnx.Float16, dims, onnx.Float16Bytes(w))
	if g.Act() == onnx.Float16 {
		return g.Op("Gather", out, []string{t, ids}, onnx.IntAttr("axis", 0))
	}
	rows := g.Op("Gather", "/embed/rows_fp16", []string{t, ids}, onnx.IntAttr("axis", 0))
	return g.Op("Cast", out, []string{rows}, onnx.IntAttr("to", int64(onnx.Float)))
}

// RMSNorm adds SimplifiedLayerNormalization (RMSNorm) over the last axis.
func (g *Builder) RMSNorm(x, weight string, eps float64, out string) string {
	gamma := g.Vector(weight)
	return g.Op("SimplifiedLayerNormalization", out, []string{x, gamma},
		onnx.IntAttr("axis", -1), onnx.FloatAttr("epsilon", float32(eps)), onnx.IntAttr("stash_type", 1))
}

// SkipRMSNorm adds com.microsoft.SkipSimplifiedLayerNormalization: it
// returns RMSNorm(x+skip) and the sum x+skip (its 4th output).
func (g *Builder) SkipRMSNorm(x, skip, weight string, eps float64, out, sum string) (string, string) {
	gamma := g.Vector(weight)
	g.Add(onnx.Node{OpType: "SkipSimplifiedLayerNormalization", Domain: "com.microsoft",
		Inputs: []string{x, skip, gamma}, Outputs: []string{out, "", "", sum},
		Attrs: []onnx.Attr{onnx.FloatAttr("epsilon", float32(eps))}})
	return out, sum
}

// LayerNorm adds LayerNormalization over the last axis with a scale and a
// bias.
func (g *Builder) LayerNorm(x, weight, bias string, eps float64, out string) string {
	gamma, beta := g.Vector(weight), g.Vector(bias)
	return g.Op("LayerNormalization", out, []string{x, gamma, beta},
		onnx.IntAttr("axis", -1), onnx.FloatAttr("epsilon", float32(eps)), onnx.IntAttr("stash_type", 1))
}

// Linear adds y = x·Wᵀ (+ bias) for the named Hugging Face [out, in]
// weight; bias names a bias vector or is "".
func (g *Builder) Linear(x, weight, bias, out string) string {
	w, shape := g.Load(weight)
	y := g.MatMul(x, weight, w, dim(shape, 0), dim(shape, 1), out, bias != "")
	if bias == "" {
		return y
	}
	return g.Op("Add", out, []string{y, g.Vector(bias)})
}

// LinearPacked adds one product of x with several Hugging Face [n_i, in]
// weights stacked along their output axis, y = x·[W₁;W₂;…]ᵀ (+ [b₁;b₂;…]),
// named out: one larger matmul instead of several small ones that read the
// same input. name names the stacked weight's initializers; biases is nil
// or names one bias vector per weight. The
// product's last axis holds the outputs in the order of weights; int4
// quantizes each output row on its own, so the stacked product equals the
// separate ones.
func (g *Builder) LinearPacked(x, name string, weights, biases []string, out string) string {
	var packed []float32
	n, k := 0, 0
	for i, weight := range weights {
		w, shape := g.Load(weight)
		if g.Err() != nil {
			return out
		}
		if i > 0 && dim(shape, 1) != k {
			g.Fail(fmt.Errorf("pack %s with %s: input sizes %d and %d differ", weight, weights[0], dim(shape, 1), k))
			return out
		}
		n, k = n+dim(shape, 0), dim(shape, 1)
		packed = append(packed, w...)
	}
	y := g.MatMul(x, name, packed, n, k, out, biases != nil)
	if biases == nil {
		return y
	}
	var bias []float32
	for _, b := range biases {
		v, _ := g.Load(b)
		bias = append(bias, v...)
	}
	return g.Op("Add", out, []string{y, g.Floats(strings.TrimSuffix(name, ".weight")+".bias", []int64{int64(len(bias))}, bias)})
}

// Split adds the split of x along its last axis into parts of the given
// sizes, named outs.
func (g *Builder) Split(x string, sizes []int64, outs ...string) []string {
	return g.Add(onnx.Node{OpType: "Split", Inputs: []string{x, g.Int64s(outs[0]+"/sizes", sizes...)}, Outputs: outs,
		Attrs: []onnx.Attr{onnx.IntAttr("axis", -1)}})
}

// MatMul adds x·Wᵀ for a [n, k] weight w given by value (name is its
// initializer name): MatMul over the transposed weight (fp32; fp16, cast
// to float32 inside the graph in fp32 compute, which ORT folds at load), or
// com.microsoft.MatMulNBits for int4 (scales in the activation type). With biased set the product is named
// out+"/matmul" for a bias Add to follow; else it is named out.
func (g *Builder) MatMul(x, name string, w []float32, n, k int, out string, biased bool) string {
	y := out
	if biased {
		y = out + "/matmul"
	}
	switch g.Opts.DType {
	case DTypeFP32:
		wt := g.Float32(name+".T", []int64{int64(k), int64(n)}, Transpose(w, n, k))
		g.Op("MatMul", y, []string{x, wt})
	case DTypeFP16:
		wt := g.Initializer(name+".T.fp16", onnx.Float16, []int64{int64(k), int64(n)}, onnx.Float16Bytes(Transpose(w, n, k)))
		if g.Act() == onnx.Float {
			wt = g.Op("Cast", out+"/weight", []string{wt}, onnx.IntAttr("to", int64(onnx.Float)))
		}
		g.Op("MatMul", y, []string{x, wt})
	case DTypeInt4:
		block := g.Opts.Int4Block
		packed, scales, kBlocks := QuantizeInt4(w, n, k, block)
		b := g.Initializer(name+".q4", onnx.Uint8, []int64{int64(n), int64(kBlocks), int64(block / 2)}, packed)
		s := g.Floats(name+".scales", []int64{int64(n), int64(kBlocks)}, scales)
		g.Add(onnx.Node{OpType: "MatMulNBits", Domain: "com.microsoft", Inputs: []string{x, b, s}, Outputs: []string{y},
			Attrs: []onnx.Attr{onnx.IntAttr("K", int64(k)), onnx.IntAttr("N", int64(n)), onnx.IntAttr("bits", 4),
				onnx.IntAttr("block_size", int64(block)), onnx.IntAttr("accuracy_level", 4)}})
	}
	return y
}

// Attention describes one GroupQueryAttention call.
type Attention struct {
	NumHeads, KVHeads, HeadDim int
}

// GQA adds com.microsoft.GroupQueryAttention over the shared past/present
// KV buffers of length MaxSeqLen. With k and v empty, q is the packed
// [q|k|v] projection. Rotary embeddings (rotate_half layout, positions
// taken from seqlens_k) are applied when io has rotary tables;
// io.Bias, when set, is added to the scaled scores (attention_bias,
// [1, heads, S, total_seq_len]).
//
// On CPU, a prompt (sequence_length > 1 and total_seq_len equal to it) is
// processed with positions 0..S-1 and a causal mask, and row b's keys and
// values land in slots 0..S-1. Right-padded batches therefore work: row b's
// real tokens only attend to earlier real tokens, the padding slots hold
// garbage that row b's next token (at position seqlens_k[b]) overwrites,
// and decode steps attend to slots 0..seqlens_k[b] only. A later chunk of
// S > 1 tokens on a non-empty cache (seqlens_k = total valid length − 1,
// total_seq_len > S) continues at position seqlens_k+1−S.
func (g *Builder) GQA(q, k, v string, a Attention, io LayerIO, out string) string {
	inputs := []string{q, k, v, io.PastK, io.PastV, io.SeqLens, io.Total}
	rotary := io.Cos != ""
	if rotary || io.Bias != "" {
		inputs = append(inputs, io.Cos, io.Sin)
	}
	if io.Bias != "" {
		inputs = append(inputs, "", io.Bias) // position_ids, attention_bias
	}
	attrs := []onnx.Attr{
		onnx.IntAttr("num_heads", int64(a.NumHeads)),
		onnx.IntAttr("kv_num_heads", int64(a.KVHeads)),
		onnx.FloatAttr("scale", float32(1/math.Sqrt(float64(a.HeadDim)))),
	}
	if rotary {
		attrs = append(attrs, onnx.IntAttr("do_rotary", 1), onnx.IntAttr("rotary_interleaved", 0))
	}
	attrs = append(attrs, onnx.IntAttr("local_window_size", -1))
	g.Add(onnx.Node{OpType: "GroupQueryAttention", Domain: "com.microsoft",
		Inputs: inputs, Outputs: []string{out, io.PresentK, io.PresentV}, Attrs: attrs})
	return out
}

// SkipLayerNorm adds com.microsoft.SkipLayerNormalization: it returns
// LayerNorm(x+skip+bias) and the sum x+skip+bias (its 4th output). bias
// names a bias vector or is "".
func (g *Builder) SkipLayerNorm(x, skip, weight, beta, bias string, eps float64, out, sum string) (string, string) {
	inputs := []string{x, skip, g.Vector(weight), g.Vector(beta)}
	if bias != "" {
		inputs = append(inputs, g.Vector(bias))
	}
	g.Add(onnx.Node{OpType: "SkipLayerNormalization", Domain: "com.microsoft",
		Inputs: inputs, Outputs: []string{out, "", "", sum},
		Attrs: []onnx.Attr{onnx.FloatAttr("epsilon", float32(eps))}})
	return out, sum
}

// FastGelu adds com.microsoft.FastGelu, the tanh approximation of GELU,
// 0.5·x·(1+tanh(sqrt(2/π)·(x+0.044715·x³))), of x plus the named bias
// vector (bias may be "").
func (g *Builder) FastGelu(x, bias, out string) string {
	inputs := []string{x}
	if bias != "" {
		inputs = append(inputs, g.Vector(bias))
	}
	return g.Add(onnx.Node{OpType: "FastGelu", Domain: "com.microsoft", Inputs: inputs, Outputs: []string{out}})[0]
}
