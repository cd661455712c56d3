package orttest

import (
	"path/filepath"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

// LayerStep is one decode step (S=1) through a chain of layer sessions at
// batch 1, bound once through IoBindings as the engine does: each layer
// reads one hidden buffer and writes the other, its KV buffer bound as past
// and present. It is for benchmarks.
type LayerStep struct {
	sessions []*ortgo.DynamicAdvancedSession
	binds    []*ortgo.IoBinding
	seqlens  *ortgo.Tensor[int32]
	owned    []interface{ Destroy() error }
}

// NewLayerStep opens the first layers graphs of the package in dir (a model
// of sizes d, KV buffers of maxSeq) with so.
func NewLayerStep(tb testing.TB, dir string, d graph.Dims, layers, maxSeq int, so *ortgo.SessionOptions) *LayerStep {
	tb.Helper()
	Init(tb)
	ls := &LayerStep{}
	tb.Cleanup(func() {
		for i := len(ls.owned) - 1; i >= 0; i-- {
			ls.owned[i].Destroy()
		}
	})
	keep := func(v interface{ Destroy() error }) { ls.owned = append(ls.owned, v) }
	var hidden [2]*ortgo.Tensor[float32]
	for i := range hidden {
		hidden[i] = Must(ortgo.NewEmptyTensor[float32](ortgo.NewShape(1, 1, int64(d.Hidden))))(tb)
		keep(hidden[i])
	}
	for j := range hidden[0].GetData() {
		hidden[0].GetData()[j] = float32(j%7) * 0.1
	}
	ls.seqlens = Must(ortgo.NewTensor(ortgo.NewShape(1), []int32{0}))(tb)
	keep(ls.seqlens)
	for l := 0; l < layers; l++ {
		s := Must(ortgo.NewDynamicAdvancedSession(filepath.Join(dir, manifest.LayerFile(l)), manifest.LayerInputs, manifest.LayerOutputs, so))(tb)
		keep(s)
		kvShape := ortgo.NewShape(1, int64(d.KVHeads), int64(maxSeq), int64(d.HeadDim))
		k := Must(ortgo.NewEmptyTensor[float32](kvShape))(tb)
		v := Must(ortgo.NewEmptyTensor[float32](kvShape))(tb)
		keep(k)
		keep(v)
		bind := Must(s.CreateIoBinding())(tb)
		keep(bind)
		for _, err := range []error{
			bind.BindInput(manifest.Hidden, hidden[l%2]), bind.BindInput(manifest.PastKey, k), bind.BindInput(manifest.PastValue, v),
			bind.BindInput(manifest.SeqLensK, ls.seqlens),
			bind.BindOutput(manifest.HiddenOut, hidden[(l+1)%2]), bind.BindOutput(manifest.PresentKey, k), bind.BindOutput(manifest.PresentValue, v),
		} {
			if err != nil {
				tb.Fatal(err)
			}
		}
		ls.sessions = append(ls.sessions, s)
		ls.binds = append(ls.binds, bind)
	}
	return ls
}

// Step runs every layer for the token at position pos.
func (ls *LayerStep) Step(tb testing.TB, pos int) {
	ls.seqlens.GetData()[0] = int32(pos)
	total := Must(ortgo.NewScalar(int32(pos + 1)))(tb)
	defer total.Destroy()
	for l, s := range ls.sessions {
		if err := ls.binds[l].BindInput(manifest.TotalSeqLen, total); err != nil {
			tb.Fatal(err)
		}
		if err := s.RunWithBinding(ls.binds[l]); err != nil {
			tb.Fatal(err)
		}
	}
}
