package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/models/manifest"
)

// graphs is a package's graphs opened on one execution provider: a session
// per graph and an allocator in the device's memory. They are shared by
// every runner of a Model; ORT sessions are safe for concurrent runs, and
// each runner owns its bindings and tensors.
type graphs struct {
	dev    ortdev.Device
	man    *manifest.Manifest
	api    *ortdev.API
	env    *ortdev.Env
	embed  *ortdev.Session
	layers []*ortdev.Session
	head   *ortdev.Session
	// full is the monolithic graph (model_full.onnx), opened only when
	// Options.Monolithic asks for it; it replaces embed, layers and head.
	full  *ortdev.Session
	mem   *ortdev.MemoryInfo
	alloc *ortdev.Allocator
	// opened lists every session in the order it was opened (close
	// releases them in reverse).
	opened []namedSession
	// resident keeps tensors in memory allocated by ORT for the device and
	// copies ids in and logits out even on the CPU, exactly as on a GPU.
	resident bool
	// fusion holds the fused decode graphs (fused.go); nil when fusion
	// is off or the monolithic graph runs.
	fusion *fusion
	// weights are the package's weights, held once for every session
	// (weights.go); nil off the CPU.
	weights *sharedWeights
}

// namedSession is a session and its graph file's name.
type namedSession struct {
	name string
	s    *ortdev.Session
}

// graphPaths are the resolved files of a package's graphs.
type graphPaths struct {
	embed, head, full string
	layers            []string
}

// DeviceError is a failure of the device itself: no adapter, a provider
// missing from the library, memory exhausted. Its message is one line
// naming the device; the ORT error stays reachable through errors.As.
type DeviceError struct {
	Device string
	What   string
	Err    error
}

func (e *DeviceError) Error() string {
	msg := fmt.Sprintf("device %s: %s: %s", e.Device, e.What, oneLine(e.Err))
	if hint := deviceHint(e.Device, e.Err.Error()); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// deviceHint says, from ORT's message, what failed on dev and what to do:
// a node without a kernel on the device, a missing library, no GPU.
func deviceHint(dev, ortMsg string) string {
	m := strings.ToLower(ortMsg)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(m, w) {
				return true
			}
		}
		return false
	}
	switch {
	case dev == string(ortdev.DeviceCPU):
		return ""
	case has("fallback to cpu ep has been explicitly disabled", "kernel not found", "could not find an implementation"):
		return "a node of this graph has no kernel on " + dev + ": `strata verify --placement --device " + dev +
			" --model PKG` names it; GPU packages are exported with --compute fp16 (docs/gpu.md)"
	case has("cannot open shared object", "error while loading shared libraries", "failed to load library", "libcu", "libcudnn"):
		return "a library the " + dev + " provider links is missing: `strata runtime info` lists them (docs/gpu.md)"
	case has("no supported adapters", "failed to get a webgpu adapter"):
		return "no GPU adapter: WebGPU needs a GPU with a Vulkan driver on Linux"
	case has("no cuda-capable device", "cudaerrornodevice", "cuda driver version is insufficient", "found no nvidia driver"):
		return "no usable NVIDIA GPU: check the driver with nvidia-smi"
	case has("out of memory", "failed to allocate"):
		return "the device is out of memory: lower --batch-size or export with a smaller --max-seq-len"
	}
	return ""
}

func (e *DeviceError) Unwrap() error { return e.Err }

// oneLine flattens an ORT error, which may span lines, to one line.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// sessionOptions configures the sessions of one package.
type sessionOptions struct {
	device  ortdev.Device
	threads int
	// spin lets intra-op threads spin after a run (ORT's default); off
	// by default because one package runs many sessions one after another.
	spin bool
	// resident: see graphs.resident.
	resident bool
	// shared runs every session on one intra-op thread pool of the
	// environment, whose workers spin between runs.
	shared bool
	// profileDir, when set, makes every session write an ORT trace there.
	profileDir string
	// cudaProvider is the CUDA execution provider's library next to the
	// ORT library, registered with the environment for the cuda device.
	cudaProvider string
	// fuse composes each decode schedule's layers, with the embedding and
	// the head, into one session (docs/design.md, "The runner").
	fuse bool
	// cudaGraph captures the fused decode graphs as CUDA graphs and replays
	// them (cuda only; docs/design.md, "CUDA graphs").
	cudaGraph bool
}

