package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"

	"fmt"
	"os"
)

// Spec declares one tensor to be written: its name, stored dtype and shape.
type Spec struct {
	Name  string
	DType DType
	Shape []int
}

// Writer streams a safetensors file: the header is written up front from the
// declared specs, then each tensor's data in declaration order.
type Writer struct {
	path  string
	f     *os.File
	w     *bufio.Writer
	specs []Spec
	next  int
	buf   []byte
	err   error
}

// Create starts a safetensors file declaring the given tensors, in the order
// their data will be written. metadata may be nil.
func Create(path string, specs []Spec, metadata map[string]string) (*Writer, error) {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, s := range specs {
		if !s.DType.Float() {
			return nil, fmt.Errorf("safetensors writer: tensor %q: dtype %q is not F32, F16 or BF16", s.Name, s.DType)
		}
		if s.Name == "" || s.Name == "__metadata__" {
			return nil, fmt.Errorf("safetensors writer: invalid tensor name %q", s.Name)
		}
		if _, dup := header[s.Name]; dup {
			return nil, fmt.Errorf("safetensors writer: duplicate tensor %q", s.Name)
		}
		n := int64(1)
		for _, d := range s.Shape {
			if d < 0 {
				return nil, fmt.Errorf("safetensors writer: tensor %q: negative dimension in %v", s.Name, s.Shape)
			}
			n *= int64(d)
		}
		size := n * int64(s.DType.Size())
		shape := s.Shape
		if shape == nil {
			shape = []int{}
		}
		header[s.Name] = map[string]any{"dtype": s.DType, "shape": shape, "data_offsets": []int64{off, off + size}}
		off += size
	}
	js, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("safetensors writer: header: %w", err)
	}
	for len(js)%8 != 0 { // align the data section, as the reference writer does
		js = append(js, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors writer: %w", err)
	}
	w := &Writer{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20), specs: specs}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
	w.w.Write(n[:])
	w.w.Write(js)
	return w, nil
}

// Write stores the data of the next declared tensor, which must be name.
func (w *Writer) Write(name string, data []float32) error {
	if w.err != nil {
		return w.err
	}
	if w.next >= len(w.specs) {
		return w.fail(fmt.Errorf("safetensors writer %s: tensor %q was not declared", w.path, name))
	}
	s := w.specs[w.next]
	if s.Name != name {
		return w.fail(fmt.Errorf("safetensors writer %s: got tensor %q, want %q next", w.path, name, s.Name))
	}
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	if len(data) != n {
		return w.fail(fmt.Errorf("safetensors writer %s: tensor %q has %d values for shape %v", w.path, name, len(data), s.Shape))
	}
	var err error
	w.buf, err = Encode(w.buf[:0], data, s.DType)
	if err != nil {
		return w.fail(err)
	}
	if _, err := w.w.Write(w.buf); err != nil {
		return w.fail(fmt.Errorf("safetensors writer %s: %w", w.path, err))
	}
	w.next++
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// Close flushes the file; it fails if a declared tensor was not written.
func (w *Writer) Close() error {
	if w.f == nil {
		return w.err
	}
	err := w.err
	if err == nil && w.next != len(w.specs) {
		err = fmt.Errorf("safetensors writer %s: %d of %d tensors written", w.path, w.next, len(w.specs))
	}
	if ferr := w.w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("safetensors writer %s: %w", w.path, ferr)
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("safetensors writer %s: %w", w.path, cerr)
	}
	w.f = nil
	w.err = err
	return err
}

// Tensor is one named float32 tensor with the dtype it is stored as.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []float32
}

// WriteFile writes tensors to a new safetensors file in the given order.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	specs := make([]Spec, len(tensors))
	for i, t := range tensors {
		specs[i] = Spec{Name: t.Name, DType: t.DType, Shape: t.Shape}
	}
	w, err := Create(path, specs, metadata)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.Write(t.Name, t.Data); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}
