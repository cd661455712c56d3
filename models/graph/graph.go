// Package graph holds what every decoder family's ONNX graphs share: the
// graph files of a strata package (embedding, one graph per layer, head,
// head_last and the optional monolithic graph) with their fixed inputs and
// outputs (models/manifest), and one function per op pattern — linear
// layers in fp32, fp16 or int4, the norms, GroupQueryAttention over the
// shared past/present KV buffer, the embedding lookup. A family (models/llama,
// models/bloom) implements Decoder with these pieces; the engine binds every
// family's graphs the same way.
package graph

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// Options selects how the graphs are written.
type Options struct {
	// DType is the weight type: "fp32" (default), "fp16" or "int4".
	DType string
	// Compute is the activations' type (manifest.ComputeFP32, the default,
	// or manifest.ComputeFP16): hidden states, the KV cache, attention,
	// norms and the int4 scales in float32 or float16. Logits are float32
	// in both. fp16 compute needs an fp16 or int4 dtype; it is what ONNX
	// Runtime's GPU providers run (their GroupQueryAttention is float16
	// only; docs/gpu.md).
	Compute string
	// MaxSeqLen is the KV buffer length (0: the family's default).
	MaxSeqLen int
	// Int4Block is the int4 weights' block size along K, one scale per
	// block (0: Int4BlockSize). Larger blocks store fewer scales and run
	// ORT's MatMulNBits faster, at a coarser quantization.
	Int4Block int
}

// DefaultMaxSeqLen is the KV buffer length used when none is given and the
// model has no smaller limit.
const DefaultMaxSeqLen = 2048

// Dims are the sizes the package graphs' inputs and outputs need.
type Dims struct {
	Layers, Hidden, Vocab, KVHeads, HeadDim int
}

// Decoder is one model family's graph pieces over a Builder.
type Decoder interface {
	// Dims returns the model's sizes.
	Dims() Dims
	// Normalize fills the defaults of opts and checks that the model and
	// opts can be exported.
	Normalize(opts Options) (Options, error)
	// ShapeOf returns the expected shape of a named weight.
	ShapeOf(name string) ([]int, error)
	// Prepare adds what a graph's layers share (the rotary tables, the
	// attention bias) and records it in io. io.Hidden is then the
	// [B, S, D] hidden states the first layer reads.
	Prepare(g *Builder, io *LayerIO)
	// Embed adds the embedding of ids, named out.
	Embed(g *Builder, ids, out string) string
	// Layer adds decoder layer i.
	Layer(g *Builder, i int, io LayerIO)
	// Head adds the final norm and the vocabulary projection, named out.
	Head(g *Builder, hidden, out string) string
}

// LayerIO names a decoder layer's inputs and outputs and the values its
// graph shares between layers.
type LayerIO struct {
	Hidden, PastK, PastV, SeqLens, Total string
	// Cos and Sin are the rotary tables ("" without rotary embeddings).
	Cos, Sin string
	// Bias is GroupQueryAttention's attention_bias ("" for none).
	Bias                    string
	Out, PresentK, PresentV string
}

// Symbolic dimensions.
var (
	DimBatch = onnx.P("batch_size")
	DimSeq   = onnx.P("sequence_length")
)

// Builder builds one ONNX graph of a family, fetching each weight from the
// source only when the node that uses it is added.
type Builder struct {
	*onnx.Builder
	Opts Options
	dec  Decoder
	src  WeightSource
}

// write builds a graph with build and writes dir/file plus its external
// data file dir/file.data. It returns the path of the graph.
func write(dir, file string, d Decoder, src WeightSource, opts Options, build func(g *Builder)) (string, error) {
	opts, err := d.Normalize(opts)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	path := filepath.Join(dir, file)
	data, err := onnx.CreateExternalData(path + ".data")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	g := &Builder{Builder: onnx.NewBuilder(file, data), Opts: opts, dec: d, src: src}
	build(g)
	if err := g.WriteModel(path); err != nil {
		data.Close()
		os.Remove(path + ".data")
		return "", fmt.Errorf("write %s: %w", file, err)
	}
	slog.Debug("wrote graph", "file", path, "dtype", opts.DType, "data_bytes", data.Size())
	return path, nil
}

