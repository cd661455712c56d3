package manifest

import "fmt"

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
