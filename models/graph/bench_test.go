package graph_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort"
	"github.com/strata-llm/strata/engine/ort/orttest"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/onnx"
)

// BenchmarkMatMulNBits is the int4 kernel alone at batch 1: one session
// chains 24 pairs of [hidden→inter] and [inter→hidden] MatMulNBits (the
// bench shape's MLP, 150–170 MB of weights, past any cache), one token
// through it per iteration, per block size and threading. MB/s is weight
// bytes read per second: set it against the machine's triad bandwidth for
// the kernel's share of the roofline.
func BenchmarkMatMulNBits(b *testing.B) {
	if err := orttest.LoadLibrary(""); err != nil {
		b.Fatalf("ONNX Runtime is required (set %s): %v", ort.EnvLibrary, err)
	}
	const hidden, inter, pairs = 1024, 2816, 24
	for _, block := range []int{32, 64, 128} {
		path, bytes := writeMatMulChain(b, hidden, inter, pairs, block)
		for _, c := range []struct {
			threads int
			spin    bool
		}{{1, true}, {2, false}, {2, true}} {
			b.Run(fmt.Sprintf("block=%d/threads=%d/spin=%v", block, c.threads, c.spin), func(b *testing.B) {
				runChain(b, path, bytes, hidden, c.threads, c.spin)
			})
		}
	}
}

// runChain runs the chain graph at path with the given threading.
func runChain(b *testing.B, path string, bytes int64, hidden int64, threads int, spin bool) {
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		b.Fatal(err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		b.Fatal(err)
	}
	if !spin {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			b.Fatal(err)
		}
	}
	in := make([]float32, hidden)
	for i := range in {
		in[i] = float32(i%7) / 7
	}
	x, err := ortgo.NewTensor(ortgo.NewShape(1, 1, hidden), in)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Destroy()
	y, err := ortgo.NewEmptyTensor[float32](ortgo.NewShape(1, 1, hidden))
	if err != nil {
		b.Fatal(err)
	}
	defer y.Destroy()
	s, err := ortgo.NewAdvancedSession(path, []string{"x"}, []string{"y"}, []ortgo.Value{x}, []ortgo.Value{y}, so)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Destroy()
	b.SetBytes(bytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// writeMatMulChain writes a graph x [1,1,hidden] → y [1,1,hidden] through
// pairs of int4 projections of the given block size and returns its path
// and weight bytes.
func writeMatMulChain(b *testing.B, hidden, inter, pairs, block int) (string, int64) {
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
