// Package llama2c reads the legacy checkpoint format of karpathy's llama2.c
// (run.c): a header of seven int32 values followed by float32 weights.
// Weights are served under Hugging Face names and in Hugging Face layout:
// wq and wk are permuted from llama2.c's interleaved RoPE pairs to the
// rotate_half layout, exactly as transformers' convert_llama_weights_to_hf.py
// does for Meta checkpoints.
package llama2c

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/strata-llm/strata/models/llama"
)

// HeaderSize is the size of the legacy header in bytes.
const HeaderSize = 7 * 4

// magicV1 starts llama2.c's newer ("version 1/2") export format.
const magicV1 = 0x616b3432

// Limits that keep a corrupt header from asking for absurd sizes.
const (
	maxDim    = 1 << 16
	maxLayers = 1024
	maxVocab  = 1 << 22
	maxSeq    = 1 << 22
)

// Header is the legacy llama2.c header.
type Header struct {
	Dim, HiddenDim, Layers, Heads, KVHeads int
	// Vocab is the vocabulary size (the absolute value of the stored field).
	Vocab int
	// Shared is true when the classifier reuses the token embeddings (the
	// stored vocab_size is positive).
	Shared bool
	SeqLen int
}

// HeadDim returns Dim / Heads.
func (h Header) HeadDim() int { return h.Dim / h.Heads }

// ParseHeader decodes and checks the header of a file of fileSize bytes:
// sizes must be positive and consistent and the weights must fill the file
// exactly.
func ParseHeader(b []byte, fileSize int64) (Header, error) {
	if len(b) < HeaderSize || fileSize < HeaderSize {
		return Header{}, fmt.Errorf("llama2.c file of %d bytes is shorter than its %d-byte header", fileSize, HeaderSize)
	}
	if binary.LittleEndian.Uint32(b) == magicV1 {
		return Header{}, fmt.Errorf("llama2.c file uses the version 1/2 export format; export it with llama2.c's --version 0 (legacy)")
	}
	var v [7]int32
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	h := Header{Dim: int(v[0]), HiddenDim: int(v[1]), Layers: int(v[2]), Heads: int(v[3]), KVHeads: int(v[4]),
		Vocab: int(v[5]), Shared: v[5] > 0, SeqLen: int(v[6])}
	if h.Vocab < 0 {
		h.Vocab = -h.Vocab
	}
	for _, c := range []struct {
		name   string
		v, max int
	}{{"dim", h.Dim, maxDim}, {"hidden_dim", h.HiddenDim, 4 * maxDim}, {"n_layers", h.Layers, maxLayers},
		{"n_heads", h.Heads, maxDim}, {"n_kv_heads", h.KVHeads, maxDim}, {"vocab_size", h.Vocab, maxVocab}, {"seq_len", h.SeqLen, maxSeq}} {
		if c.v <= 0 || c.v > c.max {
			return Header{}, fmt.Errorf("llama2.c header: %s = %d is out of range (1..%d)", c.name, c.v, c.max)
		}
	}
	if h.Dim%h.Heads != 0 || h.HeadDim()%2 != 0 {
		return Header{}, fmt.Errorf("llama2.c header: dim %d over %d heads does not give an even head size", h.Dim, h.Heads)
	}
	if h.Heads%h.KVHeads != 0 {
		return Header{}, fmt.Errorf("llama2.c header: n_heads %d is not a multiple of n_kv_heads %d", h.Heads, h.KVHeads)
	}
	if want := h.FileSize(); want != fileSize {
		return Header{}, fmt.Errorf("llama2.c file is %d bytes but its header (dim %d, hidden %d, %d layers, vocab %d, seq %d, shared classifier %v) needs %d (truncated or not a legacy llama2.c file?)",
			fileSize, h.Dim, h.HiddenDim, h.Layers, h.Vocab, h.SeqLen, h.Shared, want)
	}
	return h, nil
}

// segment is one weight array of the file: per-layer arrays hold Layers
// consecutive blocks of rows×cols floats.
type segment struct {
	name       string
	rows, cols int
	perLayer   bool
}

// segments lists the weight arrays in file order.
func (h Header) segments() []segment {
	q, kv, hd := h.Heads*h.HeadDim(), h.KVHeads*h.HeadDim(), h.HeadDim()
	s := []segment{
		{"token_embedding", h.Vocab, h.Dim, false},
		{"rms_att", 1, h.Dim, true},
		{"wq", q, h.Dim, true},
		{"wk", kv, h.Dim, true},
		{"wv", kv, h.Dim, true},
		{"wo", h.Dim, q, true},
		{"rms_ffn", 1, h.Dim, true},
		{"w1", h.HiddenDim, h.Dim, true},
		{"w2", h.Dim, h.HiddenDim, true},
		{"w3", h.HiddenDim, h.Dim, true},
		{"rms_final", 1, h.Dim, false},
		{"freq_cis_real", h.SeqLen, hd / 2, false},
		{"freq_cis_imag", h.SeqLen, hd / 2, false},
	}
	if !h.Shared {
		s = append(s, segment{"wcls", h.Vocab, h.Dim, false})
	}
	return s
}

func (s segment) floats(layers int) int64 {
	n := int64(s.rows) * int64(s.cols)
	if s.perLayer {
		n *= int64(layers)
	}
	return n
}

// FileSize returns the exact size of a legacy file with this header.
func (h Header) FileSize() int64 {
	n := int64(HeaderSize)
	for _, s := range h.segments() {
		n += 4 * s.floats(h.Layers)
	}
	return n
}

