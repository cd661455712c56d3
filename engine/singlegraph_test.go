package engine

// Single graphs that models/* writes, run through engine/ortdev directly
// rather than as a package: what ONNX Runtime makes of the protobuf
// models/onnx writes, and graphs the runner does not use (head_last).

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/engine/ortlib"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// graphEnv is ONNX Runtime's CPU library opened through ortdev, with an
// environment, for running one graph at a time.
type graphEnv struct {
	api *ortdev.API
	env *ortdev.Env
	cpu *ortdev.MemoryInfo
}

// newGraphEnv opens the library the engine would load for the CPU; the
// environment and memory info close with the test.
func newGraphEnv(tb testing.TB) *graphEnv {
	tb.Helper()
	lib, err := ortlib.InitFor("cpu", "")
	if err != nil {
		tb.Fatalf("ONNX Runtime is required (set %s): %v", ortlib.EnvLibrary, err)
	}
	api, err := ortdev.Open(lib.Path)
	if err != nil {
		tb.Fatal(err)
	}
	env, err := api.NewEnv(ortdev.LogWarning, "strata-graph-test")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(env.Close)
	cpu, err := api.NewMemoryInfo(ortdev.DeviceCPU, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cpu.Close)
	return &graphEnv{api: api, env: env, cpu: cpu}
}

