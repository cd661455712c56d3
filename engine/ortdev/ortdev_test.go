package ortdev

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/strata-llm/strata/engine/ortlib"
)

// defaultLib is where the development machines keep ORT 1.30's library.
const defaultLib = "/tmp/ortpkg/package/bin/napi-v6/linux/x64/libonnxruntime.so.1"

var (
	openOnce sync.Once
	testAPI  *API
	openErr  error
)

// testLibPath is STRATA_ORT_LIB when set, else the development path when it
// exists, else whatever engine/ortlib resolves.
func testLibPath(t *testing.T) string {
	t.Helper()
	if os.Getenv(ortlib.EnvLibrary) == "" {
		if _, err := os.Stat(defaultLib); err == nil {
			return defaultLib
		}
	}
	lib, err := ortlib.Find("")
	if err != nil {
		t.Fatalf("these tests need ONNX Runtime %s: set %s or run `strata runtime fetch`: %v", ortlib.Version, ortlib.EnvLibrary, err)
	}
	return lib.Path
}

// openAPI opens the library once per test binary.
func openAPI(t *testing.T) *API {
	t.Helper()
	path := testLibPath(t)
	openOnce.Do(func() { testAPI, openErr = Open(path) })
	if openErr != nil {
		t.Fatalf("Open(%s): %v", path, openErr)
	}
	return testAPI
}

// testDevice is the device the binding tests run on: STRATA_TEST_DEVICE
// (cpu, webgpu or cuda; cpu when unset). On a GPU machine
// STRATA_TEST_DEVICE=webgpu runs the same copy and binding tests in GPU memory.
func testDevice(t *testing.T) Device {
	t.Helper()
	s := os.Getenv("STRATA_TEST_DEVICE")
	if s == "" {
		return DeviceCPU
	}
	d, err := ParseDevice(s)
	if err != nil {
		t.Fatalf("STRATA_TEST_DEVICE: %v", err)
	}
	return d
}

// fixture is an env, a session on the tiny model for the test device and an
// allocator in that device's memory.
type fixture struct {
	api   *API
	dev   Device
	env   *Env
	sess  *Session
	mem   *MemoryInfo
	alloc *Allocator
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	a := openAPI(t)
	f := &fixture{api: a, dev: testDevice(t)}
	var err error
	if f.env, err = a.NewEnv(LogWarning, "ortdev-test"); err != nil {
		t.Fatal(err)
	}
	opts, err := a.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Close()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if err := opts.SetGraphOptimizationLevel(OptAll); err != nil {
		t.Fatal(err)
	}
	// On a GPU every node must run there; with only the CPU provider ORT
	// refuses a session when this is set, so it is set for GPUs only.
	if f.dev != DeviceCPU {
		if err := opts.AddConfigEntry("session.disable_cpu_ep_fallback", "1"); err != nil {
			t.Fatal(err)
		}
	} else if err := opts.AddConfigEntry("session.disable_cpu_ep_fallback", "0"); err != nil {
		t.Fatal(err)
	}
	if err := opts.AppendDevice(f.dev, nil); err != nil {
		t.Fatal(err)
	}
	if f.sess, err = f.env.NewSession(writeTestModel(t), opts); err != nil {
		t.Fatal(err)
	}
	if f.mem, err = a.NewMemoryInfo(f.dev, 0); err != nil {
		t.Fatal(err)
	}
	if f.alloc, err = f.sess.NewAllocator(f.mem); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.close)
	return f
}

func (f *fixture) close() {
	f.alloc.Close()
	f.mem.Close()
	f.sess.Close()
	f.env.Close()
}

// hostFloats makes a host float32 tensor holding data.
func hostFloats(t *testing.T, a *API, data []float32, shape ...int64) *Value {
	t.Helper()
	v, err := a.NewHostTensor(shape, Float32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	dst, err := v.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	copy(dst, data)
	return v
}

// readBack copies a device tensor into a new host tensor and returns its floats.
func readBack(t *testing.T, f *fixture, dev *Value) []float32 {
	t.Helper()
	host, err := f.api.NewHostTensor(dev.Shape(), Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if err := f.env.CopyTensors([]*Value{dev}, []*Value{host}); err != nil {
		t.Fatal(err)
	}
	got, err := host.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), got...)
}

