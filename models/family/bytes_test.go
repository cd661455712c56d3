package family

import (
	"path/filepath"
	"testing"

	"github.com/strata-llm/strata/models/bloom"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/onnx"
)

// initializerBytes is what a graph's initializers hold, inline or in its
// external data file.
func initializerBytes(t *testing.T, dir, graphFile string) int64 {
	t.Helper()
	m, err := onnx.ReadModel(filepath.Join(dir, graphFile))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, in := range m.Graph.Initializers {
		n += int64(len(in.Raw)) + in.Length
	}
	return n
}

// constSlack bounds what a layer graph holds besides weights: LLaMA's RoPE
// cos and sin tables (2 × 32 positions × 8 × float32 here) and a few shape
// constants.
const constSlack = 2*32*8*4 + 128

// TestBytesMatchGraphData writes each family's graphs with random weights
// and checks the estimate against the bytes the graphs' initializers hold
// (inline or in the data file; int4's codes and float32 scales): the head
// exactly, a layer up to its non-weight constants. BLOOM's estimate is not
// the one LLaMA's shapes would give the same sizes.
func TestBytesMatchGraphData(t *testing.T) {
	llamaCfg := llama.Config{ModelType: llama.Family, NumLayers: 2, HiddenSize: 64, NumHeads: 4, NumKVHeads: 2, HeadDim: 16,
		IntermediateSize: 96, VocabSize: 80, MaxPositionEmbeddings: 64, RopeTheta: 10000, RMSNormEps: 1e-5}
	bloomCfg := bloom.Config{NumLayers: 2, HiddenSize: 64, NumHeads: 4, VocabSize: 80, LayerNormEps: 1e-5}
	for _, fam := range []struct {
		m   Model
		src graph.WeightSource
	}{
		{Llama(llamaCfg), llama.RandomWeights(llamaCfg, 1)},
		{Bloom(bloomCfg), bloom.RandomWeights(bloomCfg, 1)},
	} {
		for _, dtype := range []string{graph.DTypeFP32, graph.DTypeInt4} {
			dir := t.TempDir()
			files, err := graph.WriteAll(dir, fam.m.Decoder(), fam.src, graph.Options{DType: dtype, MaxSeqLen: 32}, false)
			if err != nil {
				t.Fatalf("%s %s: %v", fam.m.Family(), dtype, err)
			}
			man := fam.m.Manifest()
			man.DType, man.MaxSeqLen = dtype, 32
			w, err := Bytes(&man)
			if err != nil {
				t.Fatal(err)
			}
			layer, head := initializerBytes(t, dir, files.Layers[0]), initializerBytes(t, dir, files.Head)
			if d := layer - w.Layer; d < 0 || d > constSlack {
				t.Errorf("%s %s: layer estimate %d bytes, the graph's initializers hold %d", fam.m.Family(), dtype, w.Layer, layer)
			}
			if head != w.Head {
				t.Errorf("%s %s: head estimate %d bytes, the graph's initializers hold %d", fam.m.Family(), dtype, w.Head, head)
			}
			if fam.m.Family() != bloom.Family {
				continue
			}
			// The same sizes read with LLaMA's shapes (three MLP matrices
			// of 4h, no biases, no embedding norm) are another estimate.
			asLlama := man
			asLlama.Architecture = llama.Family
			l, err := Bytes(&asLlama)
			if err != nil {
				t.Fatal(err)
			}
			if d := layer - l.Layer; d >= 0 && d <= constSlack || l.Embed == w.Embed {
				t.Errorf("bloom %s: LLaMA's shapes give layer %d and embedding %d bytes, as BLOOM's (%d, %d)", dtype, l.Layer, l.Embed, w.Layer, w.Embed)
			}
		}
	}
}
