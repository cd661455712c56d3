package engine

// Benchmarks of the graphs models/* writes, one graph or a chain of layer
// graphs at a time through engine/ortdev, apart from the runner: a layer's
// decode step per dtype and family, the cost of per-session thread pools,
// and the int4 kernel alone. Whole packages are timed by BenchmarkDecodeStep
// and `strata bench`.

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/internal/cputime"
	"github.com/strata-llm/strata/models/bloom"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// layerChain is one decode step (batch 1, S=1) through a chain of layer
// graphs, bound once as the runner binds them: each layer reads one hidden
// buffer and writes the other, its KV buffer bound as past and present.
type layerChain struct {
	sessions []*ortdev.Session
	binds    []*ortdev.IoBinding
	seqlens  []int32
	total    []int32
}

// newLayerChain opens the first layers layer graphs in dir (a model of
// sizes d, KV buffers of maxSeq) with the given threads and spinning.
func newLayerChain(b *testing.B, e *graphEnv, dir string, d graph.Dims, layers, maxSeq, threads int, spin bool) *layerChain {
	b.Helper()
	hidden := [2]*ortdev.Value{}
	for i := range hidden {
		hidden[i] = e.tensor(b, []int64{1, 1, int64(d.Hidden)}, ortdev.Float32)
	}
	h, err := hidden[0].Float32s()
	if err != nil {
		b.Fatal(err)
	}
	for j := range h {
		h[j] = float32(j%7) * 0.1
	}
	seqlens, total := e.tensor(b, []int64{1}, ortdev.Int32), e.tensor(b, []int64{}, ortdev.Int32)
	c := &layerChain{}
	if c.seqlens, err = seqlens.Int32s(); err != nil {
		b.Fatal(err)
	}
	if c.total, err = total.Int32s(); err != nil {
		b.Fatal(err)
	}
	kvShape := []int64{1, int64(d.KVHeads), int64(maxSeq), int64(d.HeadDim)}
	for l := 0; l < layers; l++ {
		s := e.session(b, filepath.Join(dir, manifest.LayerFile(l)), threads, spin)
		k, v := e.tensor(b, kvShape, ortdev.Float32), e.tensor(b, kvShape, ortdev.Float32)
		c.sessions = append(c.sessions, s)
		c.binds = append(c.binds, e.bind(b, s, map[string]*ortdev.Value{
			manifest.Hidden: hidden[l%2], manifest.PastKey: k, manifest.PastValue: v,
			manifest.SeqLensK: seqlens, manifest.TotalSeqLen: total,
		}, map[string]*ortdev.Value{
			manifest.HiddenOut: hidden[(l+1)%2], manifest.PresentKey: k, manifest.PresentValue: v,
		}))
	}
	return c
}

// step runs every layer for the token at position pos.
func (c *layerChain) step(b *testing.B, pos int) {
	c.seqlens[0], c.total[0] = int32(pos), int32(pos+1)
	for l, s := range c.sessions {
		if err := s.RunWithBinding(c.binds[l], nil); err != nil {
			b.Fatal(err)
		}
	}
}

// benchLlama is a small model with realistic proportions (GQA 8/2 heads
// of 64, SwiGLU 2.75× wide), small enough that a few layers export quickly.
func benchLlama(layers int) llama.Config {
	return llama.Config{ModelType: "llama", NumLayers: layers, HiddenSize: 512, NumHeads: 8, NumKVHeads: 2, HeadDim: 64,
		IntermediateSize: 1408, VocabSize: 2000, MaxPositionEmbeddings: 128, RopeTheta: 10000, RMSNormEps: 1e-5, BOSID: 1}
}

const benchLayerMaxSeq = 128

// writeBenchLayers writes cfg's layer graphs (no embedding or head).
func writeBenchLayers(b *testing.B, cfg llama.Config, dtype string) string {
	b.Helper()
	dir := b.TempDir()
	src := llama.RandomWeights(cfg, 9)
	for l := 0; l < cfg.NumLayers; l++ {
		if _, err := llama.WriteLayer(dir, cfg, l, src, llama.GraphOptions{DType: dtype, MaxSeqLen: benchLayerMaxSeq}); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkLayerDecodeORT is one LLaMA decoder layer's decode step (batch
// 1, S=1) through ORT, single-threaded, per weight dtype.
func BenchmarkLayerDecodeORT(b *testing.B) {
	e := newGraphEnv(b)
	cfg := benchLlama(1)
	for _, dtype := range []string{graph.DTypeFP32, graph.DTypeInt4} {
		b.Run(dtype, func(b *testing.B) {
			c := newLayerChain(b, e, writeBenchLayers(b, cfg, dtype), cfg.Decoder().Dims(), 1, benchLayerMaxSeq, 1, true)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.step(b, i%(benchLayerMaxSeq-1))
			}
		})
	}
}

// BenchmarkLayerChainThreads runs a decode step through a chain of 6 layer
// sessions, each with an intra-op thread pool of its own (the runner's
// Options.PerGraphThreads). With 2 threads and ORT's default spinning, a
// pool that just finished keeps its worker spinning while the next
// session's pool wants the core; the nospin cases set
// session.intra_op.allow_spinning=0.
func BenchmarkLayerChainThreads(b *testing.B) {
	e := newGraphEnv(b)
	cfg := benchLlama(6)
	dir := writeBenchLayers(b, cfg, graph.DTypeFP32)
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
			chain := newLayerChain(b, e, dir, cfg.Decoder().Dims(), cfg.NumLayers, benchLayerMaxSeq, c.threads, c.spin)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				chain.step(b, i%(benchLayerMaxSeq-1))
			}
		})
	}
}

// withoutALiBi is BLOOM's decoder without the attention bias: not BLOOM
// any more, only the measure of what ALiBi costs.
type withoutALiBi struct{ graph.Decoder }

