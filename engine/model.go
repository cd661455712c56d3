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
	"os"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort"
	"github.com/strata-llm/strata/models/onnx"
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
func Load(dir string, opts Options) (*Model, error) {
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
	m := &Model{Manifest: man, dir: dir, opts: opts}
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
	// ORT follows external-data locations inside the graphs; make sure
	// none leaves the package before ORT opens anything.
	for _, p := range append([]string{embedPath, headPath}, layerPaths...) {
		if err := onnx.CheckExternalData(p); err != nil {
			return nil, fmt.Errorf("model package %s: %w", dir, err)
		}
	}
	if err := checkLayerShapes(layerPaths[0], man); err != nil {
		return nil, fmt.Errorf("model package %s: %w", dir, err)
	}
	if err := checkHeadShape(headPath, man); err != nil {
		return nil, fmt.Errorf("model package %s: %w", dir, err)
	}
	if err := m.openSessions(embedPath, layerPaths, headPath); err != nil {
		m.release()
		return nil, err
	}
	slog.Debug("loaded model package", "dir", dir, "layers", man.NumLayers, "dtype", man.DType, "device", opts.Device, "schedule", m.schedule.String())
	return m, nil
}

// openSessions opens one session per graph: through onnxruntime_go for the
// host path, through engine/ortdev for the device-resident one.
func (m *Model) openSessions(embedPath string, layerPaths []string, headPath string) error {
	opts := m.opts
	if opts.Device != "cpu" || opts.DeviceResident {
		lib, err := ort.Initialized(opts.ORTLib)
		if err != nil {
			return err
		}
		m.dev, err = openDevice(lib.Path, opts, m.Manifest, embedPath, layerPaths, headPath)
		return err
	}
	so := ort.Options{Device: opts.Device, Threads: opts.Threads}
	var err error
	if m.embed, err = ort.NewSession(embedPath, embedInputs, embedOutputs, so); err != nil {
		return err
	}
	for _, p := range layerPaths {
		s, err := ort.NewSession(p, layerInputs, layerOutputs, so)
		if err != nil {
			return err
		}
		m.layers = append(m.layers, s)
	}
	m.head, err = ort.NewSession(headPath, headInputs, headOutputs, so)
	return err
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
// schedule s: one pair per kept layer, plus the scratch pair that skipped
// layers share during prefill.
func (m *Model) KVBytes(batch int, s Schedule) int64 {
	man := m.Manifest
	pair := 2 * 4 * int64(man.NumKVHeads) * int64(man.MaxSeqLen) * int64(man.HeadDim)
	n := int64(batch) * pair * int64(len(s.Layers))
	if len(s.Layers) < man.NumLayers {
		// The host path prefills one row at a time; the device path
		// prefills the whole batch, so its scratch pair holds every row.
		scratchRows := int64(1)
		if m.dev != nil {
			scratchRows = int64(batch)
		}
		n += scratchRows * pair
	}
	return n
}

// checkLayerShapes compares a layer graph's declared inputs with the
// manifest, so that a manifest that lies about sizes is caught before the
// KV buffers it describes are allocated.
func checkLayerShapes(path string, man *manifest.Manifest) error {
	inputs, _, err := ortgo.GetInputOutputInfo(path)
	if err != nil {
		return fmt.Errorf("read %s: %s", path, strings.Join(strings.Fields(err.Error()), " "))
	}
	want := map[string][]int64{
		inHidden:    {-1, -1, int64(man.HiddenSize)},
		inPastKey:   {-1, int64(man.NumKVHeads), -1, int64(man.HeadDim)},
		inPastValue: {-1, int64(man.NumKVHeads), -1, int64(man.HeadDim)},
	}
	found := 0
	for _, in := range inputs {
		w, ok := want[in.Name]
		if !ok {
			continue
		}
		found++
		dims := in.Dimensions
		if len(dims) != len(w) {
			return fmt.Errorf("%s input %s has %d dimensions, the manifest implies %d", path, in.Name, len(dims), len(w))
		}
		for i := range w {
			if w[i] >= 0 && dims[i] >= 0 && dims[i] != w[i] {
				return fmt.Errorf("%s input %s has shape %v, the manifest says dimension %d is %d", path, in.Name, dims, i, w[i])
			}
		}
	}
	if found != len(want) {
		return fmt.Errorf("%s lacks the inputs of a strata layer graph (hidden, past_key, past_value)", path)
	}
	return nil
}

// checkHeadShape compares the head graph's logits with the manifest's vocabulary.
func checkHeadShape(path string, man *manifest.Manifest) error {
	_, outputs, err := ortgo.GetInputOutputInfo(path)
	if err != nil {
		return fmt.Errorf("read %s: %s", path, strings.Join(strings.Fields(err.Error()), " "))
	}
	for _, out := range outputs {
		if out.Name != outLogits {
			continue
		}
		d := out.Dimensions
		if len(d) != 3 || (d[2] >= 0 && d[2] != int64(man.VocabSize)) {
			return fmt.Errorf("%s output logits has shape %v, the manifest says vocab_size %d", path, d, man.VocabSize)
		}
		return nil
	}
	return fmt.Errorf("%s has no logits output", path)
}

// availableMemory returns MemAvailable from /proc/meminfo, or 0 if unknown.
func availableMemory() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb * 1024
		}
	}
	return 0
}

// checkKVMemory refuses a batch whose KV cache would not fit in memory.
func (m *Model) checkKVMemory(batch int, s Schedule) error {
	need := m.KVBytes(batch, s)
	avail := availableMemory()
	if need <= 0 || (avail > 0 && need > avail*9/10) {
		return fmt.Errorf("the KV cache for batch %d at max_seq_len %d needs %.1f GiB but only %.1f GiB of memory is available; lower the batch size or export with a smaller --max-seq-len",
			batch, m.Manifest.MaxSeqLen, float64(need)/(1<<30), float64(avail)/(1<<30))
	}
	return nil
}