func assertClose(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
}

func TestOpen(t *testing.T) {
	a := openAPI(t)
	if a.APIVersion() != APIVersion && a.APIVersion() != MinAPIVersion {
		t.Errorf("API version %d, want %d or %d", a.APIVersion(), APIVersion, MinAPIVersion)
	}
	if !strings.HasPrefix(a.Version(), "1.") {
		t.Errorf("library version %q", a.Version())
	}
	if a.Path() == "" {
		t.Error("empty Path")
	}
	// Opening the same file again (as onnxruntime_go does) works.
	b, err := Open(a.Path())
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if b.Version() != a.Version() || b.APIVersion() != a.APIVersion() {
		t.Errorf("second Open sees %s/%d, first %s/%d", b.Version(), b.APIVersion(), a.Version(), a.APIVersion())
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	if _, err := Open("/nonexistent/libonnxruntime.so"); err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("Open of a missing file: %v", err)
	}
	// A real shared library that is not ONNX Runtime.
	if _, err := Open("libc.so.6"); err == nil || !strings.Contains(err.Error(), "OrtGetApiBase") {
		t.Errorf("Open of libc: %v", err)
	}
}

func TestEnvIsSharedSingleton(t *testing.T) {
	a := openAPI(t)
	e1, err := a.NewEnv(LogWarning, "first")
	if err != nil {
		t.Fatal(err)
	}
	e2, err := a.NewEnv(LogError, "second")
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if e1.p != e2.p {
		t.Errorf("CreateEnv returned two environments (%p, %p); ORT keeps one per process", e1.p, e2.p)
	}
	// Dropping one reference leaves the other usable.
	e1.Close()
	e1.Close()
	if _, err := e1.NewSession(writeTestModel(t), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("NewSession on a closed env: %v, want ErrClosed", err)
	}
	s, err := e2.NewSession(writeTestModel(t), nil)
	if err != nil {
		t.Fatalf("session on the remaining env reference: %v", err)
	}
	defer s.Close()
	if got := strings.Join(s.InputNames(), ","); got != "hidden,state" {
		t.Errorf("inputs %q", got)
	}
	if got := strings.Join(s.OutputNames(), ","); got != "hidden_out,state_out" {
		t.Errorf("outputs %q", got)
	}
}

func TestMemoryInfo(t *testing.T) {
	a := openAPI(t)
	for _, tc := range []struct {
		dev  Device
		id   int
		name string
	}{
		{DeviceCPU, 0, "Cpu"},
		{DeviceCUDA, 1, "Cuda"},
		// Describing WebGPU memory needs no GPU; ORT 1.23+ names it WebGPU_Buf.
		{DeviceWebGPU, 0, "WebGPU_Buf"},
	} {
		m, err := a.NewMemoryInfo(tc.dev, tc.id)
		if err != nil {
			t.Fatalf("%s: %v", tc.dev, err)
		}
		name, id, memType, allocType, devType, err := a.memoryInfoFields(m.p)
		if err != nil {
			t.Fatal(err)
		}
		wantDev := 1 // GPU
		if tc.dev == DeviceCPU {
			wantDev = deviceTypeCPU
		}
		if name != tc.name || m.Name() != tc.name || id != tc.id || m.ID() != tc.id || memType != memTypeDefault ||
			allocType != allocDevice || devType != wantDev || m.Device() != tc.dev {
			t.Errorf("%s: read back %q id %d mem %d alloc %d device type %d", tc.dev, name, id, memType, allocType, devType)
		}
		m.Close()
		m.Close()
	}
	if _, err := a.NewMemoryInfo("tpu", 0); err == nil {
		t.Error("unknown device accepted")
	}
	if _, err := a.NewMemoryInfo(DeviceCPU, -1); err == nil {
		t.Error("negative device id accepted")
	}
	if d, err := ParseDevice("webgpu"); err != nil || d != DeviceWebGPU {
		t.Errorf("ParseDevice(webgpu) = %q, %v", d, err)
	}
	if _, err := ParseDevice("gpu"); err == nil {
		t.Error("ParseDevice(gpu) succeeded")
	}
}

