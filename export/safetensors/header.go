// Package safetensors reads and writes the safetensors checkpoint format
// (an 8-byte little-endian header length, a JSON header, then raw tensor
// bytes). Files are memory-mapped and converted to float32 one tensor at a
// time, so reading a checkpoint never holds more than one tensor in memory.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"
)

// DType is a safetensors element type name as written in the header.
type DType string

// Element types. Only F32, F16 and BF16 convert to float32; the others are
// recognised so that headers holding them still parse.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size returns the element size in bytes, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// Float reports whether the type converts to float32 (F32, F16, BF16).
func (d DType) Float() bool { return d == F32 || d == F16 || d == BF16 }

// MaxHeaderSize bounds the JSON header (as the reference implementation does),
// so a corrupt length field cannot trigger a huge allocation.
const MaxHeaderSize = 100 << 20

// maxRank bounds the number of dimensions of one tensor.
const maxRank = 16

// TensorInfo describes one tensor of a safetensors file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are byte offsets relative to the start of the data section.
	Begin, End int64
}

// NumElements returns the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Header is a parsed safetensors header.
type Header struct {
	// Tensors maps tensor names to their descriptions.
	Tensors map[string]TensorInfo
	// Metadata is the optional "__metadata__" string map.
	Metadata map[string]string
	// DataStart is the file offset of the data section (8 + header length).
	DataStart int64
}

// Names returns the tensor names sorted by their offset in the file.
func (h *Header) Names() []string {
	names := make([]string, 0, len(h.Tensors))
	for n := range h.Tensors {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := h.Tensors[names[i]], h.Tensors[names[j]]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return names[i] < names[j]
	})
	return names
}

type rawEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// HeaderLength decodes the leading 8-byte header length of a file of the given
// size and checks it against the file size and MaxHeaderSize.
func HeaderLength(prefix []byte, fileSize int64) (int64, error) {
	if len(prefix) < 8 || fileSize < 8 {
		return 0, fmt.Errorf("file of %d bytes is too short for a safetensors header", fileSize)
	}
	n := binary.LittleEndian.Uint64(prefix[:8])
	if n > MaxHeaderSize {
		return 0, fmt.Errorf("header length %d exceeds the %d-byte limit (corrupt file?)", n, MaxHeaderSize)
	}
	if int64(n) > fileSize-8 {
		return 0, fmt.Errorf("header length %d is beyond the file size %d (truncated file?)", n, fileSize)
	}
	if n < 2 {
		return 0, fmt.Errorf("header length %d is too small for a JSON object", n)
	}
	return int64(n), nil
}

// ParseHeader parses the beginning of a safetensors file. data must hold at
// least the 8-byte length and the JSON header; fileSize is the size of the
// whole file, against which every tensor's offsets are checked.
func ParseHeader(data []byte, fileSize int64) (*Header, error) {
	n, err := HeaderLength(data, fileSize)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) < 8+n {
		return nil, fmt.Errorf("header length %d is beyond the %d bytes given", n, len(data))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("header JSON: %w", err)
	}
	h := &Header{Tensors: make(map[string]TensorInfo, len(raw)), DataStart: 8 + n}
	dataLen := fileSize - h.DataStart
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &h.Metadata); err != nil {
				return nil, fmt.Errorf("header __metadata__: %w", err)
			}
			continue
		}
		info, err := parseEntry(name, msg, dataLen)
		if err != nil {
			return nil, err
		}
		h.Tensors[name] = info
	}
	if err := h.checkLayout(dataLen); err != nil {
		return nil, err
	}
	return h, nil
}

// checkLayout requires the tensors to tile the data section exactly, as the
// reference implementation does: sorted by offset, each begins where the
// previous one ends, the first at 0 and the last at the end of the file. So
// no two tensors share (alias) bytes and nothing follows the last one.
func (h *Header) checkLayout(dataLen int64) error {
	var pos int64
	prev := ""
	for _, name := range h.Names() {
		t := h.Tensors[name]
		switch {
		case t.Begin < pos:
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] overlap tensor %q (corrupt file?)", name, t.Begin, t.End, prev)
		case t.Begin > pos:
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] leave %d unused bytes before it (corrupt file?)", name, t.Begin, t.End, t.Begin-pos)
		}
		pos = t.End
		prev = name
	}
	if pos != dataLen {
		return fmt.Errorf("%d bytes of trailing data after the last tensor (corrupt file?)", dataLen-pos)
	}
	return nil
}

func parseEntry(name string, msg json.RawMessage, dataLen int64) (TensorInfo, error) {
	var e rawEntry
	if err := json.Unmarshal(msg, &e); err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: header entry: %w", name, err)
	}
	size := e.DType.Size()
	if size == 0 {
		return TensorInfo{}, fmt.Errorf("tensor %q: unknown dtype %q", name, e.DType)
	}
	if len(e.Shape) > maxRank {
		return TensorInfo{}, fmt.Errorf("tensor %q: rank %d is above %d", name, len(e.Shape), maxRank)
	}
	if len(e.DataOffsets) != 2 {
		return TensorInfo{}, fmt.Errorf("tensor %q: data_offsets must hold 2 numbers, got %d", name, len(e.DataOffsets))
	}
	begin, end := e.DataOffsets[0], e.DataOffsets[1]
	if begin < 0 || end < begin || end > dataLen {
		return TensorInfo{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] lie outside the %d data bytes (truncated file?)", name, begin, end, dataLen)
	}
	elems := uint64(1)
	shape := make([]int, len(e.Shape))
	for i, d := range e.Shape {
		if d < 0 || d > math.MaxInt32 {
			return TensorInfo{}, fmt.Errorf("tensor %q: invalid dimension %d", name, d)
		}
		hi, lo := bits.Mul64(elems, uint64(d))
		if hi != 0 || lo > math.MaxInt64/8 {
			return TensorInfo{}, fmt.Errorf("tensor %q: shape %v is too large", name, e.Shape)
		}
		elems = lo
		shape[i] = int(d)
	}
	if want := int64(elems) * int64(size); want != end-begin {
		return TensorInfo{}, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes but data_offsets span %d", name, e.Shape, e.DType, want, end-begin)
	}
	return TensorInfo{Name: name, DType: e.DType, Shape: shape, Begin: begin, End: end}, nil
}

// errClosed is returned when a closed file is read.
var errClosed = errors.New("safetensors file is closed")