// openGraphs opens the package's graphs through the ORT library api.
func openGraphs(api *ortdev.API, so sessionOptions, man *manifest.Manifest, paths graphPaths) (g *graphs, err error) {
	dev := so.device
	if paths.full == "" && len(paths.layers) != man.NumLayers {
		return nil, fmt.Errorf("%d layer graphs for %d layers", len(paths.layers), man.NumLayers)
	}
	gs := &graphs{dev: dev, man: man, api: api, resident: so.resident}
	defer func() {
		if err != nil {
			gs.close()
		}
	}()
	so.shared = processThreadPool(so.shared)
	if so.shared {
		gs.env, err = gs.api.NewEnvSharedThreads(ortLogLevel(), "strata", max(so.threads, 0), true)
	} else {
		gs.env, err = gs.api.NewEnv(ortLogLevel(), "strata")
	}
	if err != nil {
		return nil, err
	}
	// On the CPU every session takes its intermediate tensors from one
	// arena of the environment: an arena per session would each grow to
	// the largest step (a long batched prefill) and keep that memory.
	if dev == ortdev.DeviceCPU {
		if err := gs.env.ShareCPUAllocator(); err != nil {
			return nil, err
		}
	}
	layerOpts := so
	layerOpts.cudaGraph = false // fused decode graphs only (newFusion)
	opts, err := gs.sessionOpts(layerOpts)
	if err != nil {
		return nil, err
	}
	defer opts.Close()
	if dev == ortdev.DeviceCPU {
		if gs.weights, err = newSharedWeights(api); err != nil {
			return nil, err
		}
	}
	open := func(path string, inputs, outputs []string) (*ortdev.Session, error) {
		if so.profileDir != "" {
			if err := opts.EnableProfiling(filepath.Join(so.profileDir, strings.TrimSuffix(filepath.Base(path), ".onnx"))); err != nil {
				return nil, err
			}
		}
		s, err := gs.openShared(path, opts)
		if err != nil {
			return nil, &DeviceError{string(dev), "open " + filepath.Base(path), err}
		}
		if err := checkNames(s, inputs, outputs); err != nil {
			s.Close()
			return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		gs.opened = append(gs.opened, namedSession{filepath.Base(path), s})
		return s, nil
	}
	var first *ortdev.Session
	if paths.full != "" {
		in, out := fullGraphNames(man.NumLayers)
		if gs.full, err = open(paths.full, in, out); err != nil {
			return nil, err
		}
		first = gs.full
	} else {
		if gs.embed, err = open(paths.embed, manifest.EmbedInputs, manifest.EmbedOutputs); err != nil {
			return nil, err
		}
		for _, p := range paths.layers {
			s, err := open(p, manifest.LayerInputs, manifest.LayerOutputs)
			if err != nil {
				return nil, err
			}
			gs.layers = append(gs.layers, s)
		}
		if gs.head, err = open(paths.head, manifest.HeadInputs, manifest.HeadOutputs); err != nil {
			return nil, err
		}
		first = gs.embed
		if so.fuse {
			if gs.fusion, err = newFusion(gs, so, paths); err != nil {
				return nil, err
			}
		}
	}
	if gs.mem, err = gs.api.NewMemoryInfo(dev, 0); err != nil {
		return nil, &DeviceError{string(dev), "describe device memory", err}
	}
	// Every session runs on the same device and provider, so tensors from
	// one session's allocator serve them all.
	if gs.alloc, err = first.NewAllocator(gs.mem); err != nil {
		return nil, &DeviceError{string(dev), "create an allocator", err}
	}
	return gs, nil
}

// sessionOpts makes the options every session of the package opens with.
func (gs *graphs) sessionOpts(so sessionOptions) (_ *ortdev.SessionOptions, err error) {
	dev := so.device
	opts, err := gs.api.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			opts.Close()
		}
	}()
	if so.shared {
		if err := opts.DisablePerSessionThreads(); err != nil {
			return nil, err
		}
	} else if err := opts.SetIntraOpNumThreads(max(so.threads, 0)); err != nil {
		return nil, err
	}
	if err := opts.SetGraphOptimizationLevel(ortdev.OptAll); err != nil {
		return nil, err
	}
	// A step runs one session after another: threads of one session spinning
	// after its run compete with the next session's.
	if !so.spin && !so.shared {
		if err := opts.AddConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, err
		}
	}
	// On the CPU sessions share the environment's arena (openGraphs).
	if dev == ortdev.DeviceCPU {
		if err := opts.AddConfigEntry("session.use_env_allocators", "1"); err != nil {
			return nil, err
		}
	}
	// On a GPU every node must run there, or ORT would silently move
	// tensors back and forth; with only the CPU provider ORT refuses a
	// session when this is set.
	if dev != ortdev.DeviceCPU {
		if err := opts.AddConfigEntry("session.disable_cpu_ep_fallback", "1"); err != nil {
			return nil, err
		}
		if err := appendProvider(gs.env, opts, so); err != nil {
			return nil, &DeviceError{string(dev), "start the execution provider", err}
		}
	}
	return opts, nil
}