func TestCopyRoundTripAllTypes(t *testing.T) {
	f := newFixture(t)
	shape := []int64{2, 3, 5}
	for _, et := range []ElementType{Float32, Float16, Int32, Int64} {
		src, err := f.api.NewHostTensor(shape, et)
		if err != nil {
			t.Fatal(err)
		}
		b, err := src.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 30*et.Size() {
			t.Fatalf("%s: %d bytes, want %d", et, len(b), 30*et.Size())
		}
		for i := range b {
			b[i] = byte(i*7 + 1)
		}
		dev, err := f.alloc.NewTensor(shape, et)
		if err != nil {
			t.Fatal(err)
		}
		back, err := f.api.NewHostTensor(shape, et)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.env.CopyTensors([]*Value{src}, []*Value{dev}); err != nil {
			t.Fatalf("%s host→device: %v", et, err)
		}
		if err := f.env.CopyTensors([]*Value{dev}, []*Value{back}); err != nil {
			t.Fatalf("%s device→host: %v", et, err)
		}
		got, _ := back.Bytes()
		if !bytes.Equal(got, b) {
			t.Errorf("%s: round trip changed the data", et)
		}
		// "Cpu" device memory is also readable directly, GPU memory is not.
		direct, err := dev.Bytes()
		if f.dev == DeviceCPU && (err != nil || !bytes.Equal(direct, b)) {
			t.Errorf("%s: direct read of CPU device memory: %v", et, err)
		}
		if f.dev != DeviceCPU && err == nil {
			t.Errorf("%s: direct read of %s memory succeeded", et, f.dev)
		}
		if sh := dev.Shape(); len(sh) != 3 || sh[0] != 2 || sh[1] != 3 || sh[2] != 5 || dev.ElementType() != et {
			t.Errorf("%s: shape %v type %s", et, sh, dev.ElementType())
		}
		src.Close()
		dev.Close()
		back.Close()
	}
	// Typed views check the element type.
	v, err := f.api.NewHostTensor([]int64{3}, Int64)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Float32s(); err == nil {
		t.Error("Float32s on an int64 tensor succeeded")
	}
	if xs, err := v.Int64s(); err != nil || len(xs) != 3 {
		t.Errorf("Int64s: %v %v", xs, err)
	}
}

func TestCopyTensorsErrors(t *testing.T) {
	f := newFixture(t)
	a := hostFloats(t, f.api, []float32{1, 2, 3, 4}, 1, 4)
	b := hostFloats(t, f.api, []float32{0, 0, 0}, 3)
	i32, err := f.api.NewHostTensor([]int64{1, 4}, Int32)
	if err != nil {
		t.Fatal(err)
	}
	defer i32.Close()
	if err := f.env.CopyTensors([]*Value{a}, nil); err == nil {
		t.Error("unequal lists accepted")
	}
	if err := f.env.CopyTensors([]*Value{a}, []*Value{b}); err == nil {
		t.Error("element count mismatch accepted")
	}
	if err := f.env.CopyTensors([]*Value{a}, []*Value{i32}); err == nil {
		t.Error("element type mismatch accepted")
	}
	if err := f.env.CopyTensors([]*Value{a}, []*Value{nil}); err == nil {
		t.Error("nil value accepted")
	}
	closed := hostFloats(t, f.api, []float32{0, 0, 0, 0}, 1, 4)
	closed.Close()
	if err := f.env.CopyTensors([]*Value{a}, []*Value{closed}); !errors.Is(err, ErrClosed) {
		t.Errorf("copy into a closed value: %v", err)
	}
	if _, err := closed.Bytes(); !errors.Is(err, ErrClosed) {
		t.Errorf("Bytes of a closed value: %v", err)
	}
}

