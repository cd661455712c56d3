package engine

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// fusion composes a decode schedule's layers, with the embedding and the
// head, into one graph and opens it as one session, on first use of the
// schedule (docs/design.md, "The runner"). The composed graph is built in
// memory and opened from bytes: its initializers keep pointing into the
// package's data files, resolved against the package's graph directory, so
// nothing is written or copied on disk.
type fusion struct {
	g     *graphs
	opts  *ortdev.SessionOptions
	paths graphPaths
	base  string // the directory external data locations resolve against

	// capture: sessions open with CUDA graph capture and record their
	// decode steps as CUDA graphs (docs/design.md, "CUDA graphs"); plain
	// are the options without capture, for a graph ORT refuses to capture.
	capture bool
	plain   *ortdev.SessionOptions

	mu       sync.Mutex
	parsed   map[string]*onnx.Model     // graph file → its model, read once
	sessions map[string]*ortdev.Session // layers key → fused session
	graphs   captureGraphs
}

// newFusion prepares fusion for g: the options its sessions open with are
// g's, with external data resolved against the package's graph directory,
// and CUDA graph capture where so asks for it and the package's layers
// allow it (capturable).
func newFusion(g *graphs, so sessionOptions, paths graphPaths) (_ *fusion, err error) {
	so.profileDir = ""
	f := &fusion{g: g, paths: paths, base: filepath.Dir(paths.embed),
		parsed: map[string]*onnx.Model{}, sessions: map[string]*ortdev.Session{}}
	if so.cudaGraph {
		layer, err := f.read(paths.layers[0])
		if err != nil {
			return nil, err
		}
		if f.capture = capturable(layer); !f.capture {
			slog.Info("decoding without CUDA graphs: the package's layers read total_seq_len outside GroupQueryAttention")
		}
	}
	so.cudaGraph = f.capture
	if f.opts, err = f.options(so); err != nil {
		return nil, err
	}
	if f.capture {
		so.cudaGraph = false
		if f.plain, err = f.options(so); err != nil {
			f.opts.Close()
			return nil, err
		}
	}
	return f, nil
}

// options makes the options fused sessions open with.
func (f *fusion) options(so sessionOptions) (*ortdev.SessionOptions, error) {
	opts, err := f.g.sessionOpts(so)
	if err != nil {
		return nil, err
	}
	if err := opts.AddConfigEntry("session.model_external_initializers_file_folder_path", f.base); err != nil {
		opts.Close()
		return nil, err
	}
	return opts, nil
}

// layersKey names a list of layers.
func layersKey(layers []int) string {
	s := make([]string, len(layers))
	for i, l := range layers {
		s[i] = strconv.Itoa(l)
	}
	return strings.Join(s, ",")
}

// session returns the fused session of layers, composing and opening it
// on first use.
func (f *fusion) session(layers []int) (*ortdev.Session, error) {
	key := layersKey(layers)
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.sessions[key]; s != nil {
		return s, nil
	}
	m, err := f.compose(layers)
	if err != nil {
		return nil, fmt.Errorf("fuse layers %s: %w", key, err)
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("fuse layers %s: %w", key, err)
	}
	name := "fused decode graph (layers " + key + ")"
	s, err := f.open(name, m, data)
	captured := f.capture
	if err != nil && f.capture {
		slog.Warn("the fused decode graph opens without CUDA graph capture", "layers", key, "reason", err)
		s, err = f.g.env.NewSessionFromBytes(name, data, f.plain)
		captured = false
	}
	if err != nil {
		return nil, &DeviceError{string(f.g.dev), "open the " + name, err}
	}
	if captured {
		f.graphs.capturing(s)
	}
	in, out := wholeGraphNames(layers)
	if err := checkNames(s, in, out); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f.g.opened = append(f.g.opened, namedSession{name, s})
	f.sessions[key] = s
	slog.Debug("opened a fused decode graph", "layers", key, "bytes", len(data))
	return s, nil
}

// open opens the composed graph m (serialized as data) with f's options;
// on the CPU its initializers are the tensors the per-layer sessions use
// and its packed weights theirs (weights.go), so it holds no copy of the
// weights of its own.
func (f *fusion) open(name string, m *onnx.Model, data []byte) (*ortdev.Session, error) {
	create := func(o *ortdev.SessionOptions) (*ortdev.Session, error) {
		return f.g.env.NewSessionFromBytes(name, data, o)
	}
	if f.g.weights == nil {
		return create(f.opts)
	}
	return f.g.weights.open(name, m, f.base, f.opts, create)
}

// read returns the parsed graph at path, with each external data location
// made relative to f.base.
func (f *fusion) read(path string) (*onnx.Model, error) {
	if m := f.parsed[path]; m != nil {
		return m, nil
	}
	m, err := onnx.ReadModel(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	for i, t := range m.Graph.Initializers {
		if t.Location == "" {
			continue
		}
		rel, err := filepath.Rel(f.base, filepath.Join(dir, filepath.FromSlash(t.Location)))
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("%s: initializer %q: data %s lies outside %s", filepath.Base(path), t.Name, t.Location, f.base)
		}
		m.Graph.Initializers[i].Location = filepath.ToSlash(rel)
	}
	f.parsed[path] = m
	return m, nil
}

// compose builds the fused graph of layers: embedding, the layers in
// order with each one's hidden_out chained to the next one's hidden, and
// the head; each layer's KV under its per-layer names, seqlens_k and
// total_seq_len shared.
func (f *fusion) compose(layers []int) (*onnx.Model, error) {
	embed, err := f.read(f.paths.embed)
	if err != nil {
		return nil, err
	}
	head, err := f.read(f.paths.head)
	if err != nil {
		return nil, err
	}
	hidden := func(j int) string { return "hidden_" + strconv.Itoa(j) }
	parts := []onnx.Part{{Prefix: "embed/", Model: embed,
		Rename: map[string]string{manifest.InputIDs: manifest.InputIDs, manifest.Hidden: hidden(0)}}}
	for j, l := range layers {
		if l < 0 || l >= len(f.paths.layers) {
			return nil, fmt.Errorf("layer %d of %d", l, len(f.paths.layers))
		}
		m, err := f.read(f.paths.layers[l])
		if err != nil {
			return nil, err
		}
		parts = append(parts, onnx.Part{Prefix: fmt.Sprintf("layer%d/", l), Model: m, Rename: map[string]string{
			manifest.Hidden: hidden(j), manifest.HiddenOut: hidden(j + 1),
			manifest.PastKey: manifest.FullPastKey(l), manifest.PastValue: manifest.FullPastValue(l),
			manifest.PresentKey: manifest.FullPresentKey(l), manifest.PresentValue: manifest.FullPresentValue(l),
			manifest.SeqLensK: manifest.SeqLensK, manifest.TotalSeqLen: manifest.TotalSeqLen,
		}})
	}
	parts = append(parts, onnx.Part{Prefix: "head/", Model: head,
		Rename: map[string]string{manifest.Hidden: hidden(len(layers)), manifest.Logits: manifest.Logits}})
	in, out := wholeGraphNames(layers)
	return onnx.Compose("fused_decode", parts, in, out)
}
