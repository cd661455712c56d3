package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
)

// TestCloseOrder checks the order in which a Model releases its ORT objects
// (docs/design.md, ONNX Runtime): the allocator, then the sessions from the
// last opened to the first, then the weights they shared, the memory info
// and the environment — on host memory and on the device-memory code path —
// and that a Model closes cleanly after generating, with a Forward still
// open, and twice.
func TestCloseOrder(t *testing.T) {
	dir, _, _ := testPackage(t)
	for _, resident := range []bool{false, true} {
		m, err := Load(dir, Options{DeviceResident: resident, NoTokenizer: true, Fuse: FuseOn})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range m.g.closeOrder() {
			got = append(got, c.name)
		}
		want := []string{"allocator", "session " + manifest.HeadFile}
		for i := len(m.Manifest.Files.Layers) - 1; i >= 0; i-- {
			want = append(want, "session "+m.Manifest.Files.Layers[i])
		}
		want = append(want, "session "+manifest.EmbedFile, "fused session options", "shared weights", "memory info", "environment")
		if !slices.Equal(got, want) {
			t.Errorf("resident=%v: close order\n%s\nwant\n%s", resident, strings.Join(got, ", "), strings.Join(want, ", "))
		}
		if _, err := m.Generate(t.Context(), Request{PromptIDs: []int{1, 5, 9}, MaxTokens: 3}); err != nil {
			t.Fatal(err)
		}
		// The first decode step opened the fused decode graph: the last
		// session opened, the first closed.
		if got := m.g.closeOrder()[1].name; got != "session fused decode graph (layers 0,1,2,3,4,5)" {
			t.Errorf("resident=%v: after decoding, the first session closed is %q", resident, got)
		}
		f, err := m.NewForward()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Step([]int{1, 2}); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close() // after the model: its tensors and bindings go last, still without a crash
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeviceHint checks that a device failure's hint names what failed,
// from ORT's own message.
func TestDeviceHint(t *testing.T) {
	for _, tc := range []struct{ dev, msg, want string }{
		{"cuda", "This session contains graph nodes that are assigned to the default CPU EP, but fallback to CPU EP has been explicitly disabled by the user.", "verify --placement --device cuda"},
		{"webgpu", "Could not find an implementation for GroupQueryAttention(1) node with name '/layers.0/attn'", "--compute fp16"},
		{"cuda", "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file", "strata runtime info"},
		{"webgpu", "Failed to get a WebGPU adapter: No supported adapters", "Vulkan driver"},
		{"cuda", "CUDA failure 100: no CUDA-capable device is detected", "nvidia-smi"},
		{"cuda", "Failed to allocate memory for requested buffer of size 1073741824", "out of memory"},
		{"cuda", "something new", ""},
		{"cpu", "Could not find an implementation for Foo", ""},
	} {
		got := deviceHint(tc.dev, tc.msg)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s %q: hint %q, want %q", tc.dev, tc.msg, got, tc.want)
		}
	}
	if e := (&DeviceError{"cuda", "open layer_00.onnx", errors.New("fallback to CPU EP has been explicitly disabled")}).Error(); strings.Contains(e, "GPU build") || !strings.Contains(e, "--placement") {
		t.Errorf("message %q", e)
	}
}

// TestCloseOrderWebGPU: on WebGPU a Model keeps its sessions (ONNX
// Runtime's provider crashes when they are released) and releases the rest
// in the usual order.
func TestCloseOrderWebGPU(t *testing.T) {
	g := &graphs{dev: "webgpu", opened: []namedSession{{"embed.onnx", nil}, {"layer_00.onnx", nil}, {"head.onnx", nil}}}
	var got []string
	for _, c := range g.closeOrder() {
		got = append(got, c.name)
	}
	want := []string{"keep session head.onnx", "keep session layer_00.onnx", "keep session embed.onnx"}
	if !slices.Equal(got, want) {
		t.Errorf("close order %v, want %v", got, want)
	}
	before := len(keptSessions.s)
	for _, c := range g.closeOrder() {
		c.close()
	}
	if n := len(keptSessions.s) - before; n != 3 {
		t.Errorf("%d sessions kept, want 3", n)
	}
}
