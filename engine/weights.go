package engine

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/models/onnx"
)

// sharedWeights holds a package's weights once for every session on the
// CPU (docs/design.md, "The runner"): each external data file is mapped
// once, each initializer is one tensor over the mapping, handed to every
// session that reads it (the per-layer graphs, the fused decode graphs)
// through AddInitializer, and one prepacked-weights container lets those
// sessions keep one copy of what ONNX Runtime packs (MatMulNBits' and
// MatMul's weights) instead of one each.
type sharedWeights struct {
	api       *ortdev.API
	prepacked *ortdev.PrepackedWeights

	mu      sync.Mutex
	files   map[string]*ortdev.MappedFile // data file (absolute) → its mapping
	tensors map[weightKey]*ortdev.Value
	closed  bool
}

// weightKey identifies one initializer's bytes: the same bytes under other
// names (a layer's weights in its own graph and, prefixed, in a fused one)
// are one tensor.
type weightKey struct {
	file           string
	offset, length int64
	dtype          onnx.DataType
	dims           string
}

// openShared opens the graph file at path with opts, handing it the
// shared weights where there are (on the CPU). A graph whose weights cannot
// be shared (one ReadModel refuses, a location outside its data file) opens
// with weights of its own, and ONNX Runtime reports what is wrong with it.
func (g *graphs) openShared(path string, opts *ortdev.SessionOptions) (*ortdev.Session, error) {
	if g.weights == nil {
		return g.env.NewSession(path, opts)
	}
	m, err := onnx.ReadModel(path)
	if err != nil {
		slog.Debug("graph opens with weights of its own", "graph", filepath.Base(path), "reason", err)
		return g.env.NewSession(path, opts)
	}
	return g.weights.open(filepath.Base(path), m, filepath.Dir(path), opts, func(o *ortdev.SessionOptions) (*ortdev.Session, error) {
		return g.env.NewSession(path, o)
	})
}

// open creates a session of m (whose external data resolves against dir)
// through create, with opts plus the shared weights, then gives back the
// pages its creation read (release).
func (w *sharedWeights) open(name string, m *onnx.Model, dir string, opts *ortdev.SessionOptions,
	create func(*ortdev.SessionOptions) (*ortdev.Session, error)) (*ortdev.Session, error) {
	shared, err := w.options(opts, m, dir)
	if err != nil {
		slog.Debug("graph opens with weights of its own", "graph", name, "reason", err)
		return create(opts)
	}
	defer shared.Close()
	// ONNX Runtime reads every weight it packs while it creates the
	// session, one after another: giving the pages back as it goes keeps
	// a large graph's weights from becoming resident all at once.
	stop := make(chan struct{})
	released := make(chan struct{})
	go func() {
		defer close(released)
		tick := time.NewTicker(releaseEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				w.releaseQuietly()
			}
		}
	}()
	s, err := create(shared)
	close(stop)
	<-released
	if err != nil {
		// Some kernels pack a handed-over weight without sharing the
		// packed copy, and ONNX Runtime then refuses the session (float16
		// layer norms on the CPU): such a graph holds its weights itself.
		slog.Debug("graph opens with weights of its own", "graph", name, "reason", err)
		return create(opts)
	}
	w.releaseQuietly()
	return s, nil
}

// releaseEvery is how often open gives back the pages read while ONNX
// Runtime creates a session.
const releaseEvery = 20 * time.Millisecond

// releaseQuietly is release, logging a failure: pages that stay resident
// cost memory, not correctness.
func (w *sharedWeights) releaseQuietly() {
	if err := w.release(); err != nil {
		slog.Debug("mapped weights stay resident", "reason", err)
	}
}

// newSharedWeights makes an empty set of shared weights.
func newSharedWeights(api *ortdev.API) (*sharedWeights, error) {
	p, err := api.NewPrepackedWeights()
	if err != nil {
		return nil, err
	}
	return &sharedWeights{api: api, prepacked: p, files: map[string]*ortdev.MappedFile{},
		tensors: map[weightKey]*ortdev.Value{}}, nil
}

// options returns a copy of base that hands a session of m the shared
// tensor of each of m's initializers kept in an external data file
// (locations resolve against dir), and the prepacked-weights container.
// Initializers of other types or kept inline are left to ONNX Runtime.
// The caller closes the options once the session is created.
func (w *sharedWeights) options(base *ortdev.SessionOptions, m *onnx.Model, dir string) (_ *ortdev.SessionOptions, err error) {
	opts, err := base.Clone()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			opts.Close()
		}
	}()
	if err := opts.SetPrepackedWeights(w.prepacked); err != nil {
		return nil, err
	}
	for _, t := range m.Graph.Initializers {
		if t.Location == "" {
			continue
		}
		v, err := w.tensor(filepath.Join(dir, filepath.FromSlash(t.Location)), t)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", t.Name, err)
		}
		if v == nil {
			continue
		}
		if err := opts.AddInitializer(t.Name, v); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// tensor returns the shared tensor of initializer t kept in file, mapping
// the file on first use; nil for an element type ortdev does not handle.
func (w *sharedWeights) tensor(file string, t onnx.Tensor) (*ortdev.Value, error) {
	elem := ortdev.ElementType(t.Type)
	if elem.Size() == 0 {
		return nil, nil
	}
	file, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	key := weightKey{file: file, offset: t.Offset, length: t.Length, dtype: t.Type, dims: fmt.Sprint(t.Dims)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ortdev.ErrClosed
	}
	if v := w.tensors[key]; v != nil {
		return v, nil
	}
	mf := w.files[file]
	if mf == nil {
		if mf, err = w.api.MapFile(file); err != nil {
			return nil, err
		}
		w.files[file] = mf
	}
	length := t.Length
	if length == 0 { // no length: the rest of the file
		length = mf.Size() - t.Offset
	}
	v, err := mf.Tensor(t.Offset, length, slices.Clone(t.Dims), elem)
	if err != nil {
		return nil, err
	}
	w.tensors[key] = v
	return v, nil
}

// release gives back the pages of the mapped files read so far: once a
// session is created, ONNX Runtime has packed what it packs into memory of
// its own, and what its runs read directly (an embedding's rows, norms)
// is read again from the page cache when needed.
func (w *sharedWeights) release() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, mf := range w.files {
		if err := mf.Release(); err != nil {
			return err
		}
	}
	return nil
}

// mappedBytes is the total size of the files mapped so far.
func (w *sharedWeights) mappedBytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, mf := range w.files {
		n += mf.Size()
	}
	return n
}

// close lets go of the tensors, mappings and container; the sessions that
// use them keep them until they are released.
func (w *sharedWeights) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	for _, v := range w.tensors {
		v.Close()
	}
	for _, mf := range w.files {
		mf.Close()
	}
	w.prepacked.Close()
}
