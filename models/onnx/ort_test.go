package onnx_test

// This test lives in an external package: engine/ort imports models/onnx
// (to check external-data locations before every session).

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort/orttest"
	"github.com/strata-llm/strata/models/onnx"
)

func TestORTRun(t *testing.T) {
	if err := orttest.LoadLibrary(""); err != nil {
		t.Fatalf("ONNX Runtime is required (set %s): %v", "STRATA_ORT_LIB", err)
	}
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

	s, err := orttest.NewSession(path, []string{"x", "skip"}, []string{"y", "sum"}, orttest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	xt, err := ortgo.NewTensor(ortgo.NewShape(1, M, K), x)
	if err != nil {
		t.Fatal(err)
	}
	defer xt.Destroy()
	st, err := ortgo.NewTensor(ortgo.NewShape(1, M, N), skip)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Destroy()
	outs := []ortgo.Value{nil, nil}
	if err := s.Run([]ortgo.Value{xt, st}, outs); err != nil {
		t.Fatal(err)
	}
	defer outs[0].Destroy()
	defer outs[1].Destroy()
	y := outs[0].(*ortgo.Tensor[float32]).GetData()
	sum := outs[1].(*ortgo.Tensor[float32]).GetData()

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
			if d := math.Abs(float64(sum[m*N+n]) - srow[n]); d > 1e-3 {
				t.Fatalf("sum[%d,%d] = %v, want %v", m, n, sum[m*N+n], srow[n])
			}
			want := srow[n] * inv * float64(gamma[n])
			if d := math.Abs(float64(y[m*N+n]) - want); d > 1e-4*(1+math.Abs(want)) {
				t.Fatalf("y[%d,%d] = %v, want %v", m, n, y[m*N+n], want)
			}
		}
	}
}
