package graph

import (
	"fmt"
	"slices"
	"sort"
)

// WeightSource serves a checkpoint's tensors by their Hugging Face names,
// as float32 in Hugging Face layout (linear weights are [out, in]).
// Implementations read one tensor per call, so exporters can stream.
type WeightSource interface {
	Tensor(name string) (data []float32, shape []int, err error)
}

// WeightInfo names one tensor of a checkpoint and its expected shape.
type WeightInfo struct {
	Name  string
	Shape []int
}

// ShapeOf returns the shape of the named tensor in ws.
func ShapeOf(ws []WeightInfo, name string) ([]int, bool) {
	for _, w := range ws {
		if w.Name == name {
			return w.Shape, true
		}
	}
	return nil, false
}

// Load fetches one tensor from src and checks its shape against want.
func Load(src WeightSource, name string, want []int) ([]float32, error) {
	data, shape, err := src.Tensor(name)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	if !slices.Equal(shape, want) {
		return nil, fmt.Errorf("tensor %s has shape %v, the config needs %v", name, shape, want)
	}
	n := 1
	for _, d := range want {
		n *= d
	}
	if len(data) != n {
		return nil, fmt.Errorf("tensor %s has %d values for shape %v", name, len(data), shape)
	}
	return data, nil
}

// MapTensor is one in-memory tensor.
type MapTensor struct {
	Data  []float32
	Shape []int
}

// MapSource is an in-memory WeightSource.
type MapSource map[string]MapTensor

// Tensor implements WeightSource.
func (m MapSource) Tensor(name string) ([]float32, []int, error) {
	t, ok := m[name]
	if !ok {
		return nil, nil, fmt.Errorf("tensor %q not found", name)
	}
	return t.Data, t.Shape, nil
}

// Names lists the tensors in sorted order.
func (m MapSource) Names() []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Transpose returns the [cols, rows] transpose of a [rows, cols] matrix
// (nil when w does not hold rows×cols values).
func Transpose(w []float32, rows, cols int) []float32 {
	if len(w) != rows*cols {
		return nil
	}
	t := make([]float32, len(w))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			t[c*rows+r] = w[r*cols+c]
		}
	}
	return t
}
