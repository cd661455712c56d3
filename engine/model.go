// Package engine runs strata model packages (docs/design.md) with Unified
// Layer Skipping: the prompt runs through every layer, and each generated
// token runs only through the layers of a fixed schedule chosen from a
// speedup ratio (docs/design.md, "The schedule"). A Model is safe for concurrent use; each
// Generate call owns its KV buffers, so calls proceed independently.
package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/engine/ortlib"
	"github.com/strata-llm/strata/engine/placement"
	"github.com/strata-llm/strata/internal/cpus"
	"github.com/strata-llm/strata/internal/hostmem"
	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// Options configure how a package is loaded.
type Options struct {
	// Device is the execution provider: "cpu" (default), "cuda" or "webgpu".
	Device string
	// Threads is ORT's intra-op thread count (0: on the CPU, one per
	// physical core this process may use; on a GPU, ORT's default).
	Threads int
	// ORTLib is an explicit ONNX Runtime library path ("" resolves it).
	ORTLib string
	// Schedule is the default schedule spec ("uls", "uls:2", "top", "layers:0,5,…");
	// empty takes the package's uls.default_schedule, else full depth. A
	// bare rule name ("top") with Speedup 0 takes the ratio of the package's
	// fine-tuned default schedule; on a package without one, Load fails
	// with an error wrapping ErrNoRatio.
	Schedule string
	// Speedup is the default ratio; 0 keeps the one in Schedule.
	Speedup float64
	// MaxBatch bounds how many sequences decode together in GenerateBatch (default 8).
	MaxBatch int
	// StaticBatching makes GenerateBatch decode fixed batches (each runs
	// until its longest request ends) instead of refilling rows as they
	// free up; for comparison.
	StaticBatching bool
	// PrefillChunk bounds the prompt tokens per row in one part of a
	// prefill step (0: DefaultPrefillChunk).
	PrefillChunk int
	// DeviceResident makes the CPU behave like a GPU: tensors are allocated
	// by ORT for the device and token ids and logits are copied in and out,
	// so the code a GPU runs can be tested on any machine.
	DeviceResident bool
	// PerGraphThreads gives every session an intra-op thread pool of its
	// own that sleeps between runs, instead of the default: one pool of
	// the ORT environment shared by every session, whose workers spin
	// between runs (a step runs the sessions one after another, so one
	// spinning pool keeps its threads warm for the next graph).
	// ONNX Runtime's environment is created once per process, by the first
	// Load: later Loads get the pool setting it was created with.
	PerGraphThreads bool
	// ProfileDir, when set, makes every graph's session record an ONNX
	// Runtime trace of its node runs into this directory; EndProfiling
	// writes them.
	ProfileDir string
	// NoTokenizer skips loading the package's tokenizer: for callers that
	// give token ids only (verification, benchmarks).
	NoTokenizer bool
	// Monolithic runs the package's model_full.onnx (every layer in one
	// graph) instead of the per-layer graphs: full depth only, for
	// measuring what running layers as separate graphs costs.
	Monolithic bool
	// Fuse says when a decode step (one token per row through a schedule's
	// kept layers) runs as one fused graph of the embedding, those layers
	// and the head instead of the per-layer chain (docs/design.md, "The
	// runner"); prefill and verification always run layer by layer.
	Fuse FuseMode
	// NoCUDAGraph runs fused decode steps on the CUDA provider launch by
	// launch. By default each runner's fused decode step is recorded once
	// as a CUDA graph and replayed (docs/design.md, "CUDA graphs").
	NoCUDAGraph bool
}

// FuseMode says when decode steps run through a fused schedule graph.
type FuseMode int

const (
	// FuseAuto fuses on GPU devices only: there every session run costs a
	// launch, while on the CPU a fused graph measured 0.98–1.17× the
	// per-layer speed (docs/benchmarks.md).
	FuseAuto FuseMode = iota
	// FuseOn fuses on every device.
	FuseOn
	// FuseOff keeps every step on the per-layer chain.
	FuseOff
)

// fuses reports whether m decodes through fused graphs on dev.
func (f FuseMode) fuses(dev ortdev.Device) bool {
	return f == FuseOn || f == FuseAuto && dev != ortdev.DeviceCPU
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
	g        *graphs
	// pool keeps finished batches' runners where their fused decode steps
	// are captured as CUDA graphs (runnerpool.go); nil elsewhere.
	pool *runnerPool

	mu     sync.RWMutex // held for reading by every run, for writing by Close
	closed bool
}

