package engine

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/engine/ortlib"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/onnx"
)

// copyPackage copies the package in dir into a new temporary directory.
func copyPackage(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestFusedSessionSharesWeights: on the CPU a fused decode graph holds no
// weights of its own. Once the per-layer sessions are open, each of the
// package's external data files is replaced by zeros: a fused session
// that loaded (or packed) its own copy of its weights would read zeros and
// decode other ids than the per-layer chain, while one handed the
// per-layer sessions' tensors and packed weights decodes the same ids and
// adds no tensor to the shared set (each of its initializers is one a
// per-layer session already reads).
func TestFusedSessionSharesWeights(t *testing.T) {
	src, _, _ := testPackage(t)
	dir := copyPackage(t, src)
	ref, err := Load(src, Options{NoTokenizer: true, Threads: 1, Fuse: FuseOff})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	m, err := Load(dir, Options{NoTokenizer: true, Threads: 1, Fuse: FuseOn})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	w := m.g.weights
	if w == nil {
		t.Fatal("a package on the CPU opened without shared weights")
	}
	tensors := len(w.tensors)
	var dataFiles []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".data") {
			dataFiles = append(dataFiles, e.Name())
		}
	}
	if tensors == 0 || len(dataFiles) == 0 || len(w.files) != len(dataFiles) {
		t.Fatalf("%d shared tensors over %d mapped files; the package has data files %v", tensors, len(w.files), dataFiles)
	}
	// Each data file is replaced by a new file of zeros (the sessions'
	// mappings keep the old one).
	for _, f := range dataFiles {
		path := filepath.Join(dir, f)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".zeros", make([]byte, st.Size()), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".zeros", path); err != nil {
			t.Fatal(err)
		}
	}
	for _, speedup := range []float64{1, 2} {
		req := Request{PromptIDs: []int{1, 17, 5, 33}, MaxTokens: 5, IgnoreEOS: true, Schedule: "uls", Speedup: speedup}
		got, err := m.Generate(t.Context(), req)
		if err != nil {
			t.Fatalf("speedup %g: %v", speedup, err)
		}
		want, err := ref.Generate(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.TokenIDs, want.TokenIDs) {
			t.Errorf("speedup %g: fused ids %v, per-layer %v", speedup, got.TokenIDs, want.TokenIDs)
		}
	}
	if n := len(m.g.fusion.sessions); n != 2 {
		t.Errorf("%d fused sessions open, want 2", n)
	}
	if n := len(w.tensors); n != tensors {
		t.Errorf("the fused sessions added %d shared tensors to the per-layer sessions' %d", n-tensors, tensors)
	}
}

// TestSharedPackedWeightsKeepTheirScales: ORT keys packed weights by their
// packed bytes, so two int4 weights with the same codes and different
// scales (the second a doubled copy of the first) must not end up with one
// packed copy. A graph of both, opened with shared weights, gives the
// outputs it gives opened the ordinary way: the second twice the first.
func TestSharedPackedWeightsKeepTheirScales(t *testing.T) {
	const n, k, block = 64, 128, 32
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, n*k)
	for i := range w {
		w[i] = rng.Float32()*2 - 1
	}
	codes, scales, kBlocks := graph.QuantizeInt4(w, n, k, block)
	doubled := make([]float32, len(scales))
	for i, s := range scales {
		doubled[i] = 2 * s
	}
	dir := t.TempDir()
	data, err := onnx.CreateExternalData(filepath.Join(dir, "twice.onnx.data"))
	if err != nil {
		t.Fatal(err)
	}
	b := onnx.NewBuilder("twice", data)
	b.InlineLimit = 1
	x := b.Input("a", onnx.Float, onnx.D(1), onnx.D(k))
	outs := []string{"y0", "y1"}
	for i, s := range [][]float32{scales, doubled} {
		q := b.Initializer(outs[i]+".q4", onnx.Uint8, []int64{n, int64(kBlocks), block / 2}, codes)
		sc := b.Float32(outs[i]+".scales", []int64{n, int64(kBlocks)}, s)
		b.Add(onnx.Node{OpType: "MatMulNBits", Domain: "com.microsoft", Inputs: []string{x, q, sc}, Outputs: []string{outs[i]},
			Attrs: []onnx.Attr{onnx.IntAttr("K", k), onnx.IntAttr("N", n), onnx.IntAttr("bits", 4),
				onnx.IntAttr("block_size", block), onnx.IntAttr("accuracy_level", 4)}})
		b.Output(outs[i], onnx.Float, onnx.D(1), onnx.D(n))
	}
	path := filepath.Join(dir, "twice.onnx")
	if err := b.WriteModel(path); err != nil {
		t.Fatal(err)
	}
	lib, err := ortlib.InitFor("cpu", "")
	if err != nil {
		t.Fatal(err)
	}
	api, err := ortdev.Open(lib.Path)
	if err != nil {
		t.Fatal(err)
	}
	env, err := api.NewEnv(ortdev.LogError, "strata-test")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	in := make([]float32, k)
	for i := range in {
		in[i] = rng.Float32()*2 - 1
	}
	run := func(share bool) [2][]float32 {
		opts, err := api.NewSessionOptions()
		if err != nil {
			t.Fatal(err)
		}
		defer opts.Close()
		g := &graphs{api: api, env: env}
		if share {
			if g.weights, err = newSharedWeights(api); err != nil {
				t.Fatal(err)
			}
			defer g.weights.close()
		}
		s, err := g.openShared(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if share && len(g.weights.tensors) != 4 {
			t.Fatalf("%d shared tensors, want 4", len(g.weights.tensors))
		}
		a, err := api.NewHostTensor([]int64{1, k}, ortdev.Float32)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		av, _ := a.Float32s()
		copy(av, in)
		bind, err := s.NewIoBinding()
		if err != nil {
			t.Fatal(err)
		}
		defer bind.Close()
		if err := bind.BindInput("a", a); err != nil {
			t.Fatal(err)
		}
		var got [2][]float32
		ys := make([]*ortdev.Value, 2)
		for i, o := range outs {
			if ys[i], err = api.NewHostTensor([]int64{1, n}, ortdev.Float32); err != nil {
				t.Fatal(err)
			}
			defer ys[i].Close()
			if err := bind.BindOutput(o, ys[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RunWithBinding(bind, nil); err != nil {
			t.Fatal(err)
		}
		for i, y := range ys {
			v, _ := y.Float32s()
			got[i] = slices.Clone(v)
		}
		return got
	}
	plain, shared := run(false), run(true)
	for j := range n {
		for i := range 2 {
			if d := math.Abs(float64(shared[i][j] - plain[i][j])); d > 1e-4*(1+math.Abs(float64(plain[i][j]))) {
				t.Fatalf("output %s[%d]: shared weights %g, own weights %g", outs[i], j, shared[i][j], plain[i][j])
			}
		}
		if d := math.Abs(float64(shared[1][j] - 2*shared[0][j])); d > 1e-3*(1+math.Abs(float64(shared[1][j]))) {
			t.Fatalf("y1[%d] = %g is not twice y0[%d] = %g", j, shared[1][j], j, shared[0][j])
		}
	}
}
