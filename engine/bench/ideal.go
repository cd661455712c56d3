package bench

import (
	"fmt"

	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// Decode steps on a CPU are bound by reading weights, so the ideal ULS
// speedup is the ratio of weight bytes one decode step reads at full depth
// to the bytes it reads with the schedule. A step reads one embedding row
// per token, every kept layer's weights once (whatever the batch) and the
// head's weights once.

// MatrixBytes is the run-time size of one [n, k] projection stored in dtype:
// 4 bytes per element for fp32 and for fp16 (the graphs cast fp16 weights to
// float32, a cast ONNX Runtime folds when it loads the graph, so the kernels
// read float32), and MatMulNBits' packed 4-bit codes plus one float32 scale
// per block of block weights for int4.
func MatrixBytes(dtype string, block, n, k int) (int64, error) {
	switch dtype {
	case llama.DTypeFP32, llama.DTypeFP16:
		return 4 * int64(n) * int64(k), nil
	case llama.DTypeInt4:
		blocks := int64(k+block-1) / int64(block)
		return int64(n) * blocks * int64(block/2+4), nil
	}
	return 0, fmt.Errorf("weight dtype %q: want fp32, fp16 or int4", dtype)
}

// LayerBytes is the weight bytes of one decoder layer: the q, k, v and o
// projections, the three MLP projections and two float32 RMSNorm weights.
// (Attention biases, which only Qwen2 has, are a few KiB and not counted:
// the manifest does not record them.)
func LayerBytes(m *manifest.Manifest) (int64, error) {
	d, q, kv, inter := m.HiddenSize, m.NumHeads*m.HeadDim, m.NumKVHeads*m.HeadDim, m.IntermediateSize
	total := int64(2 * 4 * d) // input and post-attention norms
	for _, mat := range [][2]int{{q, d}, {kv, d}, {kv, d}, {d, q}, {inter, d}, {inter, d}, {d, inter}} {
		b, err := MatrixBytes(m.DType, m.Int4Block(), mat[0], mat[1])
		if err != nil {
			return 0, err
		}
		total += b
	}
	return total, nil
}

// HeadBytes is the weight bytes of the head: the V×D vocabulary projection
// and the final float32 RMSNorm weight.
func HeadBytes(m *manifest.Manifest) (int64, error) {
	b, err := MatrixBytes(m.DType, m.Int4Block(), m.VocabSize, m.HiddenSize)
	if err != nil {
		return 0, err
	}
	return b + int64(4*m.HiddenSize), nil
}

// EmbedRowBytes is the size of one embedding row: float32 in fp32 packages,
// float16 otherwise (the table is stored half size and rows are cast after
// the lookup).
func EmbedRowBytes(m *manifest.Manifest) int64 {
	if m.DType == llama.DTypeFP32 {
		return int64(4 * m.HiddenSize)
	}
	return int64(2 * m.HiddenSize)
}

// StepBytes is the weight bytes one decode step of a batch reads when it
// runs kept layers: batch embedding rows, kept layers and the head.
func StepBytes(m *manifest.Manifest, kept, batch int) (int64, error) {
	layer, err := LayerBytes(m)
	if err != nil {
		return 0, err
	}
	head, err := HeadBytes(m)
	if err != nil {
		return 0, err
	}
	return int64(batch)*EmbedRowBytes(m) + int64(kept)*layer + head, nil
}

// IdealSpeedup is StepBytes at full depth divided by StepBytes with kept
// layers: the decode speedup a purely bandwidth-bound step would reach.
func IdealSpeedup(m *manifest.Manifest, kept, batch int) (float64, error) {
	if kept < 1 || kept > m.NumLayers {
		return 0, fmt.Errorf("ideal speedup: %d kept layers of %d", kept, m.NumLayers)
	}
	if batch < 1 {
		return 0, fmt.Errorf("ideal speedup: batch %d", batch)
	}
	full, err := StepBytes(m, m.NumLayers, batch)
	if err != nil {
		return 0, err
	}
	sched, err := StepBytes(m, kept, batch)
	if err != nil {
		return 0, err
	}
	return float64(full) / float64(sched), nil
}