// Load opens the package in dir.
func Load(dir string, opts Options) (*Model, error) {
	if opts.Device == "" {
		opts.Device = "cpu"
	}
	dev, err := ortdev.ParseDevice(opts.Device)
	if err != nil {
		return nil, err
	}
	if opts.Threads < 0 {
		return nil, fmt.Errorf("%d intra-op threads: want ≥ 0", opts.Threads)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 8
	}
	if opts.PrefillChunk <= 0 {
		opts.PrefillChunk = DefaultPrefillChunk
	}
	man, err := manifest.Load(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Manifest: man, dir: dir, opts: opts}
	if m.schedule, err = packageSchedule(man, opts.Schedule, opts.Speedup); err != nil {
		return nil, err
	}
	if opts.Monolithic && len(m.schedule.Layers) != man.NumLayers {
		return nil, errors.New("the monolithic graph runs at full depth only")
	}
	paths, err := resolveGraphs(dir, man, opts.Monolithic)
	if err != nil {
		return nil, badPackage{err}
	}
	if man.Files.Tokenizer != "" && !opts.NoTokenizer {
		tokPath, err := manifest.Resolve(dir, man.Files.Tokenizer)
		if err != nil {
			return nil, err
		}
		if m.Tokenizer, err = loadTokenizer(tokPath); err != nil {
			return nil, fmt.Errorf("model package %s: %w", dir, err)
		}
	}
	lib, err := ortlib.InitFor(opts.Device, opts.ORTLib)
	if err != nil {
		return nil, err
	}
	api, err := ortdev.Open(lib.Path)
	if err != nil {
		return nil, fmt.Errorf("load ONNX Runtime from %s (%s): %w", lib.Path, lib.Source, err)
	}
	if err := checkPlacement(dir, dev, api.Version()); err != nil {
		return nil, err
	}
	so := sessionOptions{device: dev, threads: defaultThreads(dev, opts.Threads), resident: opts.DeviceResident, shared: !opts.PerGraphThreads,
		profileDir: opts.ProfileDir, cudaProvider: lib.CUDAProvider(), fuse: opts.Fuse.fuses(dev)}
	so.cudaGraph = so.fuse && dev == ortdev.DeviceCUDA && !opts.NoCUDAGraph
	if m.g, err = openGraphs(api, so, man, paths); err != nil {
		return nil, fmt.Errorf("model package %s: %w", dir, err)
	}
	if m.g.fusion != nil && m.g.fusion.capture {
		m.pool = &runnerPool{}
	}
	slog.Debug("loaded model package", "dir", dir, "layers", man.NumLayers, "dtype", man.DType, "device", opts.Device, "schedule", m.schedule.String())
	return m, nil
}

// CheckPlacement returns an error naming the first node of the package in
// dir that has no kernel on device in the ONNX Runtime build strata pins
// for it, and the export that fixes it (docs/gpu.md, Placement check); nil
// on the CPU or when every node places. It reads the graphs only: neither
// ONNX Runtime nor a GPU is needed.
func CheckPlacement(dir, device string) error {
	if device == "" || device == string(ortdev.DeviceCPU) {
		return nil
	}
	man, err := manifest.Load(dir)
	if err != nil {
		return err
	}
	rep, err := placement.Check(dir, device)
	if err != nil {
		return fmt.Errorf("model package %s: placement check: %w", dir, err)
	}
	if rep.OK() {
		return nil
	}
	var fix string
	switch {
	case man.Compute() == manifest.ComputeFP16:
		fix = "run it on --device cpu"
	case man.DType == "fp32":
		fix = "export a GPU package: strata export --in CHECKPOINT --out DIR --dtype int4 --compute fp16 (or --dtype fp16)"
	default:
		fix = "export a GPU package: strata export --in CHECKPOINT --out DIR --dtype " + man.DType + " --compute fp16"
	}
	miss := rep.Misses[0]
	return &PlacementError{Device: device, ORTVersion: rep.ORTVersion, Misses: len(rep.Misses),
		msg: fmt.Sprintf("model package %s cannot run on %s: %s node %s (%s:%s, inputs %s) has no kernel in ONNX Runtime %s (%s; %d such nodes); %s",
			dir, device, miss.Graph, miss.Node, miss.Domain, miss.Op, miss.InputTypes(), rep.ORTVersion, miss.Reason, len(rep.Misses), fix)}
}