// ortLogLevel is the ORT logging level that passes on what slog's default
// logger shows: ORT's verbose messages (which provider each node was placed
// on, the copies inserted between devices) at debug, its warnings at info,
// else errors only. ORT's environment is a process singleton: the first
// Load's level holds.
func ortLogLevel() ortdev.LogLevel {
	ctx := context.Background()
	switch {
	case slog.Default().Enabled(ctx, slog.LevelDebug):
		return ortdev.LogVerbose
	case slog.Default().Enabled(ctx, slog.LevelInfo):
		return ortdev.LogWarning
	}
	return ortdev.LogError
}

// appendProvider adds the device's execution provider. CUDA's build loads
// the provider as a plugin library registered with the environment (which
// also gives CopyTensors the provider's data transfer); a library with the
// provider built in takes it directly.
func appendProvider(env *ortdev.Env, opts *ortdev.SessionOptions, so sessionOptions) error {
	if so.device == ortdev.DeviceCUDA && so.cudaProvider != "" {
		if err := providers.register(env, "CUDA", so.cudaProvider); err != nil {
			return err
		}
		options := map[string]string{"device_id": "0"}
		if so.cudaGraph {
			options["enable_cuda_graph"] = "1"
		}
		return opts.AppendProvider(env, ortdev.CUDAProviderName, options)
	}
	return opts.AppendDevice(so.device, nil)
}

// providerRegistry records the execution-provider libraries registered
// with ORT's environment in this process. The environment is a process
// singleton that accepts a library once, and every Load after the first
// joins it: the first registration keeps a reference to the environment
// for the rest of the process, so the registration stays valid after every
// Model that used it is closed, and later Loads register nothing.
type providerRegistry struct {
	mu   sync.Mutex
	libs map[string]string      // provider name → library path
	keep []interface{ Close() } // the references that keep the environment
}

var providers providerRegistry

// register registers the library at path under name with env's
// environment unless this process has done so already; the same name from
// another path is refused.
func (p *providerRegistry) register(env *ortdev.Env, name, path string) error {
	return p.once(name, path, func() (interface{ Close() }, error) {
		keep, err := env.Retain()
		if err != nil {
			return nil, err
		}
		if err := env.RegisterProviderLibrary(name, path); err != nil {
			keep.Close()
			return nil, err
		}
		return keep, nil
	})
}

