package ortdev

import (
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"
)

// runOrtgo runs the tiny model through onnxruntime_go's own env and session.
func runOrtgo(t *testing.T, model string, h, state []float32) (hiddenOut, stateOut []float32) {
	t.Helper()
	shape := ortgo.NewShape(1, modelDim)
	hIn, err := ortgo.NewTensor(shape, h)
	if err != nil {
		t.Fatal(err)
	}
	defer hIn.Destroy()
	sIn, err := ortgo.NewTensor(shape, state)
	if err != nil {
		t.Fatal(err)
	}
	defer sIn.Destroy()
	hOut, err := ortgo.NewEmptyTensor[float32](shape)
	if err != nil {
		t.Fatal(err)
	}
	defer hOut.Destroy()
	sOut, err := ortgo.NewEmptyTensor[float32](shape)
	if err != nil {
		t.Fatal(err)
	}
	defer sOut.Destroy()
	s, err := ortgo.NewAdvancedSession(model, []string{"hidden", "state"}, []string{"hidden_out", "state_out"},
		[]ortgo.Value{hIn, sIn}, []ortgo.Value{hOut, sOut}, nil)
	if err != nil {
		t.Fatalf("onnxruntime_go session: %v", err)
	}
	defer s.Destroy()
	if err := s.Run(); err != nil {
		t.Fatalf("onnxruntime_go run: %v", err)
	}
	return append([]float32(nil), hOut.GetData()...), append([]float32(nil), sOut.GetData()...)
}

// runOurs runs the tiny model through an ortdev env with host tensors.
func runOurs(t *testing.T, env *Env, model string, h, state []float32) []float32 {
	t.Helper()
	s, err := env.NewSession(model, nil)
	if err != nil {
		t.Fatalf("ortdev session: %v", err)
	}
	defer s.Close()
	b, err := s.NewIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out := hostFloats(t, env.api, make([]float32, modelDim), 1, modelDim)
	for name, v := range map[string]*Value{
		"hidden": hostFloats(t, env.api, h, 1, modelDim),
		"state":  hostFloats(t, env.api, state, 1, modelDim),
	} {
		if err := b.BindInput(name, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.BindOutput("hidden_out", out); err != nil {
		t.Fatal(err)
	}
	if err := b.BindOutputToDevice("state_out", mustMem(t, env.api)); err != nil {
		t.Fatal(err)
	}
	if err := s.RunWithBinding(b, nil); err != nil {
		t.Fatalf("ortdev run: %v", err)
	}
	got, err := out.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), got...)
}

func mustMem(t *testing.T, a *API) *MemoryInfo {
	t.Helper()
	m, err := a.NewMemoryInfo(DeviceCPU, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// TestCoexistWithOnnxruntimeGo loads the library through both bindings in one
// process: each holds its own reference on ORT's shared environment, and
// releasing either one leaves the other working.
func TestCoexistWithOnnxruntimeGo(t *testing.T) {
	a := openAPI(t)
	model := writeTestModel(t)
	h, state := []float32{1, 2, 3, 4}, []float32{-1, -1, -1, -1}
	wantH := refMatVec(h)

	ours, err := a.NewEnv(LogWarning, "ortdev-first")
	if err != nil {
		t.Fatal(err)
	}
	ortgo.SetSharedLibraryPath(a.Path())
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelWarning()); err != nil {
		t.Fatalf("onnxruntime_go init after ortdev's env: %v", err)
	}
	destroyed := false
	defer func() {
		if !destroyed {
			ortgo.DestroyEnvironment()
		}
	}()
	ours.Close() // theirs must survive
	gotH, gotS := runOrtgo(t, model, h, state)
	assertClose(t, "onnxruntime_go hidden_out after ortdev closed its env", gotH, wantH)
	assertClose(t, "onnxruntime_go state_out", gotS, []float32{0, 1, 2, 3})

	ours, err = a.NewEnv(LogWarning, "ortdev-second")
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	assertClose(t, "ortdev hidden_out next to onnxruntime_go", runOurs(t, ours, model, h, state), wantH)
	if err := ortgo.DestroyEnvironment(); err != nil {
		t.Fatalf("onnxruntime_go destroy: %v", err)
	}
	destroyed = true
	// Ours must survive theirs (and their dlclose: ortdev's dlopen keeps the library mapped).
	assertClose(t, "ortdev hidden_out after onnxruntime_go destroyed its env", runOurs(t, ours, model, h, state), wantH)
}
