package llama

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// GraphOptions selects how the graphs are written.
type GraphOptions struct {
	// DType is the weight type: "fp32" (default), "fp16" or "int4".
	// Activations and the KV cache are float32 in every dtype.
	DType string
	// MaxSeqLen is the KV buffer length and the size of the rotary tables
	// (0: the smaller of max_position_embeddings and DefaultMaxSeqLen).
	MaxSeqLen int
}

// DefaultMaxSeqLen is the KV buffer length used when none is given.
const DefaultMaxSeqLen = 2048

func (o GraphOptions) normalize(cfg Config) (GraphOptions, error) {
	if o.DType == "" {
		o.DType = DTypeFP32
	}
	if err := CheckDType(o.DType); err != nil {
		return o, err
	}
	if o.MaxSeqLen == 0 {
		o.MaxSeqLen = min(cfg.MaxPositionEmbeddings, DefaultMaxSeqLen)
	}
	if o.MaxSeqLen < 1 {
		return o, fmt.Errorf("max sequence length %d, want > 0", o.MaxSeqLen)
	}
	if err := cfg.Validate(); err != nil {
		return o, err
	}
	// ORT's GroupQueryAttention kernels reject other head sizes at run time.
	if cfg.HeadDim%16 != 0 {
		return o, fmt.Errorf("head_dim %d is not a multiple of 16, which ONNX Runtime's GroupQueryAttention requires", cfg.HeadDim)
	}
	return o, nil
}

// Symbolic dimensions.
var (
	dimBatch = onnx.P("batch_size")
	dimSeq   = onnx.P("sequence_length")
)

// graph builds one ONNX graph of the family, fetching each weight from src
// only when the node that uses it is added.
type graph struct {
	*onnx.Builder
	cfg  Config
	src  WeightSource
	opts GraphOptions
}

