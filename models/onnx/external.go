package onnx

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
)

// Alignment of tensors in an external data file: small tensors start at a
// multiple of SmallAlign bytes, tensors of at least BigTensor bytes at a
// multiple of BigAlign (a page, so they can be memory-mapped).
const (
	SmallAlign = 64
	BigAlign   = 4096
	BigTensor  = 1 << 20
)

// ExternalData appends tensor bytes to one data file next to a model. Each
// Add writes one tensor and returns the TensorProto that references it, so
// only the tensor being written has to be in memory.
type ExternalData struct {
	path     string
	location string
	f        *os.File
	w        *bufio.Writer
	off      int64
}

// CreateExternalData creates (truncates) the data file at path. Tensors
// reference it by its base name, so the model must be written to the same
// directory.
func CreateExternalData(path string) (*ExternalData, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create external data file: %w", err)
	}
	return &ExternalData{
		path:     path,
		location: filepath.Base(path),
		f:        f,
		w:        bufio.NewWriterSize(f, 1<<20),
	}, nil
}

// Location is the file name tensors use to reference the data file.
func (x *ExternalData) Location() string { return x.location }

// Size is the number of bytes written so far.
func (x *ExternalData) Size() int64 { return x.off }

// Add appends raw (little-endian element data) and returns the tensor
// referencing it.
func (x *ExternalData) Add(name string, dt DataType, dims []int64, raw []byte) (Tensor, error) {
	t := Tensor{Name: name, Type: dt, Dims: append([]int64(nil), dims...)}
	if dt.Size() == 0 {
		return Tensor{}, fmt.Errorf("tensor %q: unsupported data type %v", name, dt)
	}
	if want := t.NumElements() * int64(dt.Size()); want != int64(len(raw)) {
		return Tensor{}, fmt.Errorf("tensor %q: %d bytes for %v %v, want %d", name, len(raw), dt, dims, want)
	}
	align := int64(SmallAlign)
	if len(raw) >= BigTensor {
		align = BigAlign
	}
	if pad := (align - x.off%align) % align; pad > 0 {
		if _, err := x.w.Write(make([]byte, pad)); err != nil {
			return Tensor{}, fmt.Errorf("write %s: %w", x.path, err)
		}
		x.off += pad
	}
	if _, err := x.w.Write(raw); err != nil {
		return Tensor{}, fmt.Errorf("write tensor %q to %s: %w", name, x.path, err)
	}
	t.Location, t.Offset, t.Length = x.location, x.off, int64(len(raw))
	x.off += int64(len(raw))
	return t, nil
}

// Close flushes and closes the data file.
func (x *ExternalData) Close() error {
	if x.f == nil {
		return nil
	}
	err := x.w.Flush()
	if cerr := x.f.Close(); err == nil {
		err = cerr
	}
	x.f = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", x.path, err)
	}
	return nil
}
