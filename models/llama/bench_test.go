package llama

import (
	"fmt"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort/graphtest"
	"github.com/strata-llm/strata/models/manifest"
)

// benchConfig is a small model with realistic proportions (GQA 8/2 heads of
// 64, SwiGLU 2.75× wide), small enough that a few layers export quickly.
func benchConfig(layers int) Config {
	return Config{ModelType: "llama", NumLayers: layers, HiddenSize: 512, NumHeads: 8, NumKVHeads: 2, HeadDim: 64,
		IntermediateSize: 1408, VocabSize: 2000, MaxPositionEmbeddings: 128, RopeTheta: 10000, RMSNormEps: 1e-5, BOSID: 1}
}

const benchMaxSeq = 128

// layerStep is one decode step (S=1) of a chain of layer sessions at batch
// 1, bound once through IoBindings as the engine does: each layer reads one
// hidden buffer and writes the other, its KV buffer bound as past and present.
type layerStep struct {
	sessions []*ortgo.DynamicAdvancedSession
	binds    []*ortgo.IoBinding
	seqlens  *ortgo.Tensor[int32]
	owned    []interface{ Destroy() error }
}

func newLayerStep(b *testing.B, dir string, cfg Config, so *ortgo.SessionOptions) *layerStep {
	b.Helper()
	ls := &layerStep{}
	b.Cleanup(func() {
		for i := len(ls.owned) - 1; i >= 0; i-- {
			ls.owned[i].Destroy()
		}
	})
	keep := func(v interface{ Destroy() error }) { ls.owned = append(ls.owned, v) }
	var hidden [2]*ortgo.Tensor[float32]
	for i := range hidden {
		hidden[i] = mustB(ortgo.NewEmptyTensor[float32](ortgo.NewShape(1, 1, int64(cfg.HiddenSize))))(b)
		keep(hidden[i])
	}
	for j := range hidden[0].GetData() {
		hidden[0].GetData()[j] = float32(j%7) * 0.1
	}
	ls.seqlens = mustB(ortgo.NewTensor(ortgo.NewShape(1), []int32{0}))(b)
	keep(ls.seqlens)
	for l := 0; l < cfg.NumLayers; l++ {
		s := mustB(ortgo.NewDynamicAdvancedSession(dir+"/"+manifest.LayerFile(l),
			[]string{manifest.Hidden, manifest.PastKey, manifest.PastValue, manifest.SeqLensK, manifest.TotalSeqLen}, []string{manifest.HiddenOut, manifest.PresentKey, manifest.PresentValue}, so))(b)
		keep(s)
		kvShape := ortgo.NewShape(1, int64(cfg.NumKVHeads), benchMaxSeq, int64(cfg.HeadDim))
		k := mustB(ortgo.NewEmptyTensor[float32](kvShape))(b)
		v := mustB(ortgo.NewEmptyTensor[float32](kvShape))(b)
		keep(k)
		keep(v)
		bind := mustB(s.CreateIoBinding())(b)
		keep(bind)
		for _, err := range []error{
			bind.BindInput(manifest.Hidden, hidden[l%2]), bind.BindInput(manifest.PastKey, k), bind.BindInput(manifest.PastValue, v),
			bind.BindInput(manifest.SeqLensK, ls.seqlens),
			bind.BindOutput(manifest.HiddenOut, hidden[(l+1)%2]), bind.BindOutput(manifest.PresentKey, k), bind.BindOutput(manifest.PresentValue, v),
		} {
			if err != nil {
				b.Fatal(err)
			}
		}
		ls.sessions = append(ls.sessions, s)
		ls.binds = append(ls.binds, bind)
	}
	return ls
}

// step runs every layer for the token at position pos.
func (ls *layerStep) step(b *testing.B, pos int) {
	ls.seqlens.GetData()[0] = int32(pos)
	total := mustB(ortgo.NewScalar(int32(pos + 1)))(b)
	defer total.Destroy()
	for l, s := range ls.sessions {
		if err := ls.binds[l].BindInput(manifest.TotalSeqLen, total); err != nil {
			b.Fatal(err)
		}
		if err := s.RunWithBinding(ls.binds[l]); err != nil {
			b.Fatal(err)
		}
	}
}

// mustB returns v, failing the benchmark on err.
func mustB[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

func writeLayers(b *testing.B, cfg Config, dtype string) string {
	b.Helper()
	if err := graphtest.Init(""); err != nil {
		b.Fatalf("ONNX Runtime is required (set %s): %v", "STRATA_ORT_LIB", err)
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
	so, err := graphtest.NewSessionOptions(graphtest.Options{Threads: threads})
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
				ls.step(b, i%(benchMaxSeq-1))
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
				ls.step(b, i%(benchMaxSeq-1))
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
