// Package orttest drives a model package's graphs through ONNX Runtime the
// way the engine does, for the tests of the model families: embed, the
// chosen layers (past and present bound to one KV buffer per layer, so
// GroupQueryAttention updates it in place) and head. It fails the test on
// any error.
package orttest

import (
	"path/filepath"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

// SessionOptions are the options every test session uses.
var SessionOptions = Options{Threads: 1}

// Init loads ONNX Runtime or fails the test.
func Init(t testing.TB) {
	t.Helper()
	if err := LoadLibrary(""); err != nil {
		t.Fatalf("ONNX Runtime is required (set %s): %v", ort.EnvLibrary, err)
	}
}

// Session opens the graph at path with SessionOptions.
func Session(t testing.TB, path string, in, out []string) *ortgo.DynamicAdvancedSession {
	t.Helper()
	Init(t)
	s, err := NewSession(path, in, out, SessionOptions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Destroy() })
	return s
}

// Runner holds the sessions of one package and a KV buffer per layer.
type Runner struct {
	t      testing.TB
	dims   graph.Dims
	embed  *ortgo.DynamicAdvancedSession
	head   *ortgo.DynamicAdvancedSession
	layers []*ortgo.DynamicAdvancedSession
	keys   []*ortgo.Tensor[float32]
	values []*ortgo.Tensor[float32]
}

// NewRunner opens embed, head and every layer graph of the package in dir
// (a model of sizes d) with KV buffers [batch, KVHeads, maxSeq, HeadDim].
func NewRunner(t testing.TB, dir string, d graph.Dims, maxSeq, batch int) *Runner {
	t.Helper()
	r := &Runner{t: t, dims: d}
	r.embed = Session(t, filepath.Join(dir, manifest.EmbedFile), manifest.EmbedInputs, manifest.EmbedOutputs)
	r.head = Session(t, filepath.Join(dir, manifest.HeadFile), manifest.HeadInputs, manifest.HeadOutputs)
	for i := 0; i < d.Layers; i++ {
		r.layers = append(r.layers, Session(t, filepath.Join(dir, manifest.LayerFile(i)), manifest.LayerInputs, manifest.LayerOutputs))
		r.keys = append(r.keys, KV(t, d, maxSeq, batch))
		r.values = append(r.values, KV(t, d, maxSeq, batch))
	}
	return r
}

// KV allocates one zeroed KV buffer [batch, KVHeads, maxSeq, HeadDim].
func KV(t testing.TB, d graph.Dims, maxSeq, batch int) *ortgo.Tensor[float32] {
	t.Helper()
	kv := Must(ortgo.NewEmptyTensor[float32](ortgo.NewShape(int64(batch), int64(d.KVHeads), int64(maxSeq), int64(d.HeadDim))))(t)
	t.Cleanup(func() { kv.Destroy() })
	return kv
}

// Step runs ids [batch][S] through embed, the given layers (nil: all) and
// head and returns the logits [batch][S][V].
func (r *Runner) Step(ids [][]int, seqlens []int32, total int32, layers []int) [][][]float32 {
	t := r.t
	t.Helper()
	b, s := len(ids), len(ids[0])
	flat := make([]int64, 0, b*s)
	for _, row := range ids {
		for _, id := range row {
			flat = append(flat, int64(id))
		}
	}
	idsT := Must(ortgo.NewTensor(ortgo.NewShape(int64(b), int64(s)), flat))(t)
	defer idsT.Destroy()
	out := []ortgo.Value{nil}
	if err := r.embed.Run([]ortgo.Value{idsT}, out); err != nil {
		t.Fatal(err)
	}
	hidden := out[0]
	seqT := Must(ortgo.NewTensor(ortgo.NewShape(int64(b)), seqlens))(t)
	defer seqT.Destroy()
	totalT := Must(ortgo.NewScalar(total))(t)
	defer totalT.Destroy()
	if layers == nil {
		layers = AllLayers(r.dims.Layers)
	}
	for _, l := range layers {
		next := Must(ortgo.NewEmptyTensor[float32](hidden.GetShape()))(t)
		bind := Must(r.layers[l].CreateIoBinding())(t)
		for _, e := range []error{
			bind.BindInput(manifest.Hidden, hidden), bind.BindInput(manifest.PastKey, r.keys[l]), bind.BindInput(manifest.PastValue, r.values[l]),
			bind.BindInput(manifest.SeqLensK, seqT), bind.BindInput(manifest.TotalSeqLen, totalT),
			bind.BindOutput(manifest.HiddenOut, next), bind.BindOutput(manifest.PresentKey, r.keys[l]), bind.BindOutput(manifest.PresentValue, r.values[l]),
		} {
			if e != nil {
				t.Fatal(e)
			}
		}
		if err := r.layers[l].RunWithBinding(bind); err != nil {
			t.Fatalf("layer %d: %v", l, err)
		}
		bind.Destroy()
		hidden.Destroy()
		hidden = next
	}
	out = []ortgo.Value{nil}
	if err := r.head.Run([]ortgo.Value{hidden}, out); err != nil {
		t.Fatal(err)
	}
	hidden.Destroy()
	defer out[0].Destroy()
	return Split(out[0].(*ortgo.Tensor[float32]).GetData(), b, s, r.dims.Vocab)
}

// Split cuts flat [b, s, v] logits into rows.
func Split(flat []float32, b, s, v int) [][][]float32 {
	out := make([][][]float32, b)
	for i := range out {
		out[i] = make([][]float32, s)
		for j := range out[i] {
			out[i][j] = append([]float32(nil), flat[(i*s+j)*v:(i*s+j+1)*v]...)
		}
	}
	return out
}

// AllLayers returns 0..n-1.
func AllLayers(n int) []int {
	l := make([]int, n)
	for i := range l {
		l[i] = i
	}
	return l
}

// Must returns v, failing the test on err.
func Must[T any](v T, err error) func(t testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// MaxDiff returns max |a-b| and the largest |b|.
func MaxDiff(a, b []float32) (diff, scale float64) {
	for i := range a {
		d := float64(a[i] - b[i])
		if d < 0 {
			d = -d
		}
		diff = max(diff, d)
		s := float64(b[i])
		if s < 0 {
			s = -s
		}
		scale = max(scale, s)
	}
	return diff, scale
}

// Reference is a family's plain-Go forward pass.
type Reference interface {
	Reset()
	Forward(tokens, layers []int) ([][]float32, error)
}

// RefRun does on the reference what the engine does for one sequence:
// the prompt at full depth, then decode one token at a time through kept
// only. It returns the logits of every prompt and decode position.
func RefRun(t testing.TB, ref Reference, prompt, decode, kept []int) [][]float32 {
	t.Helper()
	ref.Reset()
	logits, err := ref.Forward(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range decode {
		l, err := ref.Forward([]int{tok}, kept)
		if err != nil {
			t.Fatal(err)
		}
		logits = append(logits, l...)
	}
	return logits
}

// ULSRun does what the engine does for one sequence: prefill the prompt at
// full depth, then decode tokens one at a time through kept only (nil: all).
// It returns the logits of every prompt and decode position.
func (r *Runner) ULSRun(prompt, decode, kept []int) [][]float32 {
	logits := r.Step([][]int{prompt}, []int32{int32(len(prompt) - 1)}, int32(len(prompt)), nil)[0]
	pos := len(prompt)
	for _, tok := range decode {
		logits = append(logits, r.Step([][]int{{tok}}, []int32{int32(pos)}, int32(pos+1), kept)[0][0])
		pos++
	}
	return logits
}
