package manifest

import (
	"fmt"

	"github.com/strata-llm/strata/models/onnx"
)

// File names of a package's graphs (docs/design.md, "The package format").
const (
	EmbedFile = "embed.onnx"
	HeadFile  = "head.onnx"
	// HeadLastFile computes the logits of the last position only.
	HeadLastFile = "head_last.onnx"
	// FullFile is the optional monolithic graph: embedding, every layer and the head.
	FullFile = "model_full.onnx"
)

// LayerFile is layer i's graph file name, layer_NN.onnx.
func LayerFile(i int) string { return fmt.Sprintf("layer_%02d.onnx", i) }

// Input and output names of a package's graphs. Every family's exporter
// writes them and the engine binds them; nothing else names a graph tensor.
const (
	InputIDs     = "input_ids"     // embedding and full graph input: [B,S] int64
	Hidden       = "hidden"        // embedding output, layer and head input: [B,S,D] float32
	HiddenOut    = "hidden_out"    // layer output: [B,S,D] float32
	PastKey      = "past_key"      // layer input: [B,Hkv,T,Dh] float32, shared with present_key
	PastValue    = "past_value"    // layer input: [B,Hkv,T,Dh] float32, shared with present_value
	PresentKey   = "present_key"   // layer output, bound to the past_key buffer
	PresentValue = "present_value" // layer output, bound to the past_value buffer
	SeqLensK     = "seqlens_k"     // layer input: [B] int32, per row the last position written after this step
	TotalSeqLen  = "total_seq_len" // layer input: scalar int32, the longest row's length after this step
	Logits       = "logits"        // head output: [B,S,V] float32
)

// Inputs and outputs of each graph kind, in binding order.
var (
	EmbedInputs  = []string{InputIDs}
	EmbedOutputs = []string{Hidden}
	LayerInputs  = []string{Hidden, PastKey, PastValue, SeqLensK, TotalSeqLen}
	LayerOutputs = []string{HiddenOut, PresentKey, PresentValue}
	HeadInputs   = []string{Hidden}
	HeadOutputs  = []string{Logits}
)

// Per-layer KV inputs and outputs of the monolithic graph (FullFile).
func FullPastKey(i int) string      { return fmt.Sprintf("past_key_%d", i) }
func FullPastValue(i int) string    { return fmt.Sprintf("past_value_%d", i) }
func FullPresentKey(i int) string   { return fmt.Sprintf("present_key_%d", i) }
func FullPresentValue(i int) string { return fmt.Sprintf("present_value_%d", i) }

// LayerInput is a declared input of a layer graph, as read from the ONNX
// file (onnx.GraphIO): its name and dimensions, -1 for a symbolic one.
type LayerInput struct {
	Name string
	Dims []int64
	// Type is the element type (0: not checked).
	Type onnx.DataType
}

// CheckLayerGraph compares the declared inputs of the layer graph in file
// with the manifest: hidden is [batch, seq, hidden_size] and past_key and
// past_value are [batch, num_kv_heads, max_seq_len, head_dim], all three of
// the manifest's compute type. The error
// names the file, the input and the manifest field that disagree, so that a
// manifest edited (or a graph swapped) after export is caught before any KV
// buffer is allocated or ONNX Runtime reports a shape error mid-run.
func (m *Manifest) CheckLayerGraph(file string, inputs []LayerInput) error {
	type want struct {
		field string
		size  int
	}
	kv := []want{{"", -1}, {"num_kv_heads", m.NumKVHeads}, {"max_seq_len", m.MaxSeqLen}, {"head_dim", m.HeadDim}}
	wants := map[string][]want{
		Hidden:    {{"", -1}, {"", -1}, {"hidden_size", m.HiddenSize}},
		PastKey:   kv,
		PastValue: kv,
	}
	found := 0
	for _, in := range inputs {
		w, ok := wants[in.Name]
		if !ok {
			continue
		}
		found++
		if want := m.ActivationType(); in.Type != 0 && in.Type != want {
			return fmt.Errorf("%s: input %s is %s but manifest.json compute_type %s wants %s", file, in.Name, in.Type, m.Compute(), want)
		}
		if len(in.Dims) != len(w) {
			return fmt.Errorf("%s: input %s has %d dimensions, a strata layer graph's has %d", file, in.Name, len(in.Dims), len(w))
		}
		for i, d := range in.Dims {
			if w[i].size >= 0 && d >= 0 && d != int64(w[i].size) {
				return fmt.Errorf("%s: input %s dimension %d is %d but manifest.json %s is %d", file, in.Name, i, d, w[i].field, w[i].size)
			}
		}
	}
	if found != len(wants) {
		return fmt.Errorf("%s lacks the inputs of a strata layer graph (%s, %s, %s)", file, Hidden, PastKey, PastValue)
	}
	return nil
}

// CheckLayerGraphFile reads the declared inputs of the layer graph at path
// (without ONNX Runtime) and checks them with CheckLayerGraph, naming the
// file as name (its path in the manifest).
func (m *Manifest) CheckLayerGraphFile(path, name string) error {
	ins, _, err := onnx.GraphIO(path)
	if err != nil {
		return err
	}
	inputs := make([]LayerInput, len(ins))
	for i, in := range ins {
		inputs[i] = LayerInput{Name: in.Name, Dims: in.Shape(), Type: in.Type}
	}
	return m.CheckLayerGraph(name, inputs)
}

// ActivationType is the ONNX element type of the graphs' hidden states and
// KV cache: float16 for compute type fp16, else float32.
func (m *Manifest) ActivationType() onnx.DataType {
	if m.Compute() == ComputeFP16 {
		return onnx.Float16
	}
	return onnx.Float
}