// CheckOptions fills the family-independent defaults of opts (fp32; the
// smaller of maxPositions and DefaultMaxSeqLen, or DefaultMaxSeqLen when
// maxPositions is 0) and checks the dtype, the length and the head size.
func CheckOptions(opts Options, maxPositions, headDim int) (Options, error) {
	if opts.DType == "" {
		opts.DType = DTypeFP32
	}
	if err := CheckDType(opts.DType); err != nil {
		return opts, err
	}
	if opts.Compute == "" {
		opts.Compute = manifest.ComputeFP32
	}
	if err := manifest.CheckCompute(opts.DType, opts.Compute); err != nil {
		return opts, err
	}
	if opts.Int4Block == 0 {
		opts.Int4Block = Int4BlockSize
	}
	if err := manifest.CheckInt4Block(opts.Int4Block); err != nil {
		return opts, err
	}
	if opts.MaxSeqLen == 0 {
		opts.MaxSeqLen = DefaultMaxSeqLen
		if maxPositions > 0 {
			opts.MaxSeqLen = min(maxPositions, DefaultMaxSeqLen)
		}
	}
	if opts.MaxSeqLen < 1 {
		return opts, fmt.Errorf("max sequence length %d, want > 0", opts.MaxSeqLen)
	}
	// ORT's GroupQueryAttention kernels reject other head sizes at run time.
	if headDim%16 != 0 {
		return opts, fmt.Errorf("head_dim %d is not a multiple of 16, which ONNX Runtime's GroupQueryAttention requires", headDim)
	}
	return opts, nil
}

// WriteEmbed writes embed.onnx: input_ids int64 [B,S] → hidden [B,S,D].
func WriteEmbed(dir string, d Decoder, src WeightSource, opts Options) (string, error) {
	dims := d.Dims()
	return write(dir, manifest.EmbedFile, d, src, opts, func(g *Builder) {
		ids := g.Input(manifest.InputIDs, onnx.Int64, DimBatch, DimSeq)
		d.Embed(g, ids, manifest.Hidden)
		g.Output(manifest.Hidden, g.Act(), DimBatch, DimSeq, onnx.D(dims.Hidden))
	})
}

// WriteLayer writes layer_NN.onnx for decoder layer i with the inputs and
// outputs of manifest.LayerInputs and manifest.LayerOutputs.
func WriteLayer(dir string, d Decoder, i int, src WeightSource, opts Options) (string, error) {
	dims := d.Dims()
	if i < 0 || i >= dims.Layers {
		return "", fmt.Errorf("write layer %d: the model has %d layers", i, dims.Layers)
	}
	return write(dir, manifest.LayerFile(i), d, src, opts, func(g *Builder) {
		hidden := g.Input(manifest.Hidden, g.Act(), DimBatch, DimSeq, onnx.D(dims.Hidden))
		kv := g.KVDims()
		io := LayerIO{
			Hidden: hidden,
			PastK:  g.Input(manifest.PastKey, g.Act(), kv...), PastV: g.Input(manifest.PastValue, g.Act(), kv...),
			SeqLens: g.Input(manifest.SeqLensK, onnx.Int32, DimBatch), Total: g.Input(manifest.TotalSeqLen, onnx.Int32),
			Out: manifest.HiddenOut, PresentK: manifest.PresentKey, PresentV: manifest.PresentValue,
		}
		d.Prepare(g, &io)
		d.Layer(g, i, io)
		g.Output(manifest.HiddenOut, g.Act(), DimBatch, DimSeq, onnx.D(dims.Hidden))
		g.Output(manifest.PresentKey, g.Act(), kv...)
		g.Output(manifest.PresentValue, g.Act(), kv...)
	})
}