// PlacementError is a package with nodes that have no kernel on a device.
type PlacementError struct {
	Device     string
	ORTVersion string // the ONNX Runtime build whose kernels were checked
	Misses     int    // how many nodes have none
	msg        string
}

func (e *PlacementError) Error() string { return e.msg }

// checkPlacement runs CheckPlacement before any session is opened: ORT would
// refuse the session only after loading every graph, with a message naming
// no node. A library of another version than the one checked (--ort-lib,
// $STRATA_ORT_LIB) may register other kernels: there a miss is logged and
// ORT decides.
func checkPlacement(dir string, dev ortdev.Device, libVersion string) error {
	err := CheckPlacement(dir, string(dev))
	var pe *PlacementError
	if errors.As(err, &pe) && libVersion != pe.ORTVersion {
		slog.Warn("some nodes have no kernel in the pinned ONNX Runtime build; the loaded library may have them",
			"device", dev, "checked", pe.ORTVersion, "loaded", libVersion, "error", err)
		return nil
	}
	return err
}

// resolveGraphs resolves the package's graph files and checks them before
// ORT opens any: external-data locations must stay inside the package (ORT
// follows them wherever they point), and the declared shapes must agree with
// the manifest, so that a manifest that lies about sizes is caught before
// the KV buffers it describes are allocated.
func resolveGraphs(dir string, man *manifest.Manifest, monolithic bool) (graphPaths, error) {
	var p graphPaths
	resolve := func(name string) (string, error) {
		path, err := manifest.Resolve(dir, name)
		if err != nil {
			return "", err
		}
		if err := onnx.CheckExternalData(path); err != nil {
			return "", fmt.Errorf("model package %s: %w", dir, err)
		}
		return path, nil
	}
	var err error
	if monolithic {
		if man.Files.Full == "" {
			return p, fmt.Errorf("model package %s has no monolithic graph (%s)", dir, manifest.FullFile)
		}
		p.full, err = resolve(man.Files.Full)
		return p, err
	}
	if p.embed, err = resolve(man.Files.Embed); err != nil {
		return p, err
	}
	if p.head, err = resolve(man.Files.Head); err != nil {
		return p, err
	}
	for _, name := range man.Files.Layers {
		path, err := resolve(name)
		if err != nil {
			return p, err
		}
		p.layers = append(p.layers, path)
	}
	for i, path := range p.layers {
		if err := man.CheckLayerGraphFile(path, man.Files.Layers[i]); err != nil {
			return p, fmt.Errorf("model package %s: %w", dir, err)
		}
	}
	if err := checkHeadShape(p.head, man); err != nil {
		return p, fmt.Errorf("model package %s: %w", dir, err)
	}
	return p, nil
}

// ErrBadPackage matches (errors.Is) a Load error that is the package's
// fault: a graph file or external-data location that is missing, escapes
// the package or disagrees with the manifest, or a node without a kernel
// on the device.
var ErrBadPackage = errors.New("invalid model package")

// badPackage marks err as ErrBadPackage, keeping its message.
type badPackage struct{ err error }

func (b badPackage) Error() string        { return b.err.Error() }
func (b badPackage) Unwrap() error        { return b.err }
func (b badPackage) Is(target error) bool { return target == ErrBadPackage }

// Is makes a PlacementError match ErrBadPackage.
func (e *PlacementError) Is(target error) bool { return target == ErrBadPackage }

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
	if m.pool != nil {
		m.pool.close()
	}
	if m.g != nil {
		m.g.close()
		m.g = nil
	}
}

// Schedule returns the model's default decode schedule.
func (m *Model) Schedule() Schedule { return m.schedule }

// ResolveSchedule returns the schedule for a spec and speedup, falling back
// to the model's default when both are empty. A bare rule name without a
// speedup ("top") takes the ratio of the package's fine-tuned default
// schedule, as in Load.
func (m *Model) ResolveSchedule(spec string, speedup float64) (Schedule, error) {
	if spec == "" && speedup == 0 {
		return m.schedule, nil
	}
	if spec == "" {
		spec = m.schedule.Name
		if spec == "layers" {
			spec = "uls"
		}
	}
	speedup, err := ruleRatio(spec, speedup, m.Manifest.ULS.DefaultSchedule)
	if err != nil {
		return Schedule{}, err
	}
	return ParseSchedule(spec, speedup, m.Manifest.NumLayers)
}