// write builds a graph with build and writes dir/file plus its external
// data file dir/file.data. It returns the path of the graph.
func write(dir, file string, cfg Config, src WeightSource, opts GraphOptions, build func(g *graph)) (string, error) {
	opts, err := opts.normalize(cfg)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	path := filepath.Join(dir, file)
	data, err := onnx.CreateExternalData(path + ".data")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	g := &graph{Builder: onnx.NewBuilder(file, data), cfg: cfg, src: src, opts: opts}
	build(g)
	if err := g.WriteModel(path); err != nil {
		data.Close()
		os.Remove(path + ".data")
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	slog.Debug("wrote graph", "file", path, "dtype", opts.DType, "data_bytes", data.Size())
	return path, nil
}

// WriteEmbed writes embed.onnx: input_ids int64 [B,S] → hidden [B,S,D].
func WriteEmbed(dir string, cfg Config, src WeightSource, opts GraphOptions) (string, error) {
	return write(dir, manifest.EmbedFile, cfg, src, opts, func(g *graph) {
		ids := g.Input(manifest.InputIDs, onnx.Int64, dimBatch, dimSeq)
		g.embed(ids, manifest.Hidden)
		g.Output(manifest.Hidden, onnx.Float, dimBatch, dimSeq, onnx.D(cfg.HiddenSize))
	})
}

// WriteLayer writes layer_NN.onnx for decoder layer i (docs/design.md, "The package format").
func WriteLayer(dir string, cfg Config, i int, src WeightSource, opts GraphOptions) (string, error) {
	if i < 0 || i >= cfg.NumLayers {
		return "", fmt.Errorf("write layer %d: the model has %d layers", i, cfg.NumLayers)
	}
	return write(dir, manifest.LayerFile(i), cfg, src, opts, func(g *graph) {
		hidden := g.Input(manifest.Hidden, onnx.Float, dimBatch, dimSeq, onnx.D(cfg.HiddenSize))
		kv := g.kvDims()
		pastK := g.Input(manifest.PastKey, onnx.Float, kv...)
		pastV := g.Input(manifest.PastValue, onnx.Float, kv...)
		seqlens := g.Input(manifest.SeqLensK, onnx.Int32, dimBatch)
		total := g.Input(manifest.TotalSeqLen, onnx.Int32)
		cos, sin := g.ropeCaches()
		g.layer(i, layerIO{hidden, pastK, pastV, seqlens, total, cos, sin, manifest.HiddenOut, manifest.PresentKey, manifest.PresentValue})
		g.Output(manifest.HiddenOut, onnx.Float, dimBatch, dimSeq, onnx.D(cfg.HiddenSize))
		g.Output(manifest.PresentKey, onnx.Float, kv...)
		g.Output(manifest.PresentValue, onnx.Float, kv...)
	})
}

// WriteHead writes head.onnx: hidden [B,S,D] → logits [B,S,V] (final norm
// and lm_head; with tied embeddings the embedding matrix).
func WriteHead(dir string, cfg Config, src WeightSource, opts GraphOptions) (string, error) {
	return write(dir, manifest.HeadFile, cfg, src, opts, func(g *graph) {
		hidden := g.Input(manifest.Hidden, onnx.Float, dimBatch, dimSeq, onnx.D(cfg.HiddenSize))
		g.head(hidden, manifest.Logits)
		g.Output(manifest.Logits, onnx.Float, dimBatch, dimSeq, onnx.D(cfg.VocabSize))
	})
}

// WriteHeadLast writes head_last.onnx: hidden [B,S,D] → logits [B,1,V]
// of position S-1 only (a prompt's next-token logits without the cost of
// the vocabulary projection at every position; with right-padded batches
// the caller passes each row's last real position instead).
func WriteHeadLast(dir string, cfg Config, src WeightSource, opts GraphOptions) (string, error) {
	return write(dir, manifest.HeadLastFile, cfg, src, opts, func(g *graph) {
		hidden := g.Input(manifest.Hidden, onnx.Float, dimBatch, dimSeq, onnx.D(cfg.HiddenSize))
		i64 := func(name string, v int64) string {
			return g.Initializer(name, onnx.Int64, []int64{1}, onnx.Int64Bytes([]int64{v}))
		}
		last := g.Op("Slice", "/head/last", []string{hidden, i64("/head/starts", -1), i64("/head/ends", math.MaxInt64), i64("/head/axes", 1)})
		g.head(last, manifest.Logits)
		g.Output(manifest.Logits, onnx.Float, dimBatch, onnx.D(1), onnx.D(cfg.VocabSize))
	})
}

// WriteAll writes every graph of a model package into dir: embed, the
// layers, head, head_last and, when full is set, model_full. It returns
// the file names for the manifest.
func WriteAll(dir string, cfg Config, src WeightSource, opts GraphOptions, full bool) (manifest.Files, error) {
	var files manifest.Files
	path, err := WriteEmbed(dir, cfg, src, opts)
	if err != nil {
		return files, err
	}
	files.Embed = filepath.Base(path)
	for i := 0; i < cfg.NumLayers; i++ {
		if path, err = WriteLayer(dir, cfg, i, src, opts); err != nil {
			return files, err
		}
		files.Layers = append(files.Layers, filepath.Base(path))
		slog.Info("exported layer", "layer", i, "of", cfg.NumLayers)
	}
	if path, err = WriteHead(dir, cfg, src, opts); err != nil {
		return files, err
	}
	files.Head = filepath.Base(path)
	if path, err = WriteHeadLast(dir, cfg, src, opts); err != nil {
		return files, err
	}
	files.HeadLast = filepath.Base(path)
	if full {
		if path, err = WriteFull(dir, cfg, src, opts); err != nil {
			return files, err
		}
		files.Full = filepath.Base(path)
	}
	return files, nil
}

// WriteFull writes model_full.onnx, the whole model as one graph built
// from the same pieces: input_ids, past_key_i/past_value_i, seqlens_k,
// total_seq_len → logits, present_key_i/present_value_i.
func WriteFull(dir string, cfg Config, src WeightSource, opts GraphOptions) (string, error) {
	return write(dir, manifest.FullFile, cfg, src, opts, func(g *graph) {
		ids := g.Input(manifest.InputIDs, onnx.Int64, dimBatch, dimSeq)
		kv := g.kvDims()
		for i := 0; i < cfg.NumLayers; i++ {
			g.Input(manifest.FullPastKey(i), onnx.Float, kv...)
			g.Input(manifest.FullPastValue(i), onnx.Float, kv...)
		}
		seqlens := g.Input(manifest.SeqLensK, onnx.Int32, dimBatch)
		total := g.Input(manifest.TotalSeqLen, onnx.Int32)
		cos, sin := g.ropeCaches()
		h := g.embed(ids, "/embed/hidden")
		for i := 0; i < cfg.NumLayers; i++ {
			out := fmt.Sprintf("/layers.%d/hidden_out", i)
			g.layer(i, layerIO{h, manifest.FullPastKey(i), manifest.FullPastValue(i), seqlens, total, cos, sin, out, manifest.FullPresentKey(i), manifest.FullPresentValue(i)})
			h = out
		}
		g.head(h, manifest.Logits)
		g.Output(manifest.Logits, onnx.Float, dimBatch, dimSeq, onnx.D(cfg.VocabSize))
		for i := 0; i < cfg.NumLayers; i++ {
			g.Output(manifest.FullPresentKey(i), onnx.Float, kv...)
			g.Output(manifest.FullPresentValue(i), onnx.Float, kv...)
		}
	})
}

func (g *graph) kvDims() []onnx.Dim {
	return []onnx.Dim{dimBatch, onnx.D(g.cfg.NumKVHeads), onnx.D(g.opts.MaxSeqLen), onnx.D(g.cfg.HeadDim)}
}

// load fetches a weight with its shape checked; on error it records the
// error and returns nil.
func (g *graph) load(name string) ([]float32, []int) {
	if g.Err() != nil {
		return nil, nil
	}
	shape, err := g.cfg.ShapeOf(name)
	if err == nil {
		var data []float32
		if data, err = Load(g.src, name, shape); err == nil {
			return data, shape
		}
	}
	g.Fail(err)
	return nil, nil
}

// embed adds the token embedding lookup (Gather). In fp16 and int4 the
// table is stored fp16 and the gathered rows are cast to float32, so the
// table stays half size in memory.
func (g *graph) embed(ids, out string) string {
	w, shape := g.load(EmbedName)
	dims := []int64{int64(shape0(shape, 0)), int64(shape0(shape, 1))}
	if g.opts.DType == DTypeFP32 {
		table := g.Float32(EmbedName, dims, w)
		return g.Op("Gather", out, []string{table, ids}, onnx.IntAttr("axis", 0))
	}
	table := g.Initializer(EmbedName+".fp16", onnx.Float16, dims, onnx.Float16Bytes(w))
	rows := g.Op("Gather", "/embed/rows_fp16", []string{table, ids}, onnx.IntAttr("axis", 0))
	return g.Op("Cast", out, []string{rows}, onnx.IntAttr("to", int64(onnx.Float)))
}

func shape0(shape []int, i int) int {
	if i < len(shape) {
		return shape[i]
	}
	return 0
}

// rmsNorm adds SimplifiedLayerNormalization (RMSNorm) over the last axis.
func (g *graph) rmsNorm(x, weight, out string) string {
	w, _ := g.load(weight)
	gamma := g.Float32(weight, []int64{int64(len(w))}, w)
	return g.Op("SimplifiedLayerNormalization", out, []string{x, gamma},
		onnx.IntAttr("axis", -1), onnx.FloatAttr("epsilon", float32(g.cfg.RMSNormEps)), onnx.IntAttr("stash_type", 1))
}

// skipRMSNorm adds com.microsoft.SkipSimplifiedLayerNormalization: it
// returns RMSNorm(x+skip) and the sum x+skip (its 4th output).
func (g *graph) skipRMSNorm(x, skip, weight, out, sum string) (string, string) {
	w, _ := g.load(weight)
	gamma := g.Float32(weight, []int64{int64(len(w))}, w)
	g.Add(onnx.Node{OpType: "SkipSimplifiedLayerNormalization", Domain: "com.microsoft",
		Inputs: []string{x, skip, gamma}, Outputs: []string{out, "", "", sum},
		Attrs: []onnx.Attr{onnx.FloatAttr("epsilon", float32(g.cfg.RMSNormEps))}})
	return out, sum
}

// linear adds y = x·Wᵀ (+ bias) for a Hugging Face [out, in] weight:
// MatMul over the transposed weight (fp32, or fp16 cast to float32 inside
// the graph, which ORT folds at load), or com.microsoft.MatMulNBits for
// int4. bias may be "".
func (g *graph) linear(x, weight, bias, out string) string {
	w, shape := g.load(weight)
	n, k := shape0(shape, 0), shape0(shape, 1)
	y := out
	if bias != "" {
		y = out + "/matmul"
	}
	switch g.opts.DType {
	case DTypeFP32:
		wt := g.Float32(weight+".T", []int64{int64(k), int64(n)}, transpose(w, n, k))
		g.Op("MatMul", y, []string{x, wt})
	case DTypeFP16:
		w16 := g.Initializer(weight+".T.fp16", onnx.Float16, []int64{int64(k), int64(n)}, onnx.Float16Bytes(transpose(w, n, k)))
		wt := g.Op("Cast", out+"/weight", []string{w16}, onnx.IntAttr("to", int64(onnx.Float)))
		g.Op("MatMul", y, []string{x, wt})
	case DTypeInt4:
		packed, scales, kBlocks := QuantizeInt4(w, n, k)
		b := g.Initializer(weight+".q4", onnx.Uint8, []int64{int64(n), int64(kBlocks), Int4BlockSize / 2}, packed)
		s := g.Float32(weight+".scales", []int64{int64(n), int64(kBlocks)}, scales)
		g.Add(onnx.Node{OpType: "MatMulNBits", Domain: "com.microsoft", Inputs: []string{x, b, s}, Outputs: []string{y},
			Attrs: []onnx.Attr{onnx.IntAttr("K", int64(k)), onnx.IntAttr("N", int64(n)), onnx.IntAttr("bits", 4),
				onnx.IntAttr("block_size", Int4BlockSize), onnx.IntAttr("accuracy_level", 4)}})
	}
	if bias == "" {
		return out
	}
	bv, _ := g.load(bias)
	bt := g.Float32(bias, []int64{int64(len(bv))}, bv)
	return g.Op("Add", out, []string{y, bt})
}

func transpose(w []float32, rows, cols int) []float32 {
	if len(w) != rows*cols {
		return nil
	}
	t := make([]float32, len(w))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			t[c*rows+r] = w[r*cols+c]
		}
	}
	return t
}