func TestBadTensorArguments(t *testing.T) {
	f := newFixture(t)
	if _, err := f.alloc.NewTensor([]int64{2, -1}, Float32); err == nil {
		t.Error("negative dimension accepted")
	}
	if _, err := f.alloc.NewTensor([]int64{2}, ElementType(8)); err == nil {
		t.Error("string tensor accepted")
	}
	if _, err := f.api.NewHostTensor([]int64{math.MaxInt64, 4}, Float32); err == nil {
		t.Error("overflowing shape accepted")
	}
	// A scalar and an empty tensor are fine.
	s, err := f.api.NewHostTensor(nil, Int32)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if xs, err := s.Int32s(); err != nil || len(xs) != 1 {
		t.Errorf("scalar: %v %v", xs, err)
	}
	e, err := f.alloc.NewTensor([]int64{0, 4}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// An empty tensor reads as empty where its memory is the host's; device
	// memory is never read through a host view, even when empty.
	xs, err := e.Float32s()
	if onHost := f.alloc.Device() == DeviceCPU; onHost && (err != nil || len(xs) != 0) {
		t.Errorf("empty host tensor: %v %v", xs, err)
	} else if !onHost && (err == nil || !strings.Contains(err.Error(), "device memory")) {
		t.Errorf("empty device tensor read as host memory: %v %v", xs, err)
	}
}

// TestRunWithBindingPingPong is the generator's decode loop in miniature:
// hidden states alternate between two device buffers, and the state buffer is
// bound as both input and output so the model updates it in place.
func TestRunWithBindingPingPong(t *testing.T) {
	f := newFixture(t)
	bufA, err := f.alloc.NewTensor([]int64{1, modelDim}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer bufA.Close()
	bufB, err := f.alloc.NewTensor([]int64{1, modelDim}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer bufB.Close()
	state, err := f.alloc.NewTensor([]int64{1, modelDim}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()

	h := []float32{1, -2, 0.5, 3}
	wantState := []float32{10, 20, 30, 40}
	if err := f.env.CopyTensors(
		[]*Value{hostFloats(t, f.api, h, 1, modelDim), hostFloats(t, f.api, wantState, 1, modelDim)},
		[]*Value{bufA, state}); err != nil {
		t.Fatal(err)
	}
	bind, err := f.sess.NewIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer bind.Close()
	ro, err := f.api.NewRunOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	// A graph id on a session without graph capture changes nothing.
	if err := ro.AddConfigEntry("gpu_graph_id", "-1"); err != nil {
		t.Fatal(err)
	}
	if err := bind.BindInput("state", state); err != nil {
		t.Fatal(err)
	}
	if err := bind.BindOutput("state_out", state); err != nil {
		t.Fatal(err)
	}
	in, out := bufA, bufB
	for step := 0; step < 4; step++ {
		if err := bind.BindInput("hidden", in); err != nil {
			t.Fatal(err)
		}
		if err := bind.BindOutput("hidden_out", out); err != nil {
			t.Fatal(err)
		}
		var opts *RunOptions
		if step%2 == 1 {
			opts = ro
		}
		if err := f.sess.RunWithBinding(bind, opts); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if err := bind.SynchronizeOutputs(); err != nil {
			t.Fatal(err)
		}
		for i := range wantState {
			wantState[i] += h[i]
		}
		h = refMatVec(h)
		assertClose(t, "hidden", readBack(t, f, out), h)
		assertClose(t, "state", readBack(t, f, state), wantState)
		in, out = out, in
	}
}

func TestBindOutputToDevice(t *testing.T) {
	f := newFixture(t)
	h := []float32{0.5, 1, 1.5, 2}
	bind, err := f.sess.NewIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer bind.Close()
	if err := bind.BindInput("hidden", hostFloats(t, f.api, h, 1, modelDim)); err != nil {
		t.Fatal(err)
	}
	if err := bind.BindInput("state", hostFloats(t, f.api, []float32{1, 1, 1, 1}, 1, modelDim)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hidden_out", "state_out"} {
		if err := bind.BindOutputToDevice(name, f.mem); err != nil {
			t.Fatal(err)
		}
	}
	if err := bind.SynchronizeInputs(); err != nil {
		t.Fatal(err)
	}
	if err := f.sess.RunWithBinding(bind, nil); err != nil {
		t.Fatal(err)
	}
	outs, err := bind.OutputValues()
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 {
		t.Fatalf("%d output values, want 2", len(outs))
	}
	for _, v := range outs {
		defer v.Close()
		if sh := v.Shape(); len(sh) != 2 || sh[0] != 1 || sh[1] != modelDim || v.ElementType() != Float32 {
			t.Errorf("output shape %v type %s", sh, v.ElementType())
		}
	}
	assertClose(t, "hidden_out", readBack(t, f, outs[0]), refMatVec(h))
	assertClose(t, "state_out", readBack(t, f, outs[1]), []float32{1.5, 2, 2.5, 3})

	// Clearing and rebinding works; a run without outputs bound fails cleanly.
	if err := bind.ClearBoundOutputs(); err != nil {
		t.Fatal(err)
	}
	if err := bind.ClearBoundInputs(); err != nil {
		t.Fatal(err)
	}
	if err := f.sess.RunWithBinding(bind, nil); err == nil {
		t.Error("run with nothing bound succeeded")
	}
}

func TestBindingErrors(t *testing.T) {
	f := newFixture(t)
	v := hostFloats(t, f.api, []float32{1, 2, 3, 4}, 1, modelDim)
	bind, err := f.sess.NewIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer bind.Close()
	if err := bind.BindInput("no_such_input", v); err == nil {
		t.Error("unknown input name accepted")
	}
	if err := bind.BindInput("", v); err == nil {
		t.Error("empty name accepted")
	}
	if err := bind.BindOutput("hidden_out", nil); err == nil {
		t.Error("nil value accepted")
	}
	other := newFixture(t)
	otherBind, err := other.sess.NewIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer otherBind.Close()
	if err := f.sess.RunWithBinding(otherBind, nil); err == nil {
		t.Error("binding of another session accepted")
	}
	if err := f.sess.RunWithBinding(nil, nil); err == nil {
		t.Error("nil binding accepted")
	}
	var ortErr *Error
	if err := bind.BindInput("no_such_input", v); !errors.As(err, &ortErr) || ortErr.Message == "" {
		t.Errorf("ORT failure not an *Error with a message: %v", err)
	}
}

// TestCloseOrder closes parents before children: the parents' release waits
// for the children, and everything keeps working until then.
func TestCloseOrder(t *testing.T) {
	a := openAPI(t)
	env, err := a.NewEnv(LogWarning, "close-order")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := env.NewSession(writeTestModel(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := a.NewMemoryInfo(DeviceCPU, 0)
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := sess.NewAllocator(mem)
	if err != nil {
		t.Fatal(err)
	}
	mem.Close()
	val, err := alloc.NewTensor([]int64{1, modelDim}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	bind, err := sess.NewIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	if err := bind.BindInput("hidden", val); err != nil {
		t.Fatal(err)
	}
	alloc.Close()
	sess.Close()
	env.Close()
	val.Close() // still bound: released with the binding
	if _, err := alloc.NewTensor([]int64{1}, Float32); !errors.Is(err, ErrClosed) {
		t.Errorf("NewTensor on a closed allocator: %v", err)
	}
	if _, err := sess.NewIoBinding(); !errors.Is(err, ErrClosed) {
		t.Errorf("NewIoBinding on a closed session: %v", err)
	}
	if err := bind.BindInput("state", val); !errors.Is(err, ErrClosed) {
		t.Errorf("binding a closed value: %v", err)
	}
	if err := bind.BindInput("state", hostFloats(t, a, []float32{1, 2, 3, 4}, 1, modelDim)); err != nil {
		t.Errorf("binding still usable while open: %v", err)
	}
	bind.Close()
	bind.Close()
	if err := bind.ClearBoundInputs(); !errors.Is(err, ErrClosed) {
		t.Errorf("ClearBoundInputs on a closed binding: %v", err)
	}
}

// TestDevicesUnavailable: this machine has no GPU and the library has no CUDA
// provider; asking for either must give an error, never a crash.
func TestDevicesUnavailable(t *testing.T) {
	a := openAPI(t)
	env, err := a.NewEnv(LogFatal, "unavailable")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	model := writeTestModel(t)
	for _, d := range []Device{DeviceWebGPU, DeviceCUDA} {
		if d == testDevice(t) {
			continue // this machine has the device
		}
		opts, err := a.NewSessionOptions()
		if err != nil {
			t.Fatal(err)
		}
		if err := opts.AddConfigEntry("session.disable_cpu_ep_fallback", "1"); err != nil {
			t.Fatal(err)
		}
		err = opts.AppendDevice(d, nil)
		if err == nil {
			var s *Session
			s, err = env.NewSession(model, opts)
			if s != nil {
				s.Close()
			}
		}
		opts.Close()
		if err == nil {
			t.Errorf("%s: session created on a machine without that device", d)
			continue
		}
		t.Logf("%s: %v", d, err)
	}
	opts, err := a.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Close()
	if err := opts.AppendExecutionProvider("NoSuchProvider", map[string]string{"k": "v"}); err == nil {
		t.Error("unknown execution provider accepted")
	}
	if err := opts.AppendDevice("tpu", nil); err == nil {
		t.Error("unknown device accepted")
	}
}

func TestSessionOptionErrors(t *testing.T) {
	a := openAPI(t)
	opts, err := a.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	if err := opts.SetIntraOpNumThreads(-1); err == nil {
		t.Error("negative thread count accepted")
	}
	if err := opts.SetGraphOptimizationLevel(7); err == nil {
		t.Error("invalid optimization level accepted")
	}
	if err := opts.AddConfigEntry("", "1"); err == nil {
		t.Error("empty config key accepted")
	}
	opts.Close()
	if err := opts.SetIntraOpNumThreads(1); !errors.Is(err, ErrClosed) {
		t.Errorf("closed options: %v", err)
	}
	env, err := a.NewEnv(LogWarning, "bad-model")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if _, err := env.NewSession("/nonexistent/model.onnx", nil); err == nil {
		t.Error("missing model accepted")
	}
	garbage := writeTestModel(t) + ".bad"
	if err := os.WriteFile(garbage, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := env.NewSession(garbage, nil); err == nil {
		t.Error("garbage model accepted")
	}
}

// rssBytes reads the resident set size from /proc.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatalf("read statm: %v", err)
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(data), &size, &resident); err != nil {
		t.Fatalf("parse statm %q: %v", data, err)
	}
	return resident * int64(os.Getpagesize())
}

// cycle creates and closes every kind of object once, running the model.
func cycle(t *testing.T, a *API, model string) {
	env, err := a.NewEnv(LogWarning, "leak")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	opts, err := a.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	sess, err := env.NewSession(model, opts)
	opts.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	mem, err := a.NewMemoryInfo(DeviceCPU, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	alloc, err := sess.NewAllocator(mem)
	if err != nil {
		t.Fatal(err)
	}
	defer alloc.Close()
	dev, err := alloc.NewTensor([]int64{1, modelDim}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	host, err := a.NewHostTensor([]int64{1, modelDim}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if err := env.CopyTensors([]*Value{host}, []*Value{dev}); err != nil {
		t.Fatal(err)
	}
	bind, err := sess.NewIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer bind.Close()
	ro, err := a.NewRunOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for _, in := range []string{"hidden", "state"} {
		if err := bind.BindInput(in, dev); err != nil {
			t.Fatal(err)
		}
	}
	if err := bind.BindOutputToDevice("hidden_out", mem); err != nil {
		t.Fatal(err)
	}
	if err := bind.BindOutput("state_out", host); err != nil {
		t.Fatal(err)
	}
	if err := sess.RunWithBinding(bind, ro); err != nil {
		t.Fatal(err)
	}
	outs, err := bind.OutputValues()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range outs {
		v.Close()
	}
}

func TestNoLeaks(t *testing.T) {
	a := openAPI(t)
	model := writeTestModel(t)
	// Keep one env reference so the cycles measure our objects, not ORT
	// rebuilding its process-wide environment each time.
	keep, err := a.NewEnv(LogWarning, "leak-keep")
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	for i := 0; i < 20; i++ {
		cycle(t, a, model)
	}
	before := rssBytes(t)
	for i := 0; i < 200; i++ {
		cycle(t, a, model)
	}
	after := rssBytes(t)
	growth := after - before
	t.Logf("RSS %d MiB → %d MiB over 200 cycles", before>>20, after>>20)
	if growth > 16<<20 {
		t.Errorf("RSS grew by %d MiB over 200 create/close cycles", growth>>20)
	}
}

// TestOutputValuesOutliveBinding: values returned by OutputValues stay
// readable after everything they came from is closed.
func TestOutputValuesOutliveBinding(t *testing.T) {
	f := newFixture(t)
	out, err := f.alloc.NewTensor([]int64{1, modelDim}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	bind, err := f.sess.NewIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	h := []float32{2, 0, -1, 1}
	for _, in := range []string{"hidden", "state"} {
		if err := bind.BindInput(in, hostFloats(t, f.api, h, 1, modelDim)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bind.BindOutput("hidden_out", out); err != nil {
		t.Fatal(err)
	}
	if err := bind.BindOutputToDevice("state_out", f.mem); err != nil {
		t.Fatal(err)
	}
	if err := f.sess.RunWithBinding(bind, nil); err != nil {
		t.Fatal(err)
	}
	outs, err := bind.OutputValues()
	if err != nil {
		t.Fatal(err)
	}
	bind.Close()
	out.Close()
	f.close()
	if len(outs) != 2 {
		t.Fatalf("%d outputs", len(outs))
	}
	env, err := f.api.NewEnv(LogWarning, "read-back")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	readBackEnv := &fixture{api: f.api, env: env}
	assertClose(t, "hidden_out after close", readBack(t, readBackEnv, outs[0]), refMatVec(h))
	assertClose(t, "state_out after close", readBack(t, readBackEnv, outs[1]), []float32{4, 0, -2, 2})
	for _, v := range outs {
		v.Close()
	}
}

// TestHostView: a view aliases its parent's memory, keeps the parent alive
// after the parent is closed, and refuses ranges outside the parent.
func TestHostView(t *testing.T) {
	api := openAPI(t)
	parent, err := api.NewHostTensor([]int64{2, 3}, Float32)
	if err != nil {
		t.Fatal(err)
	}
	row, err := parent.HostView(3, []int64{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	defer row.Close()
	pd, _ := parent.Float32s()
	rd, _ := row.Float32s()
	rd[1] = 7
	if pd[4] != 7 {
		t.Errorf("parent %v after writing the view's element 1", pd)
	}
	if _, err := parent.HostView(4, []int64{1, 3}); err == nil {
		t.Error("a view past the end was made")
	}
	parent.Close()
	if rd, err = row.Float32s(); err != nil || rd[1] != 7 {
		t.Errorf("view after the parent closed: %v, %v", rd, err)
	}
}

// TestRunConfigEntryErrors: an empty key and closed run options are refused
// without reaching ORT.
func TestRunConfigEntryErrors(t *testing.T) {
	a := openAPI(t)
	ro, err := a.NewRunOptions()
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.AddConfigEntry("", "1"); err == nil {
		t.Error("empty run config key accepted")
	}
	ro.Close()
	if err := ro.AddConfigEntry("gpu_graph_id", "1"); !errors.Is(err, ErrClosed) {
		t.Errorf("closed run options: %v", err)
	}
}

// TestEnvRetain: a retained reference is the same environment and keeps it
// usable after the reference it came from is closed; a closed Env retains
// nothing.
func TestEnvRetain(t *testing.T) {
	a := openAPI(t)
	e, err := a.NewEnv(LogWarning, "retain")
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Retain()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.p != e.p {
		t.Errorf("Retain returned another environment (%p, %p)", r.p, e.p)
	}
	e.Close()
	if _, err := e.Retain(); !errors.Is(err, ErrClosed) {
		t.Errorf("Retain on a closed env: %v, want ErrClosed", err)
	}
	s, err := r.NewSession(writeTestModel(t), nil)
	if err != nil {
		t.Fatalf("session on the retained reference: %v", err)
	}
	s.Close()
}
