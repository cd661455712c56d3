// Package engine runs strata model packages (DESIGN.md §3) with Unified
// Layer Skipping: the prompt runs through every layer, and each generated
// token runs only through the layers of a fixed schedule chosen from a
// speedup ratio (DESIGN.md §4). A Model is safe for concurrent use; each
// Generate call owns its KV buffers, so calls proceed independently.
package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort"
	"github.com/strata-llm/strata/models/manifest"
)

// Options configure how a package is loaded.
type Options struct {
	// Device is the execution provider: "cpu" (default), "cuda" or "webgpu".
	Device string
	// Threads is ORT's intra-op thread count per session (0: ORT's default).
	Threads int
	// ORTLib is an explicit ONNX Runtime library path ("" resolves it).
	ORTLib string
	// Schedule is the default schedule spec ("uls", "uls:2", "top", "layers:0,5,…");
	// empty takes the package's uls.default_schedule, else full depth.
	Schedule string
	// Speedup is the default ratio; 0 keeps the one in Schedule.
	Speedup float64
	// MaxBatch bounds how many sequences decode together in GenerateBatch (default 8).
	MaxBatch int
	// DeviceResident runs the device-resident path (device.go: tensors
	// allocated by ORT for the device, hidden states and KV never leave it)
	// even for "cpu"; any other device implies it.
	DeviceResident bool
}

// Model is a loaded package: one ORT session per graph, shared by all calls.
type Model struct {
	// Manifest describes the package.
	Manifest *manifest.Manifest
	// Tokenizer is the package's tokenizer, nil when it has none.
	Tokenizer Tokenizer

	dir      string
	opts     Options
	schedule Schedule

	embed, head *ortgo.DynamicAdvancedSession
	layers      []*ortgo.DynamicAdvancedSession
	dev         *deviceModel // the device-resident path, when in use

	mu     sync.RWMutex // held for reading by every run, for writing by Close
	closed bool
}

// Load opens the package in dir.
func Load(dir string, opts Options) (m *Model, err error) {
	if opts.Device == "" {
		opts.Device = "cpu"
	}
	if err := ort.CheckDevice(opts.Device); err != nil {
		return nil, err
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 8
	}
	man, err := manifest.Load(dir)
	if err != nil {
		return nil, err
	}
	m = &Model{Manifest: man, dir: dir, opts: opts}
	spec := opts.Schedule
	if spec == "" {
		spec = man.ULS.DefaultSchedule
	}
	if m.schedule, err = ParseSchedule(spec, opts.Speedup, man.NumLayers); err != nil {
		return nil, err
	}
	// Resolve every path before ORT opens anything.
	resolve := func(p string) (string, error) { return manifest.Resolve(dir, p) }
	embedPath, err := resolve(man.Files.Embed)
	if err != nil {
		return nil, err
	}
	headPath, err := resolve(man.Files.Head)
	if err != nil {
		return nil, err
	}
	layerPaths := make([]string, man.NumLayers)
	for i, p := range man.Files.Layers {
		if layerPaths[i], err = resolve(p); err != nil {
			return nil, err
		}
	}
	if man.Files.Tokenizer != "" {
		tokPath, err := resolve(man.Files.Tokenizer)
		if err != nil {
			return nil, err
		}
		if m.Tokenizer, err = loadTokenizer(tokPath); err != nil {
			return nil, fmt.Errorf("model package %s: %w", dir, err)
		}
	}

	if err := ort.Init(opts.ORTLib); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.release()
		}
	}()
	if opts.Device != "cpu" || opts.DeviceResident {
		lib, err := ort.Initialized(opts.ORTLib)
		if err != nil {
			return nil, err
		}
		if m.dev, err = openDevice(lib.Path, opts, man, embedPath, layerPaths, headPath); err != nil {
			return nil, err
		}
		return m, nil
	}
	so := ort.Options{Device: opts.Device, Threads: opts.Threads}
	if m.embed, err = ort.NewSession(embedPath, embedInputs, embedOutputs, so); err != nil {
		return nil, err
	}
	for _, p := range layerPaths {
		s, err := ort.NewSession(p, layerInputs, layerOutputs, so)
		if err != nil {
			return nil, err
		}
		m.layers = append(m.layers, s)
	}
	if m.head, err = ort.NewSession(headPath, headInputs, headOutputs, so); err != nil {
		return nil, err
	}
	slog.Debug("loaded model package", "dir", dir, "layers", man.NumLayers, "dtype", man.DType, "device", opts.Device, "schedule", m.schedule.String())
	return m, nil
}

// ErrClosed is returned by calls on a closed Model.
var ErrClosed = errors.New("engine: model is closed")

// Close waits for running calls to finish and releases every ORT session.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.release()
	return nil
}

func (m *Model) release() {
	for _, s := range append([]*ortgo.DynamicAdvancedSession{m.embed, m.head}, m.layers...) {
		if s != nil {
			s.Destroy()
		}
	}
	m.embed, m.head, m.layers = nil, nil, nil
	if m.dev != nil {
		m.dev.close()
		m.dev = nil
	}
}

// Schedule returns the model's default decode schedule.
func (m *Model) Schedule() Schedule { return m.schedule }

// ResolveSchedule returns the schedule for a spec and speedup, falling back
// to the model's default when both are empty.
func (m *Model) ResolveSchedule(spec string, speedup float64) (Schedule, error) {
	if spec == "" && speedup == 0 {
		return m.schedule, nil
	}
	if spec == "" {
		spec = m.schedule.Name
		if spec == "layers" || spec == "full" {
			spec = "uls"
		}
	}
	return ParseSchedule(spec, speedup, m.Manifest.NumLayers)
}

// Dir returns the package directory.
func (m *Model) Dir() string { return m.dir }

// KVBytes returns the KV cache memory a batch of the given size needs with
// schedule s: one pair per kept layer plus one scratch row for prefill of
// skipped layers.
func (m *Model) KVBytes(batch int, s Schedule) int64 {
	man := m.Manifest
	pair := int64(2 * 4 * man.NumKVHeads * man.MaxSeqLen * man.HeadDim)
	n := int64(batch) * pair * int64(len(s.Layers))
	if len(s.Layers) < man.NumLayers {
		n += pair
	}
	return n
}