// ropeCaches adds the cos/sin tables [MaxSeqLen, HeadDim/2].
func (g *graph) ropeCaches() (cos, sin string) {
	c, s := g.cfg.RopeCache(g.opts.MaxSeqLen)
	dims := []int64{int64(g.opts.MaxSeqLen), int64(g.cfg.HeadDim / 2)}
	return g.Float32("cos_cache", dims, c), g.Float32("sin_cache", dims, s)
}

// layerIO names a decoder layer's inputs and outputs.
type layerIO struct {
	hidden, pastK, pastV, seqlens, total, cos, sin string
	out, presentK, presentV                        string
}

// layer adds decoder layer i: RMSNorm → q/k/v → GroupQueryAttention →
// o_proj → SkipSimplifiedLayerNormalization (residual) → SwiGLU MLP → Add.
func (g *graph) layer(i int, io layerIO) {
	p := LayerPrefix(i)
	v := fmt.Sprintf("/layers.%d/", i) // prefix of intermediate value names
	bias := func(name string) string {
		if g.cfg.AttentionBias {
			return p + "self_attn." + name + ".bias"
		}
		return ""
	}
	x := g.rmsNorm(io.hidden, p+"input_layernorm.weight", v+"input_layernorm")
	q := g.linear(x, p+"self_attn.q_proj.weight", bias("q_proj"), v+"q_proj")
	k := g.linear(x, p+"self_attn.k_proj.weight", bias("k_proj"), v+"k_proj")
	val := g.linear(x, p+"self_attn.v_proj.weight", bias("v_proj"), v+"v_proj")
	att := g.attention(q, k, val, io, v+"attn")
	o := g.linear(att, p+"self_attn.o_proj.weight", "", v+"o_proj")
	h, resid := g.skipRMSNorm(o, io.hidden, p+"post_attention_layernorm.weight", v+"post_attention_layernorm", v+"residual")
	m := g.mlp(h, p, v)
	g.Op("Add", io.out, []string{m, resid})
}