// once runs register for the first registration of name and records the
// reference it returns.
func (p *providerRegistry) once(name, path string, register func() (interface{ Close() }, error)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if have, ok := p.libs[name]; ok {
		if have != path {
			return fmt.Errorf("the %s provider is registered from %s in this process; it cannot be registered again from %s", name, have, path)
		}
		return nil
	}
	keep, err := register()
	if err != nil {
		return err
	}
	if p.libs == nil {
		p.libs = map[string]string{}
	}
	p.libs[name] = path
	p.keep = append(p.keep, keep)
	return nil
}

// fullGraphNames are the inputs and outputs of model_full.onnx.
func fullGraphNames(layers int) (inputs, outputs []string) {
	return wholeGraphNames(allLayers(layers))
}

// wholeGraphNames are the inputs and outputs of a graph that embeds, runs
// layers and the head at once: model_full.onnx (every layer) or a fused
// decode graph (a schedule's layers).
func wholeGraphNames(layers []int) (inputs, outputs []string) {
	inputs = []string{manifest.InputIDs}
	outputs = []string{manifest.Logits}
	for _, i := range layers {
		inputs = append(inputs, manifest.FullPastKey(i), manifest.FullPastValue(i))
		outputs = append(outputs, manifest.FullPresentKey(i), manifest.FullPresentValue(i))
	}
	return append(inputs, manifest.SeqLensK, manifest.TotalSeqLen), outputs
}

// checkNames reports a graph whose inputs or outputs are not the ones the
// runner binds.
func checkNames(s *ortdev.Session, inputs, outputs []string) error {
	for _, want := range inputs {
		if !slices.Contains(s.InputNames(), want) {
			return fmt.Errorf("graph has no input %q (inputs %v)", want, s.InputNames())
		}
	}
	for _, want := range outputs {
		if !slices.Contains(s.OutputNames(), want) {
			return fmt.Errorf("graph has no output %q (outputs %v)", want, s.OutputNames())
		}
	}
	return nil
}

