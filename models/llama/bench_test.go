package llama

import (
	"fmt"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort"
	"github.com/strata-llm/strata/engine/ort/orttest"
)

// benchConfig is a small model with realistic proportions (GQA 8/2 heads of
// 64, SwiGLU 2.75× wide), small enough that a few layers export quickly.
func benchConfig(layers int) Config {
	return Config{ModelType: "llama", NumLayers: layers, HiddenSize: 512, NumHeads: 8, NumKVHeads: 2, HeadDim: 64,
		IntermediateSize: 1408, VocabSize: 2000, MaxPositionEmbeddings: 128, RopeTheta: 10000, RMSNormEps: 1e-5, BOSID: 1}
}

const benchMaxSeq = 128

func newLayerStep(b *testing.B, dir string, cfg Config, so *ortgo.SessionOptions) *orttest.LayerStep {
	return orttest.NewLayerStep(b, dir, cfg.Decoder().Dims(), cfg.NumLayers, benchMaxSeq, so)
}

func writeLayers(b *testing.B, cfg Config, dtype string) string {
	b.Helper()
	if err := orttest.LoadLibrary(""); err != nil {
		b.Fatalf("ONNX Runtime is required (set %s): %v", ort.EnvLibrary, err)
	}
	dir := b.TempDir()
	src := RandomWeights(cfg, 9)
	for l := 0; l < cfg.NumLayers; l++ {
		if _, err := WriteLayer(dir, cfg, l, src, GraphOptions{DType: dtype, MaxSeqLen: benchMaxSeq}); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

func sessionOptions(b *testing.B, threads int, spin bool) *ortgo.SessionOptions {
	b.Helper()
	so, err := orttest.NewSessionOptions(orttest.Options{Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { so.Destroy() })
	if !spin {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			b.Fatal(err)
		}
	}
	return so
}

// BenchmarkLayerDecodeORT is one decoder layer's decode step (batch 1, S=1)
// through ORT, single-threaded, per weight dtype.
func BenchmarkLayerDecodeORT(b *testing.B) {
	cfg := benchConfig(1)
	for _, dtype := range []string{DTypeFP32, DTypeInt4} {
		b.Run(dtype, func(b *testing.B) {
			ls := newLayerStep(b, writeLayers(b, cfg, dtype), cfg, sessionOptions(b, 1, true))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ls.Step(b, i%(benchMaxSeq-1))
			}
		})
	}
}

// BenchmarkLayerChainThreads runs a decode step through a chain of 6 layer
// sessions, each with its own intra-op thread pool as the engine creates
// them. With 2 threads and ORT's default spinning, a pool that just finished
// keeps its worker spinning while the next session's pool wants the core;
// the nospin cases set session.intra_op.allow_spinning=0.
func BenchmarkLayerChainThreads(b *testing.B) {
	cfg := benchConfig(6)
	dir := writeLayers(b, cfg, DTypeFP32)
	for _, c := range []struct {
		threads int
		spin    bool
	}{{1, true}, {2, true}, {2, false}} {
		name := fmt.Sprintf("threads=%d", c.threads)
		if c.threads > 1 && !c.spin {
			name += "/nospin"
		} else if c.threads > 1 {
			name += "/spin"
		}
		b.Run(name, func(b *testing.B) {
			ls := newLayerStep(b, dir, cfg, sessionOptions(b, c.threads, c.spin))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ls.Step(b, i%(benchMaxSeq-1))
			}
		})
	}
}

// BenchmarkReferenceDecode is one token through the plain-Go reference:
// embedding, one layer (the other is skipped) and the head.
func BenchmarkReferenceDecode(b *testing.B) {
	cfg := benchConfig(2)
	ref, err := NewReference(cfg, RandomWeights(cfg, 9))
	if err != nil {
		b.Fatal(err)
	}
	layer := []int{0}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ref.Pos() >= benchMaxSeq {
			ref.Reset()
		}
		if _, err := ref.Forward([]int{i % cfg.VocabSize}, layer); err != nil {
			b.Fatal(err)
		}
	}
}
