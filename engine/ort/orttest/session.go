package orttest

// Sessions on host tensors through github.com/yalue/onnxruntime_go, for the
// graph tests of models/...; the engine never uses them: it runs packages
// through engine/ortdev alone (docs/design.md, "Dependencies").

import (
	"fmt"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort"
	"github.com/strata-llm/strata/models/onnx"
)

var (
	initMu  sync.Mutex
	initLib *ort.Library
)

// LoadLibrary resolves the ONNX Runtime library (see the package doc; libPath is
// an explicit library path or "") and initialises onnxruntime_go's environment.
// It is idempotent and safe for concurrent use: later calls return the
// first successful result (a different libPath then is an error).
func LoadLibrary(libPath string) error {
	_, err := Initialized(libPath)
	return err
}

// Initialized is Init that also returns the library in use.
func Initialized(libPath string) (ort.Library, error) {
	initMu.Lock()
	defer initMu.Unlock()
	if initLib != nil {
		if libPath != "" && libPath != initLib.Path {
			return *initLib, fmt.Errorf("ONNX Runtime is already initialised from %s; cannot switch to %s in the same process", initLib.Path, libPath)
		}
		return *initLib, nil
	}
	lib, err := ort.Resolve(libPath, ort.Progress)
	if err != nil {
		return ort.Library{}, err
	}
	ortgo.SetSharedLibraryPath(lib.Path)
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
		return ort.Library{}, fmt.Errorf("load ONNX Runtime from %s (%s): %s", lib.Path, lib.Source, oneLine(err))
	}
	initLib = &lib
	return lib, nil
}

// LoadedVersion returns the version string reported by the initialised library.
func LoadedVersion() string { return ortgo.GetVersion() }

// Options configures a session.
type Options struct {
	// Device is the execution provider: "cpu" (default), "cuda" or "webgpu".
	Device string
	// Threads is the intra-op thread count; 0 lets ORT choose.
	Threads int
	// NoOptimize disables graph optimisations (for debugging).
	NoOptimize bool
	// Profile, when not empty, enables ORT profiling with this file prefix.
	Profile string
}

// CheckDevice returns an error for a device name not in ort.Devices.
func CheckDevice(device string) error { return ort.CheckDevice(device) }

// NewSessionOptions builds onnxruntime_go session options for opts. The
// caller owns the result and must Destroy it.
func NewSessionOptions(opts Options) (*ortgo.SessionOptions, error) {
	device := opts.Device
	if device == "" {
		device = "cpu"
	}
	if err := CheckDevice(device); err != nil {
		return nil, err
	}
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("create session options: %w", err)
	}
	fail := func(err error) (*ortgo.SessionOptions, error) {
		so.Destroy()
		return nil, err
	}
	if opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
			return fail(fmt.Errorf("set threads: %w", err))
		}
	}
	level := ortgo.GraphOptimizationLevel(ortgo.GraphOptimizationLevelEnableAll)
	if opts.NoOptimize {
		level = ortgo.GraphOptimizationLevel(ortgo.GraphOptimizationLevelDisableAll)
	}
	if err := so.SetGraphOptimizationLevel(level); err != nil {
		return fail(fmt.Errorf("set graph optimisation level: %w", err))
	}
	if opts.Profile != "" {
		if err := so.EnableProfiling(opts.Profile); err != nil {
			return fail(fmt.Errorf("enable profiling: %w", err))
		}
	}
	// strata chains one session per layer: a session's intra-op threads
	// spinning after its run would compete with the next session's, which
	// made 2-thread decoding several times slower than 1 thread here.
	if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return fail(fmt.Errorf("disable thread spinning: %w", err))
	}
	switch device {
	case "cuda":
		cuda, err := ortgo.NewCUDAProviderOptions()
		if err != nil {
			return fail(fmt.Errorf("the CUDA execution provider is not available in this ONNX Runtime library (%s); install ONNX Runtime's GPU build", oneLine(err)))
		}
		defer cuda.Destroy()
		if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
			return fail(fmt.Errorf("the CUDA execution provider could not be enabled (%s); install ONNX Runtime's GPU build", oneLine(err)))
		}
	case "webgpu":
		if err := so.AppendExecutionProvider("WebGPU", nil); err != nil {
			return fail(fmt.Errorf("the WebGPU execution provider could not be enabled: %s", oneLine(err)))
		}
		// Every node must really run on the GPU.
		if err := so.AddSessionConfigEntry("session.disable_cpu_ep_fallback", "1"); err != nil {
			return fail(fmt.Errorf("disable CPU fallback: %w", err))
		}
	}
	return so, nil
}

// NewSession opens an ONNX graph with the given input and output names.
func NewSession(path string, inputs, outputs []string, opts Options) (*ortgo.DynamicAdvancedSession, error) {
	if !ortgo.IsInitialized() {
		return nil, fmt.Errorf("open %s: ONNX Runtime is not initialised (call ort.Init first)", path)
	}
	// ORT follows the external-data locations written inside a graph; a
	// downloaded graph must not make it read outside its own directory.
	if err := onnx.CheckExternalData(path); err != nil {
		return nil, err
	}
	so, err := NewSessionOptions(opts)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := ortgo.NewDynamicAdvancedSession(path, inputs, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("open %s: %s", path, oneLine(err))
	}
	return s, nil
}

// oneLine flattens an ORT error (which may span lines) to one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