// attention adds com.microsoft.GroupQueryAttention with rotary embeddings
// (rotate_half layout, positions taken from seqlens_k) over the shared
// past/present KV buffers of length MaxSeqLen.
//
// On CPU, a prompt (sequence_length > 1 and total_seq_len equal to it) is
// processed with positions 0..S-1 and a causal mask, and row b's keys and
// values land in slots 0..S-1. Right-padded batches therefore work: row b's
// real tokens only attend to earlier real tokens, the padding slots hold
// garbage that row b's next token (at position seqlens_k[b]) overwrites,
// and decode steps attend to slots 0..seqlens_k[b] only. A later chunk of
// S > 1 tokens on a non-empty cache (seqlens_k = total valid length − 1,
// total_seq_len > S) continues at position seqlens_k+1−S (tested).
func (g *graph) attention(q, k, v string, io layerIO, out string) string {
	c := g.cfg
	g.Add(onnx.Node{OpType: "GroupQueryAttention", Domain: "com.microsoft",
		Inputs:  []string{q, k, v, io.pastK, io.pastV, io.seqlens, io.total, io.cos, io.sin},
		Outputs: []string{out, io.presentK, io.presentV},
		Attrs: []onnx.Attr{
			onnx.IntAttr("num_heads", int64(c.NumHeads)),
			onnx.IntAttr("kv_num_heads", int64(c.NumKVHeads)),
			onnx.FloatAttr("scale", float32(1/math.Sqrt(float64(c.HeadDim)))),
			onnx.IntAttr("do_rotary", 1),
			onnx.IntAttr("rotary_interleaved", 0),
			onnx.IntAttr("local_window_size", -1),
		}})
	return out
}

// mlp adds the SwiGLU feed-forward block: down(silu(gate(x)) * up(x)).
func (g *graph) mlp(x, p, v string) string {
	gate := g.linear(x, p+"mlp.gate_proj.weight", "", v+"gate_proj")
	up := g.linear(x, p+"mlp.up_proj.weight", "", v+"up_proj")
	sig := g.Op("Sigmoid", v+"gate_sigmoid", []string{gate})
	act := g.Op("Mul", v+"gate_silu", []string{gate, sig})
	h := g.Op("Mul", v+"swiglu", []string{act, up})
	return g.linear(h, p+"mlp.down_proj.weight", "", v+"down_proj")
}

// head adds the final RMSNorm and the vocabulary projection.
func (g *graph) head(hidden, out string) string {
	h := g.rmsNorm(hidden, NormName, "/head/norm")
	return g.linear(h, g.cfg.HeadWeightName(), "", out)
}