// Config returns the model's configuration (llama2.c's RoPE theta 10000 and
// RMSNorm epsilon 1e-5; BOS 1 and EOS 2 as in its sentencepiece tokenizer).
func (h Header) Config() llama.Config {
	return llama.Config{
		ModelType: "llama", NumLayers: h.Layers, HiddenSize: h.Dim, NumHeads: h.Heads, NumKVHeads: h.KVHeads,
		HeadDim: h.HeadDim(), IntermediateSize: h.HiddenDim, VocabSize: h.Vocab, MaxPositionEmbeddings: h.SeqLen,
		RopeTheta: 10000, RMSNormEps: 1e-5, TieWordEmbeddings: h.Shared, BOSID: 1, EOSIDs: []int{2},
	}
}

// location says where a Hugging Face tensor lives in the file.
type location struct {
	offset     int64 // bytes from the start of the file
	rows, cols int
	permute    int // > 0: apply the RoPE permutation with this many heads
}

// File is an open llama2.c checkpoint. It implements llama.WeightSource.
type File struct {
	Header Header
	f      *os.File
	where  map[string]location
}

// Open opens and checks a legacy llama2.c checkpoint.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open llama2.c checkpoint: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("llama2.c checkpoint %s: %w", path, err)
	}
	buf := make([]byte, HeaderSize)
	if _, err := io.ReadFull(f, buf); err != nil && st.Size() >= HeaderSize {
		f.Close()
		return nil, fmt.Errorf("llama2.c checkpoint %s: %w", path, err)
	}
	h, err := ParseHeader(buf, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("llama2.c checkpoint %s: %w", path, err)
	}
	return &File{Header: h, f: f, where: h.locations()}, nil
}

// locations maps Hugging Face names to file locations.
func (h Header) locations() map[string]location {
	off := map[string]int64{}
	pos := int64(HeaderSize)
	for _, s := range h.segments() {
		off[s.name] = pos
		pos += 4 * s.floats(h.Layers)
	}
	segs := map[string]segment{}
	for _, s := range h.segments() {
		segs[s.name] = s
	}
	layer := func(name string, l, permute int) location {
		s := segs[name]
		return location{offset: off[name] + 4*int64(l)*int64(s.rows)*int64(s.cols), rows: s.rows, cols: s.cols, permute: permute}
	}
	m := map[string]location{
		llama.EmbedName: layer("token_embedding", 0, 0),
		llama.NormName:  layer("rms_final", 0, 0),
	}
	if !h.Shared {
		m[llama.LMHeadName] = layer("wcls", 0, 0)
	}
	for l := 0; l < h.Layers; l++ {
		p := llama.LayerPrefix(l)
		m[p+"input_layernorm.weight"] = layer("rms_att", l, 0)
		m[p+"self_attn.q_proj.weight"] = layer("wq", l, h.Heads)
		m[p+"self_attn.k_proj.weight"] = layer("wk", l, h.KVHeads)
		m[p+"self_attn.v_proj.weight"] = layer("wv", l, 0)
		m[p+"self_attn.o_proj.weight"] = layer("wo", l, 0)
		m[p+"post_attention_layernorm.weight"] = layer("rms_ffn", l, 0)
		m[p+"mlp.gate_proj.weight"] = layer("w1", l, 0)
		m[p+"mlp.down_proj.weight"] = layer("w2", l, 0)
		m[p+"mlp.up_proj.weight"] = layer("w3", l, 0)
	}
	return m
}

// Config returns the model's configuration.
func (f *File) Config() llama.Config { return f.Header.Config() }

// Tensor implements llama.WeightSource: it reads one tensor in Hugging Face
// layout ([out, in] for projections, [n] for norms).
func (f *File) Tensor(name string) ([]float32, []int, error) {
	loc, ok := f.where[name]
	if !ok {
		return nil, nil, fmt.Errorf("llama2.c checkpoint has no tensor %q", name)
	}
	n := loc.rows * loc.cols
	raw := make([]byte, 4*n)
	if _, err := f.f.ReadAt(raw, loc.offset); err != nil {
		return nil, nil, fmt.Errorf("llama2.c checkpoint: read %s: %w", name, err)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	shape := []int{loc.rows, loc.cols}
	if loc.rows == 1 {
		shape = []int{loc.cols}
	}
	if loc.permute > 0 {
		data = PermuteToHF(data, loc.permute, loc.rows, loc.cols)
	}
	return data, shape, nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// PermuteToHF reorders the rows of a q or k projection [rows, cols] from
// interleaved RoPE pairs (row 2i+r of each head) to the rotate_half layout
// (row r·Dh/2+i), as transformers' convert_llama_weights_to_hf.py permute().
func PermuteToHF(w []float32, heads, rows, cols int) []float32 {
	return permuteRows(w, heads, rows, cols, true)
}

// PermuteFromHF is the inverse of PermuteToHF.
func PermuteFromHF(w []float32, heads, rows, cols int) []float32 {
	return permuteRows(w, heads, rows, cols, false)
}

func permuteRows(w []float32, heads, rows, cols int, toHF bool) []float32 {
	out := make([]float32, len(w))
	dh := rows / heads
	half := dh / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			for r := 0; r < 2; r++ {
				meta := h*dh + 2*i + r
				hf := h*dh + r*half + i
				src, dst := meta, hf
				if !toHF {
					src, dst = hf, meta
				}
				copy(out[dst*cols:(dst+1)*cols], w[src*cols:(src+1)*cols])
			}
		}
	}
	return out
}