// endProfiling finishes every session's trace and returns their paths.
func (g *graphs) endProfiling() ([]string, error) {
	var paths []string
	for _, s := range append([]*ortdev.Session{g.embed, g.head, g.full}, g.layers...) {
		if s == nil {
			continue
		}
		p, err := s.EndProfiling()
		if err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// act is the element type of hidden states and the KV cache: the
// package's compute type (docs/design.md, The package format).
func (g *graphs) act() ortdev.ElementType { return activationType(g.man) }

// activationType is man's hidden-state and KV element type
// (manifest.ActivationType; ORT's element types number ONNX's data types).
func activationType(man *manifest.Manifest) ortdev.ElementType {
	return ortdev.ElementType(man.ActivationType())
}

// onHost reports whether the device's memory is host memory, so tensors
// are bound directly and nothing is copied in or out.
func (g *graphs) onHost() bool { return g.dev == ortdev.DeviceCPU && !g.resident }

// tensor allocates a tensor where the graphs read it: host memory on the
// CPU (zeroed), device memory elsewhere (uninitialised).
func (g *graphs) tensor(shape []int64, t ortdev.ElementType) (*ortdev.Value, error) {
	if g.onHost() {
		return g.hostTensor(shape, t)
	}
	v, err := g.alloc.NewTensor(shape, t)
	if err != nil {
		return nil, &DeviceError{string(g.dev), fmt.Sprintf("allocate %s %v", t, shape), err}
	}
	return v, nil
}

// hostTensor allocates a zeroed tensor in host memory.
func (g *graphs) hostTensor(shape []int64, t ortdev.ElementType) (*ortdev.Value, error) {
	return g.api.NewHostTensor(shape, t)
}

// run runs one session through its binding; what names it in an error.
func (g *graphs) run(s *ortdev.Session, b *ortdev.IoBinding, what func() string) error {
	return g.runWith(s, b, nil, what)
}

// runWith runs one session through its binding with run options (nil:
// the defaults).
func (g *graphs) runWith(s *ortdev.Session, b *ortdev.IoBinding, ro *ortdev.RunOptions, what func() string) error {
	if err := s.RunWithBinding(b, ro); err != nil {
		return fmt.Errorf("%s on %s: %w", what(), g.dev, err)
	}
	return nil
}

// close releases the allocator, sessions and env. Tensors still open keep
// what they depend on alive until they are closed (ortdev's lifetimes).
func (g *graphs) close() {
	for _, c := range g.closeOrder() {
		c.close()
	}
}

// closer is one ORT object graphs.close releases.
type closer struct {
	name  string
	close func()
}

// closeOrder is the order in which graphs.close releases its ORT objects:
// the reverse of their creation. The allocator goes first (the runners'
// tensors, which free through it, are closed before), then the sessions
// from the last opened to the first, whose provider instance set up the
// device (a WebGPU device lives until its last session is released), then
// the weights the sessions shared (each session holds them until it is
// released), the memory info and the environment, which every session uses.
// ortdev defers each release until nothing depends on it (engine/ortdev,
// life.go); this order keeps those deferrals from being needed.
//
// WebGPU sessions are the exception: ONNX Runtime 1.30's WebGPU provider
// crashes the process when a second session of a package is released,
// whatever the order (seen on an NVIDIA GPU through Vulkan), so they are
// kept until the process exits (docs/gpu.md, "WebGPU and Close"). Their
// references keep the environment too.
func (g *graphs) closeOrder() []closer {
	var cs []closer
	if g.alloc != nil {
		cs = append(cs, closer{"allocator", g.alloc.Close})
	}
	for i := len(g.opened) - 1; i >= 0; i-- {
		ns := g.opened[i]
		if g.dev == ortdev.DeviceWebGPU {
			cs = append(cs, closer{"keep session " + ns.name, func() { keptSessions.add(ns.s) }})
			continue
		}
		cs = append(cs, closer{"session " + ns.name, ns.s.Close})
	}
	if g.fusion != nil {
		cs = append(cs, closer{"fused session options", g.fusion.opts.Close})
		if g.fusion.plain != nil {
			cs = append(cs, closer{"fused session options without capture", g.fusion.plain.Close})
		}
	}
	if g.weights != nil {
		cs = append(cs, closer{"shared weights", g.weights.close})
	}
	if g.mem != nil {
		cs = append(cs, closer{"memory info", g.mem.Close})
	}
	if g.env != nil {
		cs = append(cs, closer{"environment", g.env.Close})
	}
	return cs
}

// sessionKeeper holds the sessions closed Models leave to the process's
// exit (closeOrder), so that nothing releases them.
type sessionKeeper struct {
	mu sync.Mutex
	s  []*ortdev.Session
}

var keptSessions sessionKeeper

func (k *sessionKeeper) add(s *ortdev.Session) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.s = append(k.s, s)
}

var errNoLayers = errors.New("no layers to run")

// envThreads is the thread-pool setting of the first ORT environment this
// process created. ORT's environment is a process singleton that keeps the
// options it was first created with: sessions that rely on a shared pool
// fail in an environment made without one, so every later Load follows the
// first one's setting.
var envThreads struct {
	sync.Mutex
	set, shared bool
}

// processThreadPool records want as the process's thread-pool setting if
// none is recorded yet and returns the recorded one.
func processThreadPool(want bool) bool {
	envThreads.Lock()
	defer envThreads.Unlock()
	if !envThreads.set {
		envThreads.set, envThreads.shared = true, want
	} else if envThreads.shared != want {
		slog.Debug("ONNX Runtime environment keeps its thread pools", "shared", envThreads.shared)
	}
	return envThreads.shared
}