// Prepare adds nothing: no bias.
func (withoutALiBi) Prepare(*graph.Builder, *graph.LayerIO) {}

// BenchmarkFamilyLayerDecodeStep is one decode step (batch 1, S=1, one
// thread) of one layer graph at KV length pos+1: LLaMA (rotary
// GroupQueryAttention), BLOOM (ALiBi as attention_bias) and BLOOM without
// the bias, whose difference is what ALiBi costs. The BLOOM and LLaMA
// layers are the same size: hidden 512, 8 heads of 64 (LLaMA without
// grouping), MLPs of the same weight count (BLOOM's two 512×2048 matrices,
// LLaMA's three 512×1368 ones). cpu-ns/op is the process CPU time per step.
func BenchmarkFamilyLayerDecodeStep(b *testing.B) {
	const maxSeq = 2048
	e := newGraphEnv(b)
	bc := bloom.Config{NumLayers: 1, HiddenSize: 512, NumHeads: 8, VocabSize: 256, LayerNormEps: 1e-5}
	lc := llama.Config{ModelType: "llama", NumLayers: 1, HiddenSize: 512, NumHeads: 8, NumKVHeads: 8, HeadDim: 64,
		IntermediateSize: 1368, VocabSize: 256, MaxPositionEmbeddings: maxSeq, RopeTheta: 10000, RMSNormEps: 1e-5}
	for _, dtype := range []string{graph.DTypeFP32, graph.DTypeInt4} {
		opts := graph.Options{DType: dtype, MaxSeqLen: maxSeq}
		models := []struct {
			name string
			dec  graph.Decoder
			src  graph.WeightSource
		}{
			{"llama", lc.Decoder(), llama.RandomWeights(lc, 1)},
			{"bloom", bc.Decoder(), bloom.RandomWeights(bc, 1)},
			{"bloom-noalibi", withoutALiBi{bc.Decoder()}, bloom.RandomWeights(bc, 1)},
		}
		for _, m := range models {
			dir := b.TempDir()
			if _, err := graph.WriteLayer(dir, m.dec, 0, m.src, opts); err != nil {
				b.Fatal(err)
			}
			for _, pos := range []int{64, 1024} {
				b.Run(fmt.Sprintf("%s/pos=%d/%s", dtype, pos, m.name), func(b *testing.B) {
					c := newLayerChain(b, e, dir, m.dec.Dims(), 1, maxSeq, 1, true)
					b.ReportAllocs()
					b.ResetTimer()
					cpu0 := cputime.Process()
					for i := 0; i < b.N; i++ {
						c.step(b, pos)
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

// BenchmarkMatMulNBits is the int4 kernel alone at batch 1: one session
// chains 24 pairs of [hidden→inter] and [inter→hidden] MatMulNBits (the
// bench shape's MLP, 150–170 MB of weights, past any cache), one token
// through it per iteration, per block size and threading. MB/s is weight
// bytes read per second: set it against the machine's triad bandwidth for
// the kernel's share of the roofline.
func BenchmarkMatMulNBits(b *testing.B) {
	e := newGraphEnv(b)
	const hidden, inter, pairs = 1024, 2816, 24
	for _, block := range []int{32, 64, 128} {
		path, bytes := writeMatMulChain(b, hidden, inter, pairs, block)
		for _, c := range []struct {
			threads int
			spin    bool
		}{{1, true}, {2, false}, {2, true}} {
			b.Run(fmt.Sprintf("block=%d/threads=%d/spin=%v", block, c.threads, c.spin), func(b *testing.B) {
				in := make([]float32, hidden)
				for i := range in {
					in[i] = float32(i%7) / 7
				}
				s := e.session(b, path, c.threads, c.spin)
				bind := e.bind(b, s, map[string]*ortdev.Value{"x": e.floats(b, []int64{1, 1, hidden}, in)},
					map[string]*ortdev.Value{"y": e.tensor(b, []int64{1, 1, hidden}, ortdev.Float32)})
				b.SetBytes(bytes)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := s.RunWithBinding(bind, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// writeMatMulChain writes a graph x [1,1,hidden] → y [1,1,hidden] through
// pairs of int4 projections of the given block size and returns its path
// and weight bytes.
func writeMatMulChain(b *testing.B, hidden, inter, pairs, block int) (string, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "chain.onnx")
	data, err := onnx.CreateExternalData(path + ".data")
	if err != nil {
		b.Fatal(err)
	}
	g := &graph.Builder{Builder: onnx.NewBuilder("chain", data), Opts: graph.Options{DType: graph.DTypeInt4, Int4Block: block}}
	rng := rand.New(rand.NewPCG(1, 2))
	weights := func(n, k int) []float32 {
		w := make([]float32, n*k)
		for i := range w {
			w[i] = float32(rng.NormFloat64()) * 0.03
		}
		return w
	}
	x := g.Input("x", onnx.Float, onnx.D(1), onnx.D(1), onnx.D(hidden))
	var bytes int64
	for p := 0; p < pairs; p++ {
		up := fmt.Sprintf("up%d", p)
		x = g.MatMul(x, up, weights(inter, hidden), inter, hidden, up+"/y", false)
		down := fmt.Sprintf("down%d", p)
		x = g.MatMul(x, down, weights(hidden, inter), hidden, inter, down+"/y", false)
		bytes += 2 * int64(hidden*inter) * int64(block/2+4) / int64(block)
	}
	g.Op("Identity", "y", []string{x})
	g.Output("y", onnx.Float, onnx.D(1), onnx.D(1), onnx.D(hidden))
	if err := g.WriteModel(path); err != nil {
		b.Fatal(err)
	}
	return path, bytes
}
