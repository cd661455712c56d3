package ortdev

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeWeightFile writes w as little-endian float32 at offset 4096 of a new
// file (the first page zeros) and returns its path.
func writeWeightFile(t *testing.T, w []float32) string {
	t.Helper()
	buf := make([]byte, 4096+4*len(w))
	for i, f := range w {
		binary.LittleEndian.PutUint32(buf[4096+4*i:], math.Float32bits(f))
	}
	path := filepath.Join(t.TempDir(), "w.data")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runMatVec runs the test model's MatMul on h through s with host tensors.
func runMatVec(t *testing.T, a *API, s *Session, h []float32) []float32 {
	t.Helper()
	in := hostFloats(t, a, h, 1, modelDim)
	state := hostFloats(t, a, make([]float32, modelDim), 1, modelDim)
	out, err := a.NewHostTensor([]int64{1, modelDim}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	b, err := s.NewIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, bind := range []func() error{
		func() error { return b.BindInput("hidden", in) },
		func() error { return b.BindInput("state", state) },
		func() error { return b.BindOutput("hidden_out", out) },
		func() error { return b.BindOutput("state_out", state) },
		func() error { return s.RunWithBinding(b, nil) },
	} {
		if err := bind(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := out.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), got...)
}

// TestSharedInitializer: sessions given a tensor over a mapped file as an
// initializer compute with it instead of the graph's own values (here the
// graph's W doubled), two sessions sharing it and a prepacked-weights
// container; the value, file and container closed by their owner right
// after the hand-over stay alive until the last session is released.
func TestSharedInitializer(t *testing.T) {
	a := openAPI(t)
	env, err := a.NewEnv(LogError, "shared-test")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	doubled := testWeights()
	for i := range doubled {
		doubled[i] *= 2
	}
	mf, err := a.MapFile(writeWeightFile(t, doubled))
	if err != nil {
		t.Fatal(err)
	}
	w, err := mf.Tensor(4096, 4*modelDim*modelDim, []int64{modelDim, modelDim}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	container, err := a.NewPrepackedWeights()
	if err != nil {
		t.Fatal(err)
	}
	base, err := a.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	if err := base.SetPrepackedWeights(container); err != nil {
		t.Fatal(err)
	}
	if err := base.AddInitializer("W", w); err != nil {
		t.Fatal(err)
	}
	opts, err := base.Clone()
	if err != nil {
		t.Fatal(err)
	}
	// Their owners let go: the options (and then the sessions) hold them.
	w.Close()
	mf.Close()
	container.Close()
	base.Close()
	var sessions []*Session
	for i := 0; i < 2; i++ {
		s, err := env.NewSessionFromBytes("tiny", testModel(), opts)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	opts.Close()
	if mf.life.done || container.life.done || w.life.done {
		t.Fatal("the mapping, container or tensor was released while sessions use them")
	}
	h := []float32{1, -2, 0.5, 3}
	want := refMatVec(h)
	for i := range want {
		want[i] *= 2
	}
	for i, s := range sessions {
		assertClose(t, "session "+string(rune('0'+i)), runMatVec(t, a, s, h), want)
	}
	for _, s := range sessions {
		s.Close()
	}
	if !mf.life.done || !container.life.done || !w.life.done {
		t.Error("the mapping, container or tensor outlived the last session")
	}
}

// TestSharedErrors: bad mappings, tensors and initializers are errors that
// name what is wrong, never a crash.
func TestSharedErrors(t *testing.T) {
	a := openAPI(t)
	path := writeWeightFile(t, testWeights())
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
	}{{filepath.Join(t.TempDir(), "missing"), "no such file"}, {empty, "empty file"}} {
		if _, err := a.MapFile(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("MapFile(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
	mf, err := a.MapFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	for _, tc := range []struct {
		name           string
		offset, length int64
		shape          []int64
		elem           ElementType
		want           string
	}{
		{"past the end", 4096 + 4, 64, []int64{16}, Float32, "outside a file"},
		{"negative offset", -4, 64, []int64{16}, Float32, "outside a file"},
		{"length is not the shape", 4096, 60, []int64{16}, Float32, "not 60"},
		{"unsupported type", 4096, 64, []int64{16}, ElementType(13), "unsupported"},
	} {
		if v, err := mf.Tensor(tc.offset, tc.length, tc.shape, tc.elem); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Tensor = %v, %v; want an error with %q", tc.name, v, err, tc.want)
		}
	}
	v, err := mf.Tensor(4096, 64, []int64{16}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Float32s()
	if err != nil || got[5] != testWeights()[5] {
		t.Errorf("tensor over the mapping reads %v (%v), want the file's floats", got, err)
	}
	opts, err := a.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	if err := opts.AddInitializer("", v); err == nil {
		t.Error("AddInitializer with an empty name succeeded")
	}
	if err := opts.SetPrepackedWeights(nil); err == nil {
		t.Error("SetPrepackedWeights(nil) succeeded")
	}
	v.Close()
	if err := opts.AddInitializer("W", v); err == nil {
		t.Error("AddInitializer with a closed value succeeded")
	}
	opts.Close()
	if _, err := opts.Clone(); err == nil {
		t.Error("Clone of closed options succeeded")
	}
	if err := mf.Release(); err != nil {
		t.Errorf("Release: %v", err)
	}
}
