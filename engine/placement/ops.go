package placement

import (
	"fmt"
	"strings"

	"github.com/strata-llm/strata/models/onnx"
)

// param is one formal input or output of an op schema: its name and the
// type constraints it is bound to. Several names ("T|T_CACHE") cover
// schema versions that bind the parameter differently; a kernel checks
// the ones it registers. No names means a fixed element type (int64
// shapes, …), which kernels do not constrain.
type param struct {
	name        string
	constraints []string
}

// opSpec is what the check knows of one op: its schema versions, the
// constraints its parameters carry and how its outputs' element types
// follow from its inputs.
type opSpec struct {
	// versions are the opset versions at which the op's schema changed,
	// ascending (ONNX's docs/Changelog.md for ai.onnx; the contrib ops
	// and SimplifiedLayerNormalization have one schema, version 1).
	versions []int64
	inputs   []param
	outputs  []param
	// variadicIn and variadicOut repeat the last input or output.
	variadicIn, variadicOut bool
	// infer returns the element types of the node's outputs from its
	// inputs' (0 for an omitted optional input).
	infer func(n *onnx.Node, in []onnx.DataType) ([]onnx.DataType, error)
}

// p builds a parameter; constraints is "" (fixed type), "T" or "T|T_CACHE".
func p(name, constraints string) param {
	if constraints == "" {
		return param{name: name}
	}
	return param{name: name, constraints: strings.Split(constraints, "|")}
}

// sameAs gives every output the element type of input i.
func sameAs(i int) func(*onnx.Node, []onnx.DataType) ([]onnx.DataType, error) {
	return func(n *onnx.Node, in []onnx.DataType) ([]onnx.DataType, error) {
		if i >= len(in) || in[i] == 0 {
			return nil, fmt.Errorf("input %d is missing", i)
		}
		return fill(len(n.Outputs), func(int) onnx.DataType { return in[i] }), nil
	}
}