// session opens the graph at path with threads intra-op threads (0: ORT's
// default); spin false sets session.intra_op.allow_spinning=0, so that the
// session's pool sleeps between runs. It closes with the test.
func (e *graphEnv) session(tb testing.TB, path string, threads int, spin bool) *ortdev.Session {
	tb.Helper()
	opts, err := e.api.NewSessionOptions()
	if err != nil {
		tb.Fatal(err)
	}
	defer opts.Close()
	if threads > 0 {
		if err := opts.SetIntraOpNumThreads(threads); err != nil {
			tb.Fatal(err)
		}
	}
	if !spin {
		if err := opts.AddConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			tb.Fatal(err)
		}
	}
	s, err := e.env.NewSession(path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// tensor makes a zeroed host tensor that closes with the test.
func (e *graphEnv) tensor(tb testing.TB, shape []int64, et ortdev.ElementType) *ortdev.Value {
	tb.Helper()
	v, err := e.api.NewHostTensor(shape, et)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return v
}

// floats makes a float32 host tensor holding data.
func (e *graphEnv) floats(tb testing.TB, shape []int64, data []float32) *ortdev.Value {
	tb.Helper()
	v := e.tensor(tb, shape, ortdev.Float32)
	dst, err := v.Float32s()
	if err != nil {
		tb.Fatal(err)
	}
	if len(data) != len(dst) {
		tb.Fatalf("%d values for a tensor of shape %v", len(data), shape)
	}
	copy(dst, data)
	return v
}

// bind makes an IoBinding of s with in and the pre-allocated out bound by
// name; it closes with the test.
func (e *graphEnv) bind(tb testing.TB, s *ortdev.Session, in, out map[string]*ortdev.Value) *ortdev.IoBinding {
	tb.Helper()
	b, err := s.NewIoBinding()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	for name, v := range in {
		if err := b.BindInput(name, v); err != nil {
			tb.Fatal(err)
		}
	}
	for name, v := range out {
		if err := b.BindOutput(name, v); err != nil {
			tb.Fatal(err)
		}
	}
	return b
}

// run runs s on in and returns the outputs named in outs, allocated by ORT
// in host memory (so their shapes are the ones the graph computed), as
// float32 values with their shapes.
func (e *graphEnv) run(tb testing.TB, s *ortdev.Session, in map[string]*ortdev.Value, outs ...string) (data [][]float32, shapes [][]int64) {
	tb.Helper()
	b := e.bind(tb, s, in, nil)
	for _, name := range outs {
		if err := b.BindOutputToDevice(name, e.cpu); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.RunWithBinding(b, nil); err != nil {
		tb.Fatal(err)
	}
	vals, err := b.OutputValues()
	if err != nil {
		tb.Fatal(err)
	}
	if len(vals) != len(outs) {
		tb.Fatalf("%d output values for %d outputs", len(vals), len(outs))
	}
	for _, v := range vals {
		defer v.Close()
		f, err := v.Float32s()
		if err != nil {
			tb.Fatal(err)
		}
		data, shapes = append(data, slices.Clone(f)), append(shapes, v.Shape())
	}
	return data, shapes
}

// TestHeadLastMatchesHead: head_last.onnx gives each row's last position
// of head.onnx's logits, with shape [B, 1, V].
func TestHeadLastMatchesHead(t *testing.T) {
	e := newGraphEnv(t)
	cfg := llama.Variants()[2].Config // tied embeddings
	src := llama.RandomWeights(cfg, 9)
	dir := t.TempDir()
	opts := llama.GraphOptions{MaxSeqLen: familyMaxSeq}
	if _, err := llama.WriteHead(dir, cfg, src, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := llama.WriteHeadLast(dir, cfg, src, opts); err != nil {
		t.Fatal(err)
	}
	const b, s = 2, 3
	hidden := make([]float32, b*s*cfg.HiddenSize)
	for i := range hidden {
		hidden[i] = float32(i%7) - 3
	}
	in := map[string]*ortdev.Value{manifest.Hidden: e.floats(t, []int64{b, s, int64(cfg.HiddenSize)}, hidden)}
	all, allShape := e.run(t, e.session(t, filepath.Join(dir, manifest.HeadFile), 1, false), in, manifest.Logits)
	last, lastShape := e.run(t, e.session(t, filepath.Join(dir, manifest.HeadLastFile), 1, false), in, manifest.Logits)
	v := cfg.VocabSize
	if want := []int64{b, s, int64(v)}; !slices.Equal(allShape[0], want) {
		t.Fatalf("head shape %v, want %v", allShape[0], want)
	}
	if want := []int64{b, 1, int64(v)}; !slices.Equal(lastShape[0], want) {
		t.Fatalf("head_last shape %v, want %v", lastShape[0], want)
	}
	for r := 0; r < b; r++ {
		full := all[0][(r*s+s-1)*v : (r*s+s)*v]
		if d, _ := logitDiff(last[0][r*v:(r+1)*v], full); d > 1e-5 {
			t.Errorf("row %d: head_last differs from head by %g", r, d)
		}
	}
}

// TestORTRunsWrittenProtobuf: ONNX Runtime accepts a graph models/onnx
// writes (external data, a float16 initializer, com.microsoft ops with
// float, int and omitted-output attributes) and computes what the plain-Go
// arithmetic does.
func TestORTRunsWrittenProtobuf(t *testing.T) {
	e := newGraphEnv(t)
	const M, K, N = 3, 40, 24
	rng := rand.New(rand.NewPCG(1, 2))
	randn := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	w1, w2, gamma, x, skip := randn(K*N), randn(N*N), randn(N), randn(M*K), randn(M*N)

	dir := t.TempDir()
	data, err := onnx.CreateExternalData(filepath.Join(dir, "t.onnx.data"))
	if err != nil {
		t.Fatal(err)
	}
	b := onnx.NewBuilder("t", data)
	b.Input("x", onnx.Float, onnx.P("batch"), onnx.D(M), onnx.D(K))
	b.Input("skip", onnx.Float, onnx.P("batch"), onnx.D(M), onnx.D(N))
	b.Float32("w1", []int64{K, N}, w1)
	b.Initializer("w2_fp16", onnx.Float16, []int64{N, N}, onnx.Float16Bytes(w2))
	b.Float32("gamma", []int64{N}, gamma)
	h := b.Op("MatMul", "h", []string{"x", "w1"})
	w2f := b.Op("Cast", "w2", []string{"w2_fp16"}, onnx.IntAttr("to", int64(onnx.Float)))
	b.Add(onnx.Node{OpType: "FusedMatMul", Domain: "com.microsoft", Inputs: []string{h, w2f}, Outputs: []string{"f"},
		Attrs: []onnx.Attr{onnx.FloatAttr("alpha", 0.5), onnx.IntAttr("transB", 1)}})
	b.Add(onnx.Node{OpType: "SkipSimplifiedLayerNormalization", Domain: "com.microsoft",
		Inputs: []string{"f", "skip", "gamma"}, Outputs: []string{"y", "", "", "sum"},
		Attrs: []onnx.Attr{onnx.FloatAttr("epsilon", 1e-6)}})
	b.Output("y", onnx.Float, onnx.P("batch"), onnx.D(M), onnx.D(N))
	b.Output("sum", onnx.Float, onnx.P("batch"), onnx.D(M), onnx.D(N))
	path := filepath.Join(dir, "t.onnx")
	if err := b.WriteModel(path); err != nil {
		t.Fatal(err)
	}

	out, _ := e.run(t, e.session(t, path, 0, false), map[string]*ortdev.Value{
		"x": e.floats(t, []int64{1, M, K}, x), "skip": e.floats(t, []int64{1, M, N}, skip),
	}, "y", "sum")
	y, sum := out[0], out[1]
	for m := 0; m < M; m++ {
		hrow := make([]float64, N)
		for n := 0; n < N; n++ {
			for k := 0; k < K; k++ {
				hrow[n] += float64(x[m*K+k]) * float64(w1[k*N+n])
			}
		}
		srow := make([]float64, N)
		var ss float64
		for n := 0; n < N; n++ {
			var f float64
			for k := 0; k < N; k++ { // transB: w2 is [N_out, N_in]
				f += hrow[k] * float64(onnx.RoundFloat16(w2[n*N+k]))
			}
			srow[n] = 0.5*f + float64(skip[m*N+n])
			ss += srow[n] * srow[n]
		}
		inv := 1 / math.Sqrt(ss/N+1e-6)
		for n := 0; n < N; n++ {
			if d := math.Abs(float64(sum[m*N+n]) - srow[n]); !(d <= 1e-3) { // NaN fails too
				t.Fatalf("sum[%d,%d] = %v, want %v", m, n, sum[m*N+n], srow[n])
			}
			want := srow[n] * inv * float64(gamma[n])
			if d := math.Abs(float64(y[m*N+n]) - want); !(d <= 1e-4*(1+math.Abs(want))) {
				t.Fatalf("y[%d,%d] = %v, want %v", m, n, y[m*N+n], want)
			}
		}
	}
}
