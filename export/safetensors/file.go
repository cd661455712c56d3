package safetensors

import (
	"fmt"
	"os"
	"sync"
)

// File is an open, memory-mapped safetensors file. It is safe for concurrent
// reads; Close must not race with them.
type File struct {
	path   string
	header *Header
	mu     sync.RWMutex
	data   []byte // the whole file, memory-mapped; nil once closed
	unmap  func() error
}

// Open maps a safetensors file and parses its header.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("safetensors %s: not a regular file", path)
	}
	var prefix [8]byte
	if size >= 8 {
		if _, err := f.ReadAt(prefix[:], 0); err != nil {
			return nil, fmt.Errorf("safetensors %s: %w", path, err)
		}
	}
	if _, err := HeaderLength(prefix[:], size); err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	data, unmap, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: map: %w", path, err)
	}
	h, err := ParseHeader(data, size)
	if err != nil {
		unmap()
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	return &File{path: path, header: h, data: data, unmap: unmap}, nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Header returns the parsed header.
func (f *File) Header() *Header { return f.header }

// Names returns the tensor names in file order.
func (f *File) Names() []string { return f.header.Names() }

// Info returns the description of a tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.header.Tensors[name]
	return t, ok
}

// Raw returns a copy of the tensor's stored bytes.
func (f *File) Raw(name string) ([]byte, TensorInfo, error) {
	var out []byte
	info, err := f.with(name, func(b []byte, _ TensorInfo) error {
		out = append([]byte(nil), b...)
		return nil
	})
	return out, info, err
}

// Tensor reads one tensor as float32 in row-major order, with its shape.
func (f *File) Tensor(name string) ([]float32, []int, error) {
	var out []float32
	info, err := f.with(name, func(b []byte, info TensorInfo) error {
		out = make([]float32, info.NumElements())
		return Decode(out, b, info.DType)
	})
	if err != nil {
		return nil, nil, err
	}
	return out, append([]int(nil), info.Shape...), nil
}

// with calls fn with the tensor's bytes inside the mapping, then tells the
// kernel the pages may be dropped so a full read keeps resident memory low.
func (f *File) with(name string, fn func([]byte, TensorInfo) error) (TensorInfo, error) {
	info, ok := f.header.Tensors[name]
	if !ok {
		return info, fmt.Errorf("safetensors %s: no tensor %q", f.path, name)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.data == nil {
		return info, fmt.Errorf("safetensors %s: %w", f.path, errClosed)
	}
	lo, hi := f.header.DataStart+info.Begin, f.header.DataStart+info.End
	if err := fn(f.data[lo:hi], info); err != nil {
		return info, fmt.Errorf("safetensors %s: tensor %q: %w", f.path, name, err)
	}
	release(f.data, lo, hi)
	return info, nil
}

// Close unmaps the file. Further reads fail.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.data == nil {
		return nil
	}
	f.data = nil
	if err := f.unmap(); err != nil {
		return fmt.Errorf("safetensors %s: unmap: %w", f.path, err)
	}
	return nil
}