// packageSchedule resolves Options.Schedule and Options.Speedup against a
// package: an empty spec takes uls.default_schedule (else full depth), a
// bare rule name the default's ratio (docs/design.md, "The schedule").
func packageSchedule(man *manifest.Manifest, spec string, speedup float64) (Schedule, error) {
	if spec == "" {
		spec = man.ULS.DefaultSchedule
	}
	speedup, err := ruleRatio(spec, speedup, man.ULS.DefaultSchedule)
	if err != nil {
		return Schedule{}, err
	}
	return ParseSchedule(spec, speedup, man.NumLayers)
}

// RuleRatio returns the speedup ratio Load runs Options{Schedule: spec,
// Speedup: speedup} at on the package in dir, reading only its manifest:
// speedup itself, or for a bare rule name with speedup 0 the ratio of the
// package's fine-tuned default schedule. It fails as Load would on a
// schedule the package cannot run, so a command can check its flags before
// fetching a runtime.
func RuleRatio(dir, spec string, speedup float64) (float64, error) {
	man, err := manifest.Load(dir)
	if err != nil {
		return 0, err
	}
	if _, err := packageSchedule(man, spec, speedup); err != nil {
		return 0, err
	}
	return ruleRatio(spec, speedup, man.ULS.DefaultSchedule)
}

// Dir returns the package directory.
func (m *Model) Dir() string { return m.dir }

// KVBytes returns the KV cache memory a batch of the given size needs with
// schedule s: one pair per kept layer and row, plus the scratch pair that
// skipped layers share during prefill.
func (m *Model) KVBytes(batch int, s Schedule) int64 {
	return kvCacheBytes(m.Manifest, batch, len(s.Layers))
}

// checkHeadShape compares the head graph's logits with the manifest's vocabulary.
func checkHeadShape(path string, man *manifest.Manifest) error {
	_, outputs, err := onnx.GraphIO(path)
	if err != nil {
		return err
	}
	for _, out := range outputs {
		if out.Name != manifest.Logits {
			continue
		}
		d := out.Shape()
		if len(d) != 3 || (d[2] >= 0 && d[2] != int64(man.VocabSize)) {
			return fmt.Errorf("%s output logits has shape %v, the manifest says vocab_size %d", path, d, man.VocabSize)
		}
		return nil
	}
	return fmt.Errorf("%s has no logits output", path)
}

// checkKVMemory refuses a batch whose KV cache would not fit in host
// memory, where the cache lives on the CPU. Device memory is not measured
// here: there, the allocation itself fails with ORT's error.
func (m *Model) checkKVMemory(batch int, s Schedule) error {
	need := m.KVBytes(batch, s)
	if need <= 0 {
		return fmt.Errorf("the KV cache for batch %d at max_seq_len %d is too large to count", batch, m.Manifest.MaxSeqLen)
	}
	if m.g.dev != ortdev.DeviceCPU {
		return nil
	}
	avail := hostmem.Available()
	if avail > 0 && need > avail*9/10 {
		return fmt.Errorf("the KV cache for batch %d at max_seq_len %d needs %.1f GiB but only %.1f GiB of memory is available; lower the batch size or export with a smaller max_seq_len",
			batch, m.Manifest.MaxSeqLen, float64(need)/(1<<30), float64(avail)/(1<<30))
	}
	return nil
}

// ORTVersion is the version of the ONNX Runtime library the model runs on.
func (m *Model) ORTVersion() string { return m.g.api.Version() }

// EndProfiling writes the ONNX Runtime traces of a model loaded with
// Options.ProfileDir and returns their paths, one per graph.
func (m *Model) EndProfiling() ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	return m.g.endProfiling()
}

// defaultThreads is the intra-op thread count for threads (0: the default):
// on the CPU every physical core this process may use (ORT's own default
// falls back to half the logical processors where it cannot read the
// topology); on a GPU ORT's default.
func defaultThreads(dev ortdev.Device, threads int) int {
	if threads == 0 && dev == ortdev.DeviceCPU {
		return cpus.Physical()
	}
	return threads
}
