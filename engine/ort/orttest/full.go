package orttest

import (
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

// RunFull runs the monolithic graph at path (a model of sizes d, KV
// buffers of maxSeq) for batch 1: the prompt, then each decode token at
// full depth. It returns the logits of every position.
func RunFull(t testing.TB, path string, d graph.Dims, maxSeq int, prompt, decode []int) [][]float32 {
	t.Helper()
	inputs := []string{manifest.InputIDs}
	outputs := []string{manifest.Logits}
	for i := 0; i < d.Layers; i++ {
		inputs = append(inputs, graph.FullPastKey(i), graph.FullPastValue(i))
		outputs = append(outputs, graph.FullPresentKey(i), graph.FullPresentValue(i))
	}
	inputs = append(inputs, manifest.SeqLensK, manifest.TotalSeqLen)
	s := Session(t, path, inputs, outputs)
	var kv []*ortgo.Tensor[float32]
	for i := 0; i < 2*d.Layers; i++ {
		kv = append(kv, KV(t, d, maxSeq, 1))
	}
	run := func(ids []int, pos int) [][]float32 {
		flat := make([]int64, len(ids))
		for i, id := range ids {
			flat[i] = int64(id)
		}
		idsT := Must(ortgo.NewTensor(ortgo.NewShape(1, int64(len(ids))), flat))(t)
		defer idsT.Destroy()
		seqT := Must(ortgo.NewTensor(ortgo.NewShape(1), []int32{int32(pos + len(ids) - 1)}))(t)
		defer seqT.Destroy()
		totalT := Must(ortgo.NewScalar(int32(pos + len(ids))))(t)
		defer totalT.Destroy()
		logits := Must(ortgo.NewEmptyTensor[float32](ortgo.NewShape(1, int64(len(ids)), int64(d.Vocab))))(t)
		defer logits.Destroy()
		bind := Must(s.CreateIoBinding())(t)
		defer bind.Destroy()
		errs := []error{bind.BindInput(manifest.InputIDs, idsT), bind.BindInput(manifest.SeqLensK, seqT), bind.BindInput(manifest.TotalSeqLen, totalT),
			bind.BindOutput(manifest.Logits, logits)}
		for i := 0; i < d.Layers; i++ {
			errs = append(errs, bind.BindInput(graph.FullPastKey(i), kv[2*i]), bind.BindInput(graph.FullPastValue(i), kv[2*i+1]),
				bind.BindOutput(graph.FullPresentKey(i), kv[2*i]), bind.BindOutput(graph.FullPresentValue(i), kv[2*i+1]))
		}
		for _, e := range errs {
			if e != nil {
				t.Fatal(e)
			}
		}
		if err := s.RunWithBinding(bind); err != nil {
			t.Fatal(err)
		}
		return Split(logits.GetData(), 1, len(ids), d.Vocab)[0]
	}
	got := run(prompt, 0)
	for j, tok := range decode {
		got = append(got, run([]int{tok}, len(prompt)+j)...)
	}
	return got
}