// WriteHead writes head.onnx: hidden [B,S,D] → logits [B,S,V].
func WriteHead(dir string, d Decoder, src WeightSource, opts Options) (string, error) {
	dims := d.Dims()
	return write(dir, manifest.HeadFile, d, src, opts, func(g *Builder) {
		hidden := g.Input(manifest.Hidden, g.Act(), DimBatch, DimSeq, onnx.D(dims.Hidden))
		g.head(hidden)
		g.Output(manifest.Logits, onnx.Float, DimBatch, DimSeq, onnx.D(dims.Vocab))
	})
}

// WriteHeadLast writes head_last.onnx: hidden [B,S,D] → logits [B,1,V]
// of position S-1 only (a prompt's next-token logits without the cost of
// the vocabulary projection at every position; with right-padded batches
// the caller passes each row's last real position instead).
func WriteHeadLast(dir string, d Decoder, src WeightSource, opts Options) (string, error) {
	dims := d.Dims()
	return write(dir, manifest.HeadLastFile, d, src, opts, func(g *Builder) {
		hidden := g.Input(manifest.Hidden, g.Act(), DimBatch, DimSeq, onnx.D(dims.Hidden))
		last := g.Op("Slice", "/head/last", []string{hidden, g.Int64s("/head/starts", -1), g.Int64s("/head/ends", math.MaxInt64), g.Int64s("/head/axes", 1)})
		g.head(last)
		g.Output(manifest.Logits, onnx.Float, DimBatch, onnx.D(1), onnx.D(dims.Vocab))
	})
}

// FullPastKey names layer i's past key input of model_full.onnx.
func FullPastKey(i int) string { return fmt.Sprintf("past_key_%d", i) }

// FullPastValue names layer i's past value input of model_full.onnx.
func FullPastValue(i int) string { return fmt.Sprintf("past_value_%d", i) }

// FullPresentKey names layer i's present key output of model_full.onnx.
func FullPresentKey(i int) string { return fmt.Sprintf("present_key_%d", i) }

// FullPresentValue names layer i's present value output of model_full.onnx.
func FullPresentValue(i int) string { return fmt.Sprintf("present_value_%d", i) }

// WriteFull writes model_full.onnx, the whole model as one graph built
// from the same pieces: input_ids, past_key_i/past_value_i, seqlens_k,
// total_seq_len → logits, present_key_i/present_value_i.
func WriteFull(dir string, d Decoder, src WeightSource, opts Options) (string, error) {
	dims := d.Dims()
	return write(dir, manifest.FullFile, d, src, opts, func(g *Builder) {
		ids := g.Input(manifest.InputIDs, onnx.Int64, DimBatch, DimSeq)
		kv := g.KVDims()
		for i := 0; i < dims.Layers; i++ {
			g.Input(FullPastKey(i), g.Act(), kv...)
			g.Input(FullPastValue(i), g.Act(), kv...)
		}
		h := d.Embed(g, ids, "/embed/hidden")
		io := LayerIO{
			Hidden:  h,
			SeqLens: g.Input(manifest.SeqLensK, onnx.Int32, DimBatch),
			Total:   g.Input(manifest.TotalSeqLen, onnx.Int32),
		}
		d.Prepare(g, &io)
		for i := 0; i < dims.Layers; i++ {
			out := fmt.Sprintf("/layers.%d/hidden_out", i)
			io.Hidden, io.PastK, io.PastV, io.Out, io.PresentK, io.PresentV = h, FullPastKey(i), FullPastValue(i), out, FullPresentKey(i), FullPresentValue(i)
			d.Layer(g, i, io)
			h = out
		}
		g.head(h)
		g.Output(manifest.Logits, onnx.Float, DimBatch, DimSeq, onnx.D(dims.Vocab))
		for i := 0; i < dims.Layers; i++ {
			g.Output(FullPresentKey(i), g.Act(), kv...)
			g.Output(FullPresentValue(i), g.Act(), kv...)
		}
	})
}