func fill(n int, f func(int) onnx.DataType) []onnx.DataType {
	out := make([]onnx.DataType, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// normLike types a normalization: outputs data and sum take input 0's
// type, the statistics (mean, inverse std dev) float.
func normLike(stats ...int) func(*onnx.Node, []onnx.DataType) ([]onnx.DataType, error) {
	return func(n *onnx.Node, in []onnx.DataType) ([]onnx.DataType, error) {
		if len(in) == 0 || in[0] == 0 {
			return nil, fmt.Errorf("input 0 is missing")
		}
		return fill(len(n.Outputs), func(i int) onnx.DataType {
			for _, s := range stats {
				if i == s {
					return onnx.Float
				}
			}
			return in[0]
		}), nil
	}
}

// Schema versions of the ai.onnx ops below, from ONNX's docs/Changelog.md.
var (
	elementwiseVersions = []int64{1, 6, 7, 13, 14}
	unaryVersions       = []int64{1, 6, 13}
	castVersions        = []int64{1, 6, 9, 13, 19, 21, 23, 24, 25}
	identityVersions    = []int64{1, 13, 14, 16, 19, 21, 23, 24, 25}
	reshapeVersions     = []int64{1, 5, 13, 14, 19, 21, 23, 24, 25}
	shapeVersions       = []int64{1, 13, 15, 19, 21, 23, 24, 25}
	squeezeVersions     = []int64{1, 11, 13, 21, 23, 24, 25}
	transposeVersions   = []int64{1, 13, 21, 23, 24, 25}
	contribVersions     = []int64{1}
)

func binary() opSpec {
	return opSpec{versions: elementwiseVersions, inputs: []param{p("A", "T"), p("B", "T")}, outputs: []param{p("C", "T")}, infer: sameAs(0)}
}

func unary(in, out string) opSpec {
	return opSpec{versions: unaryVersions, inputs: []param{p(in, "T")}, outputs: []param{p(out, "T")}, infer: sameAs(0)}
}

// ops maps "domain:op" to what the check knows of it: every op strata's
// exporter writes (models/graph, models/llama, models/bloom) and a few
// neighbours. The parameter bindings follow the op schemas: ONNX's for
// ai.onnx, ONNX Runtime's contrib_defs.cc, bert_defs.cc and
// quantization_defs.cc (onnxruntime/core/graph/contrib_ops/) for the
// contrib ops.
var ops = map[string]opSpec{
	"ai.onnx:Add": binary(),
	"ai.onnx:Sub": binary(),
	"ai.onnx:Mul": binary(),
	"ai.onnx:Div": binary(),
	"ai.onnx:Cast": {versions: castVersions, inputs: []param{p("input", "T1")}, outputs: []param{p("output", "T2")},
		infer: func(n *onnx.Node, _ []onnx.DataType) ([]onnx.DataType, error) {
			a, ok := attr(n, "to")
			if !ok || a.I <= 0 {
				return nil, fmt.Errorf("Cast has no 'to' attribute")
			}
			return fill(len(n.Outputs), func(int) onnx.DataType { return onnx.DataType(a.I) }), nil
		}},
	"ai.onnx:Concat": {versions: []int64{1, 4, 11, 13}, inputs: []param{p("inputs", "T")}, variadicIn: true,
		outputs: []param{p("concat_result", "T")},
		infer: func(n *onnx.Node, in []onnx.DataType) ([]onnx.DataType, error) {
			for i, t := range in {
				if t != 0 {
					return sameAs(i)(n, in)
				}
			}
			return nil, fmt.Errorf("Concat has no inputs")
		}},
	"ai.onnx:Expand": {versions: []int64{8, 13}, inputs: []param{p("input", "T"), p("shape", "")},
		outputs: []param{p("output", "T")}, infer: sameAs(0)},
	"ai.onnx:Gather": {versions: []int64{1, 11, 13}, inputs: []param{p("data", "T"), p("indices", "Tind")},
		outputs: []param{p("output", "T")}, infer: sameAs(0)},
	"ai.onnx:Identity": {versions: identityVersions, inputs: []param{p("input", "T|V")}, outputs: []param{p("output", "T|V")}, infer: sameAs(0)},
	"ai.onnx:LayerNormalization": {versions: []int64{17},
		inputs:  []param{p("X", "T"), p("Scale", "T|V"), p("B", "T|V")},
		outputs: []param{p("Y", "T|V"), p("Mean", "U"), p("InvStdDev", "U")}, infer: normLike(1, 2)},
	"ai.onnx:MatMul": {versions: []int64{1, 9, 13}, inputs: []param{p("A", "T"), p("B", "T")}, outputs: []param{p("Y", "T")}, infer: sameAs(0)},
	"ai.onnx:Range": {versions: []int64{11}, inputs: []param{p("start", "T"), p("limit", "T"), p("delta", "T")},
		outputs: []param{p("output", "T")}, infer: sameAs(0)},
	"ai.onnx:Reshape": {versions: reshapeVersions, inputs: []param{p("data", "T"), p("shape", "")},
		outputs: []param{p("reshaped", "T")}, infer: sameAs(0)},
	"ai.onnx:Shape": {versions: shapeVersions, inputs: []param{p("data", "T")}, outputs: []param{p("shape", "T1")},
		infer: func(n *onnx.Node, _ []onnx.DataType) ([]onnx.DataType, error) {
			return fill(len(n.Outputs), func(int) onnx.DataType { return onnx.Int64 }), nil
		}},
	"ai.onnx:Sigmoid": unary("X", "Y"),
	"ai.onnx:Tanh":    unary("input", "output"),
	// SimplifiedLayerNormalization is ONNX Runtime's RMSNorm, registered in
	// the ai.onnx domain (contrib_defs.cc): Y takes the scale's type.
	"ai.onnx:SimplifiedLayerNormalization": {versions: contribVersions,
		inputs: []param{p("X", "T"), p("scale", "V")}, outputs: []param{p("Y", "V"), p("inv_std_var", "U")},
		infer: func(n *onnx.Node, in []onnx.DataType) ([]onnx.DataType, error) {
			if len(in) < 2 || in[0] == 0 || in[1] == 0 {
				return nil, fmt.Errorf("X or scale is missing")
			}
			return fill(len(n.Outputs), func(i int) onnx.DataType {
				if i == 0 {
					return in[1] // Y
				}
				return onnx.Float // inv_std_var
			}), nil
		}},
	"ai.onnx:Slice": {versions: []int64{1, 10, 11, 13},
		inputs:  []param{p("data", "T"), p("starts", "Tind"), p("ends", "Tind"), p("axes", "Tind"), p("steps", "Tind")},
		outputs: []param{p("output", "T")}, infer: sameAs(0)},
	"ai.onnx:Softmax": {versions: []int64{1, 11, 13}, inputs: []param{p("input", "T")}, outputs: []param{p("output", "T")}, infer: sameAs(0)},
	"ai.onnx:Split": {versions: []int64{1, 2, 11, 13, 18}, inputs: []param{p("input", "T"), p("split", "")},
		outputs: []param{p("outputs", "T")}, variadicOut: true, infer: sameAs(0)},
	"ai.onnx:Squeeze": {versions: squeezeVersions, inputs: []param{p("data", "T"), p("axes", "")},
		outputs: []param{p("squeezed", "T")}, infer: sameAs(0)},
	"ai.onnx:Unsqueeze": {versions: squeezeVersions, inputs: []param{p("data", "T"), p("axes", "")},
		outputs: []param{p("expanded", "T")}, infer: sameAs(0)},
	"ai.onnx:Transpose": {versions: transposeVersions, inputs: []param{p("data", "T")}, outputs: []param{p("transposed", "T")}, infer: sameAs(0)},
	"ai.onnx:Where": {versions: []int64{9, 16}, inputs: []param{p("condition", "B"), p("X", "T"), p("Y", "T")},
		outputs: []param{p("output", "T")}, infer: sameAs(1)},

	"com.microsoft:FastGelu": {versions: contribVersions, inputs: []param{p("X", "T"), p("bias", "T")},
		outputs: []param{p("Y", "T")}, infer: sameAs(0)},
	"com.microsoft:Gelu": {versions: contribVersions, inputs: []param{p("X", "T")}, outputs: []param{p("Y", "T")}, infer: sameAs(0)},
	// GroupQueryAttention: the KV cache is T in older schemas and T_CACHE
	// in newer ones; the output and output_qk take the query's type.
	"com.microsoft:GroupQueryAttention": {versions: contribVersions,
		inputs: []param{p("query", "T"), p("key", "T"), p("value", "T"), p("past_key", "T|T_CACHE"), p("past_value", "T|T_CACHE"),
			p("seqlens_k", "M"), p("total_sequence_length", "M"), p("cos_cache", "T"), p("sin_cache", "T"),
			p("position_ids", ""), p("attention_bias", "T"), p("head_sink", "T"), p("k_scale", "T_KV_SCALE"), p("v_scale", "T_KV_SCALE")},
		outputs: []param{p("output", "T"), p("present_key", "T|T_CACHE"), p("present_value", "T|T_CACHE"), p("output_qk", "T")},
		infer: func(n *onnx.Node, in []onnx.DataType) ([]onnx.DataType, error) {
			if len(in) == 0 || in[0] == 0 {
				return nil, fmt.Errorf("query is missing")
			}
			cache := in[0]
			if len(in) > 3 && in[3] != 0 {
				cache = in[3]
			}
			return fill(len(n.Outputs), func(i int) onnx.DataType {
				if i == 1 || i == 2 {
					return cache
				}
				return in[0]
			}), nil
		}},
	"com.microsoft:MatMulNBits": {versions: contribVersions,
		inputs:  []param{p("A", "T1"), p("B", "T2"), p("scales", "T1"), p("zero_points", "T3"), p("g_idx", "T4"), p("bias", "T1")},
		outputs: []param{p("Y", "T1")}, infer: sameAs(0)},
	"com.microsoft:RotaryEmbedding": {versions: contribVersions,
		inputs:  []param{p("input", "T"), p("position_ids", "M"), p("cos_cache", "T"), p("sin_cache", "T")},
		outputs: []param{p("output", "T")}, infer: sameAs(0)},
	"com.microsoft:SkipLayerNormalization": {versions: contribVersions,
		inputs:  []param{p("input", "T"), p("skip", "T"), p("gamma", "T"), p("beta", "T"), p("bias", "T")},
		outputs: []param{p("output", "T"), p("mean", "U"), p("inv_std_var", "U"), p("input_skip_bias_sum", "T")},
		infer:   normLike(1, 2)},
	"com.microsoft:SkipSimplifiedLayerNormalization": {versions: contribVersions,
		inputs:  []param{p("input", "T"), p("skip", "T"), p("gamma", "T"), p("bias", "T")},
		outputs: []param{p("output", "T"), p("mean", "U"), p("inv_std_var", "U"), p("input_skip_bias_sum", "T")},
		infer:   normLike(1, 2)},
}

// opKey names an op as "domain:op" ("" is "ai.onnx").
func opKey(domain, op string) string {
	if domain == "" {
		domain = "ai.onnx"
	}
	return domain + ":" + op
}

// sinceVersion is the version of the op's schema in effect at opset
// imported: the newest schema version not above it.
func (s opSpec) sinceVersion(imported int64) (int64, bool) {
	var v int64
	for _, x := range s.versions {
		if x <= imported {
			v = x
		}
	}
	return v, v > 0
}

// input returns formal input i, repeating the last one of a variadic op.
func (s opSpec) input(i int) (param, bool) {
	return at(s.inputs, i, s.variadicIn)
}

func (s opSpec) output(i int) (param, bool) {
	return at(s.outputs, i, s.variadicOut)
}

func at(ps []param, i int, variadic bool) (param, bool) {
	switch {
	case i < len(ps):
		return ps[i], true
	case variadic && len(ps) > 0:
		return ps[len(ps)-1], true
	}
	return param{}, false
}

func attr(n *onnx.Node, name string) (onnx.Attr, bool) {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a, true
		}
	}
	return onnx.Attr{}, false
}
