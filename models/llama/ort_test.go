package llama

import (
	"fmt"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort/graphtest"
	"github.com/strata-llm/strata/models/manifest"
)

// runner drives an exported package through ORT the way the engine does:
// embed, the chosen layers (past and present bound to one KV buffer per
// layer, so GroupQueryAttention updates it in place) and head.
type runner struct {
	t      *testing.T
	cfg    Config
	max    int
	batch  int
	embed  *ortgo.DynamicAdvancedSession
	head   *ortgo.DynamicAdvancedSession
	layers []*ortgo.DynamicAdvancedSession
	keys   []*ortgo.Tensor[float32]
	values []*ortgo.Tensor[float32]
}

func initORT(t *testing.T) {
	t.Helper()
	if err := graphtest.Init(""); err != nil {
		t.Fatalf("ONNX Runtime is required (set %s): %v", "STRATA_ORT_LIB", err)
	}
}

var testSessionOptions = graphtest.Options{Threads: 1}

func newRunner(t *testing.T, dir string, cfg Config, maxSeq, batch int) *runner {
	t.Helper()
	initORT(t)
	r := &runner{t: t, cfg: cfg, max: maxSeq, batch: batch}
	var err error
	open := func(file string, in, out []string) *ortgo.DynamicAdvancedSession {
		s, e := graphtest.NewSession(dir+"/"+file, in, out, testSessionOptions)
		if e != nil {
			t.Fatal(e)
		}
		t.Cleanup(func() { s.Destroy() })
		return s
	}
	r.embed = open(manifest.EmbedFile, []string{manifest.InputIDs}, []string{manifest.Hidden})
	r.head = open(manifest.HeadFile, []string{manifest.Hidden}, []string{manifest.Logits})
	for i := 0; i < cfg.NumLayers; i++ {
		r.layers = append(r.layers, open(manifest.LayerFile(i),
			[]string{manifest.Hidden, manifest.PastKey, manifest.PastValue, manifest.SeqLensK, manifest.TotalSeqLen},
			[]string{manifest.HiddenOut, manifest.PresentKey, manifest.PresentValue}))
		k, v := r.newKV(), r.newKV()
		r.keys, r.values = append(r.keys, k), append(r.values, v)
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *runner) newKV() *ortgo.Tensor[float32] {
	kv, err := ortgo.NewEmptyTensor[float32](ortgo.NewShape(int64(r.batch), int64(r.cfg.NumKVHeads), int64(r.max), int64(r.cfg.HeadDim)))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { kv.Destroy() })
	return kv
}

// step runs ids [batch][S] through embed, layers and head and returns the
// logits [batch][S][V].
func (r *runner) step(ids [][]int, seqlens []int32, total int32, layers []int) [][][]float32 {
	t := r.t
	t.Helper()
	b, s := len(ids), len(ids[0])
	flat := make([]int64, 0, b*s)
	for _, row := range ids {
		for _, id := range row {
			flat = append(flat, int64(id))
		}
	}
	idsT := must(ortgo.NewTensor(ortgo.NewShape(int64(b), int64(s)), flat))(t)
	defer idsT.Destroy()
	out := []ortgo.Value{nil}
	if err := r.embed.Run([]ortgo.Value{idsT}, out); err != nil {
		t.Fatal(err)
	}
	hidden := out[0]
	seqT := must(ortgo.NewTensor(ortgo.NewShape(int64(b)), seqlens))(t)
	defer seqT.Destroy()
	totalT := must(ortgo.NewScalar(total))(t)
	defer totalT.Destroy()
	if layers == nil {
		layers = allLayers(r.cfg.NumLayers)
	}
	for _, l := range layers {
		next := must(ortgo.NewEmptyTensor[float32](hidden.GetShape()))(t)
		bind := must(r.layers[l].CreateIoBinding())(t)
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
	return split(out[0].(*ortgo.Tensor[float32]).GetData(), b, s, r.cfg.VocabSize)
}

func split(flat []float32, b, s, v int) [][][]float32 {
	out := make([][][]float32, b)
	for i := range out {
		out[i] = make([][]float32, s)
		for j := range out[i] {
			out[i][j] = append([]float32(nil), flat[(i*s+j)*v:(i*s+j+1)*v]...)
		}
	}
	return out
}

func allLayers(n int) []int {
	l := make([]int, n)
	for i := range l {
		l[i] = i
	}
	return l
}

func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// maxDiff returns max |a-b| and the largest |b|.
func maxDiff(a, b []float32) (diff, scale float64) {
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

func describe(step string, pos int) string { return fmt.Sprintf("%s (position %d)", step, pos) }

func ortSession(path string, in, out []string) (*ortgo.DynamicAdvancedSession, error) {
	return graphtest.NewSession(path, in, out, testSessionOptions)
}
