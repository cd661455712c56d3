package bloom

import (
	"fmt"
	"testing"

	"github.com/strata-llm/strata/engine/ort/orttest"
	"github.com/strata-llm/strata/internal/cputime"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/llama"
)

const benchMaxSeq = 2048

// benchConfigs are a BLOOM layer and a LLaMA layer of the same size: hidden
// 512, 8 heads of 64 (LLaMA without grouping), and MLPs of the same weight
// count (BLOOM's two 512×2048 matrices, LLaMA's three 512×1368 ones).
func benchConfigs() (Config, llama.Config) {
	return Config{NumLayers: 1, HiddenSize: 512, NumHeads: 8, VocabSize: 256, LayerNormEps: 1e-5},
		llama.Config{ModelType: "llama", NumLayers: 1, HiddenSize: 512, NumHeads: 8, NumKVHeads: 8, HeadDim: 64,
			IntermediateSize: 1368, VocabSize: 256, MaxPositionEmbeddings: benchMaxSeq, RopeTheta: 10000, RMSNormEps: 1e-5}
}

// BenchmarkLayerDecodeStep is one decode step (batch 1, S=1, one thread) of
// one layer graph at KV length pos+1: LLaMA (rotary GroupQueryAttention),
// BLOOM (ALiBi as attention_bias) and BLOOM without the bias, whose
// difference is what ALiBi costs. cpu-ns/op is the process CPU time per
// step.
func BenchmarkLayerDecodeStep(b *testing.B) {
	bc, lc := benchConfigs()
	orttest.Init(b)
	so, err := orttest.NewSessionOptions(orttest.Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { so.Destroy() })
	for _, dtype := range []string{graph.DTypeFP32, graph.DTypeInt4} {
		opts := graph.Options{DType: dtype, MaxSeqLen: benchMaxSeq}
		models := []struct {
			name string
			dec  graph.Decoder
			src  graph.WeightSource
		}{
			{"llama", lc.Decoder(), llama.RandomWeights(lc, 1)},
			{"bloom", bc.Decoder(), RandomWeights(bc, 1)},
			{"bloom-noalibi", decoder{cfg: bc, noALiBi: true}, RandomWeights(bc, 1)},
		}
		for _, m := range models {
			dir := b.TempDir()
			if _, err := graph.WriteLayer(dir, m.dec, 0, m.src, opts); err != nil {
				b.Fatal(err)
			}
			for _, pos := range []int{64, 1024} {
				b.Run(fmt.Sprintf("%s/pos=%d/%s", dtype, pos, m.name), func(b *testing.B) {
					ls := orttest.NewLayerStep(b, dir, m.dec.Dims(), 1, benchMaxSeq, so)
					b.ReportAllocs()
					b.ResetTimer()
					cpu0 := cputime.Process()
					for i := 0; i < b.N; i++ {
						ls.Step(b, pos)
					}
					// CPU time per step, steadier than wall time on a loaded machine.
					if cpu := cputime.Process() - cpu0; cpu > 0 {
						b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
					}
				})
			}
		}
	}
}