// WriteAll writes every graph of a model package into dir: embed, the
// layers, head, head_last and, when full is set, model_full. It returns
// the file names for the manifest.
func WriteAll(dir string, d Decoder, src WeightSource, opts Options, full bool) (manifest.Files, error) {
	var files manifest.Files
	path, err := WriteEmbed(dir, d, src, opts)
	if err != nil {
		return files, err
	}
	files.Embed = filepath.Base(path)
	n := d.Dims().Layers
	for i := 0; i < n; i++ {
		if path, err = WriteLayer(dir, d, i, src, opts); err != nil {
			return files, err
		}
		files.Layers = append(files.Layers, filepath.Base(path))
		slog.Info("exported layer", "layer", i, "of", n)
	}
	if path, err = WriteHead(dir, d, src, opts); err != nil {
		return files, err
	}
	files.Head = filepath.Base(path)
	if path, err = WriteHeadLast(dir, d, src, opts); err != nil {
		return files, err
	}
	files.HeadLast = filepath.Base(path)
	if full {
		if path, err = WriteFull(dir, d, src, opts); err != nil {
			return files, err
		}
		files.Full = filepath.Base(path)
	}
	return files, nil
}

// head adds the family's head over hidden, named manifest.Logits: float32
// logits in every compute type (a float16 head's are cast).
func (g *Builder) head(hidden string) {
	if g.Act() == onnx.Float {
		g.dec.Head(g, hidden, manifest.Logits)
		return
	}
	l := g.dec.Head(g, hidden, "/head/logits_fp16")
	g.Op("Cast", manifest.Logits, []string{l}, onnx.IntAttr("to", int64(onnx.Float)))
}

// Act is the element type of the graph's activations: float16 in fp16
// compute, else float32.
func (g *Builder) Act() onnx.DataType {
	if g.Opts.Compute == manifest.ComputeFP16 {
		return onnx.Float16
	}
	return onnx.Float
}

// Floats adds a float initializer in the activation type (Act): a norm
// scale, a bias, a rotary table.
func (g *Builder) Floats(name string, dims []int64, v []float32) string {
	if g.Act() == onnx.Float {
		return g.Float32(name, dims, v)
	}
	return g.Initializer(name, onnx.Float16, dims, onnx.Float16Bytes(v))
}

// KVDims are the dimensions of a layer's KV buffer: [B, Hkv, MaxSeqLen, Dh].
func (g *Builder) KVDims() []onnx.Dim {
	d := g.dec.Dims()
	return []onnx.Dim{DimBatch, onnx.D(d.KVHeads), onnx.D(g.Opts.MaxSeqLen), onnx.D(d.HeadDim)}
}

// Int64s adds an int64 vector initializer.
func (g *Builder) Int64s(name string, v ...int64) string {
	return g.Initializer(name, onnx.Int64, []int64{int64(len(v))}, onnx.Int64Bytes(v))
}

// Load fetches a weight with its shape checked; on error it records the
// error and returns nil.
func (g *Builder) Load(name string) ([]float32, []int) {
	if g.Err() != nil {
		return nil, nil
	}
	shape, err := g.dec.ShapeOf(name)
	if err == nil {
		var data []float32
		if data, err = Load(g.src, name, shape); err == nil {
			return data, shape
		}
	}
	g.Fail(err)
	return nil, nil
}

// Vector adds the named 1-D weight (a norm scale, a bias) as an
// initializer of the activation type.
func (g *Builder) Vector(name string) string {
	w, _ := g.Load(name)
	return g.Floats(name, []int64{int64(len(w))}, w)
}

func dim(shape []int, i int) int {
	if i < len(shape) {
		return shape[i]
	}
	return 0
}
