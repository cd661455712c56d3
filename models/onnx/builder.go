package onnx

import (
	"fmt"
	"path/filepath"
)

// DefaultInlineLimit is the size below which Builder keeps initializers
// inline in the model rather than in the external data file.
const DefaultInlineLimit = 1024

// Builder assembles a graph node by node. Initializers of at least
// InlineLimit bytes are streamed to the external data file when there is
// one. The first error is kept and returned by Err and WriteModel, so graph
// code can add nodes without checking each call, as bufio.Scanner does.
type Builder struct {
	Graph       Graph
	InlineLimit int
	data        *ExternalData
	err         error
	nodes       int
}

// NewBuilder starts a graph; data may be nil to keep every initializer inline.
func NewBuilder(name string, data *ExternalData) *Builder {
	return &Builder{Graph: Graph{Name: name}, InlineLimit: DefaultInlineLimit, data: data}
}

// Input declares a graph input.
func (b *Builder) Input(name string, dt DataType, dims ...Dim) string {
	b.Graph.Inputs = append(b.Graph.Inputs, ValueInfo{Name: name, Type: dt, Dims: dims, Scalar: len(dims) == 0})
	return name
}

// Output declares a graph output.
func (b *Builder) Output(name string, dt DataType, dims ...Dim) {
	b.Graph.Outputs = append(b.Graph.Outputs, ValueInfo{Name: name, Type: dt, Dims: dims, Scalar: len(dims) == 0})
}

// Initializer adds a constant tensor named name and returns the name.
func (b *Builder) Initializer(name string, dt DataType, dims []int64, raw []byte) string {
	if b.err != nil {
		return name
	}
	if b.data != nil && len(raw) >= b.InlineLimit {
		t, err := b.data.Add(name, dt, dims, raw)
		if err != nil {
			b.err = err
			return name
		}
		b.Graph.Initializers = append(b.Graph.Initializers, t)
		return name
	}
	t := Tensor{Name: name, Type: dt, Dims: append([]int64(nil), dims...), Raw: raw}
	if want := t.NumElements() * int64(dt.Size()); dt.Size() == 0 || want != int64(len(raw)) {
		b.err = fmt.Errorf("initializer %q: %d bytes for %v %v", name, len(raw), dt, dims)
		return name
	}
	b.Graph.Initializers = append(b.Graph.Initializers, t)
	return name
}

// Float32 adds a float32 initializer.
func (b *Builder) Float32(name string, dims []int64, v []float32) string {
	return b.Initializer(name, Float, dims, Float32Bytes(v))
}

// Add appends a node (naming it "<OpType>_<n>" when Name is empty) and
// returns its outputs.
func (b *Builder) Add(n Node) []string {
	b.nodes++
	if n.Name == "" {
		n.Name = fmt.Sprintf("%s_%d", n.OpType, b.nodes)
	}
	b.Graph.Nodes = append(b.Graph.Nodes, n)
	return n.Outputs
}

// Op appends an ai.onnx node with a single output and returns that output.
func (b *Builder) Op(opType string, output string, inputs []string, attrs ...Attr) string {
	return b.Add(Node{OpType: opType, Inputs: inputs, Outputs: []string{output}, Attrs: attrs})[0]
}

// Fail records err as the builder's error unless one is already recorded.
func (b *Builder) Fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Err is the first error met while building.
func (b *Builder) Err() error { return b.err }

// WriteModel encodes the graph with the default opsets into path and
// closes the external data file, if any. The data file must live in the
// same directory as path.
func (b *Builder) WriteModel(path string) error {
	if b.data != nil {
		if err := b.data.Close(); err != nil {
			b.Fail(err)
		}
		if filepath.Dir(b.data.path) != filepath.Dir(path) {
			b.Fail(fmt.Errorf("external data %s is not next to model %s", b.data.path, path))
		}
	}
	if b.err != nil {
		return fmt.Errorf("build %s: %w", filepath.Base(path), b.err)
	}
	m := Model{Graph: b.Graph}
	return m.WriteFile(path)
}
