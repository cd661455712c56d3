package family

import (
	"fmt"

	"github.com/strata-llm/strata/models/bloom"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// WeightBytes are the run-time weight bytes of a package's graphs that a
// decode step reads, per part.
type WeightBytes struct {
	// EmbedRow is one embedding row, read once per token.
	EmbedRow int64
	// Embed is the rest of the embedding graph (BLOOM's layer norm), read
	// once per step.
	Embed int64
	// Layer is one decoder layer.
	Layer int64
	// Head is the final norm and the vocabulary projection.
	Head int64
}

// Step is the weight bytes one decode step of batch rows reads through kept
// layers.
func (w WeightBytes) Step(kept, batch int) int64 {
	return int64(batch)*w.EmbedRow + w.Embed + int64(kept)*w.Layer + w.Head
}

// Bytes returns the weight bytes of a package with manifest m, from its
// family's shapes (llama.StepWeights, bloom.StepWeights), dtype and int4
// block size.
func Bytes(m *manifest.Manifest) (WeightBytes, error) {
	var embed, layer, head []graph.WeightInfo
	switch m.Architecture {
	case llama.Family:
		embed, layer, head = llama.StepWeights(m)
	case bloom.Family:
		embed, layer, head = bloom.StepWeights(m)
	default:
		return WeightBytes{}, fmt.Errorf("model architecture %q is not supported (want %s or %s)", m.Architecture, llama.Family, bloom.Family)
	}
	w := WeightBytes{EmbedRow: int64(2 * m.HiddenSize)}
	if m.DType == graph.DTypeFP32 {
		w.EmbedRow = int64(4 * m.HiddenSize)
	}
	for _, p := range []struct {
		ws  []graph.WeightInfo
		sum *int64
	}{{embed, &w.Embed}, {layer, &w.Layer}, {head, &w.Head}} {
		for _, t := range p.ws {
			b, err := TensorBytes(m.DType, m.Int4Block(), t.Shape)
			if err != nil {
				return WeightBytes{}, err
			}
			*p.sum += b
		}
	}
	return w, nil
}

// TensorBytes is the run-time size of one weight tensor. Vectors (norms,
// biases) are float32. An [n, k] matrix takes 4 bytes per element for fp32
// and for fp16 (the graphs cast fp16 weights to float32, a cast ONNX
// Runtime folds when it loads the graph, so the kernels read float32), and
// MatMulNBits' packed 4-bit codes plus one float32 scale per block of block
// weights along k for int4.
func TensorBytes(dtype string, block int, shape []int) (int64, error) {
	if err := graph.CheckDType(dtype); err != nil {
		return 0, err
	}
	if len(shape) != 2 {
		n := int64(4)
		for _, d := range shape {
			n *= int64(d)
		}
		return n, nil
	}
	n, k := int64(shape[0]), int64(shape[1])
	if dtype == graph.DTypeInt4 {
		blocks := (k + int64(block) - 1) / int64(block)
		return n * blocks * int64(block/2+4), nil
	}
	return 4 * n * k, nil
}
