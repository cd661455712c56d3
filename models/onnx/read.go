package onnx

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// ReadModel reads the ONNX model at path into a Model without ONNX Runtime
// and without opening external data files: the opset imports, the producer,
// the metadata, and the main graph's nodes (op type, domain, name, inputs,
// outputs, attributes), declared inputs and outputs, and initializers with
// their element type, dims, and either their inline raw_data bytes or their
// external data location, offset and length. Initializer values stored in
// the typed fields (float_data, int64_data, …) instead of raw_data are not
// kept: such a tensor has neither Raw nor Location. Attributes holding
// graphs, sparse tensors or lists of tensors keep their name and type only.
// A file that is not a valid ONNX protobuf is an error naming it.
func ReadModel(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read onnx model: %w", err)
	}
	m, err := ParseModel(data)
	if err != nil {
		return nil, fmt.Errorf("onnx model %s: %w", path, err)
	}
	return m, nil
}

// ParseModel decodes ONNX protobuf bytes as ReadModel does. Opsets is empty,
// not nil, when the model imports none.
func ParseModel(data []byte) (*Model, error) {
	m := &Model{Opsets: []Opset{}}
	graphs := 0
	err := scan(data, func(f wireField) error {
		switch f.num {
		case modelIRVersion:
			v, err := f.varint()
			m.IRVersion = int64(v)
			return err
		case modelProducerName:
			s, err := f.str()
			m.Producer = s
			return err
		case modelGraph:
			graphs++
			b, err := f.bytes()
			if err != nil {
				return err
			}
			return readGraph(b, &m.Graph)
		case modelOpsetImport:
			b, err := f.bytes()
			if err != nil {
				return err
			}
			o, err := readOpset(b)
			m.Opsets = append(m.Opsets, o)
			return err
		case modelMetadata:
			b, err := f.bytes()
			if err != nil {
				return err
			}
			k, v, err := readEntry(b)
			if m.Metadata == nil {
				m.Metadata = map[string]string{}
			}
			m.Metadata[k] = v
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if graphs == 0 {
		return nil, errors.New("the file holds no graph (empty or not an ONNX model)")
	}
	return m, nil
}

// OpsetVersion returns the version the model imports for domain ("" and
// "ai.onnx" are the same domain), and false when it imports none.
func (m *Model) OpsetVersion(domain string) (int64, bool) {
	if domain == "ai.onnx" {
		domain = ""
	}
	for _, o := range m.Opsets {
		d := o.Domain
		if d == "ai.onnx" {
			d = ""
		}
		if d == domain {
			return o.Version, true
		}
	}
	return 0, false
}

// wireField is one protobuf field: its number, wire type and value (the
// payload of a bytes field, the value of a varint or fixed field).
type wireField struct {
	num     protowire.Number
	typ     protowire.Type
	payload []byte
	v       uint64
}

func (f wireField) bytes() ([]byte, error) {
	if f.typ != protowire.BytesType {
		return nil, errCorrupt
	}
	return f.payload, nil
}

func (f wireField) str() (string, error) {
	b, err := f.bytes()
	return string(b), err
}

func (f wireField) varint() (uint64, error) {
	if f.typ != protowire.VarintType {
		return 0, errCorrupt
	}
	return f.v, nil
}

// scan calls fn for every field of the message in b: the payload of a bytes
// field, the value of a varint, fixed32 or fixed64 field. Every length is
// bounds-checked: a truncated or garbled message is errCorrupt.
func scan(b []byte, fn func(wireField) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errCorrupt
		}
		b = b[n:]
		f := wireField{num: num, typ: typ}
		switch typ {
		case protowire.BytesType:
			f.payload, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errCorrupt
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// varints appends the values of a repeated varint field, packed or not.
func varints(f wireField, dst []int64) ([]int64, error) {
	switch f.typ {
	case protowire.VarintType:
		return append(dst, int64(f.v)), nil
	case protowire.BytesType:
		p := f.payload
		for len(p) > 0 {
			v, n := protowire.ConsumeVarint(p)
			if n < 0 {
				return dst, errCorrupt
			}
			dst = append(dst, int64(v))
			p = p[n:]
		}
		return dst, nil
	}
	return dst, errCorrupt
}

// float32s appends the values of a repeated float field, packed or not.
func float32s(f wireField, dst []float32) ([]float32, error) {
	switch f.typ {
	case protowire.Fixed32Type:
		return append(dst, math.Float32frombits(uint32(f.v))), nil
	case protowire.BytesType:
		p := f.payload
		for len(p) > 0 {
			v, n := protowire.ConsumeFixed32(p)
			if n < 0 {
				return dst, errCorrupt
			}
			dst = append(dst, math.Float32frombits(v))
			p = p[n:]
		}
		return dst, nil
	}
	return dst, errCorrupt
}

func readOpset(b []byte) (Opset, error) {
	var o Opset
	err := scan(b, func(f wireField) error {
		switch f.num {
		case opsetDomain:
			s, err := f.str()
			o.Domain = s
			return err
		case opsetVersion:
			v, err := f.varint()
			o.Version = int64(v)
			return err
		}
		return nil
	})
	return o, err
}

func readEntry(b []byte) (key, value string, err error) {
	err = scan(b, func(f wireField) error {
		var err error
		switch f.num {
		case entryKey:
			key, err = f.str()
		case entryValue:
			value, err = f.str()
		}
		return err
	})
	return key, value, err
}

func readGraph(b []byte, g *Graph) error {
	return scan(b, func(f wireField) error {
		switch f.num {
		case graphName:
			s, err := f.str()
			g.Name = s
			return err
		case graphNode:
			p, err := f.bytes()
			if err != nil {
				return err
			}
			n, err := readNode(p)
			if err != nil {
				return fmt.Errorf("node %d: %w", len(g.Nodes), err)
			}
			g.Nodes = append(g.Nodes, n)
		case graphInitializer:
			p, err := f.bytes()
			if err != nil {
				return err
			}
			t, err := readTensor(p)
			if err != nil {
				return fmt.Errorf("initializer %d: %w", len(g.Initializers), err)
			}
			g.Initializers = append(g.Initializers, t)
		case graphInput, graphOutput:
			p, err := f.bytes()
			if err != nil {
				return err
			}
			v, err := valueInfo(p)
			if err != nil {
				return err
			}
			if f.num == graphInput {
				g.Inputs = append(g.Inputs, v)
			} else {
				g.Outputs = append(g.Outputs, v)
			}
		}
		return nil
	})
}

func readNode(b []byte) (Node, error) {
	var n Node
	err := scan(b, func(f wireField) error {
		var err error
		var s string
		switch f.num {
		case nodeInput:
			s, err = f.str()
			n.Inputs = append(n.Inputs, s)
		case nodeOutput:
			s, err = f.str()
			n.Outputs = append(n.Outputs, s)
		case nodeName:
			n.Name, err = f.str()
		case nodeOpType:
			n.OpType, err = f.str()
		case nodeDomain:
			n.Domain, err = f.str()
		case nodeAttribute:
			var p []byte
			if p, err = f.bytes(); err != nil {
				return err
			}
			var a Attr
			if a, err = readAttr(p); err != nil {
				return fmt.Errorf("attribute %d: %w", len(n.Attrs), err)
			}
			n.Attrs = append(n.Attrs, a)
		}
		return err
	})
	if err == nil && n.OpType == "" {
		err = fmt.Errorf("node %q has no op type", n.Name)
	}
	return n, err
}

func readAttr(b []byte) (Attr, error) {
	var a Attr
	err := scan(b, func(f wireField) error {
		var err error
		switch f.num {
		case attrName:
			a.Name, err = f.str()
		case attrType:
			var v uint64
			v, err = f.varint()
			a.Type = AttrType(v)
		case attrF:
			if f.typ != protowire.Fixed32Type {
				return errCorrupt
			}
			a.F = math.Float32frombits(uint32(f.v))
		case attrI:
			var v uint64
			v, err = f.varint()
			a.I = int64(v)
		case attrS:
			a.S, err = f.str()
		case attrT:
			var p []byte
			if p, err = f.bytes(); err != nil {
				return err
			}
			var t Tensor
			t, err = readTensor(p)
			a.T = &t
		case attrFloats:
			a.Floats, err = float32s(f, a.Floats)
		case attrInts:
			a.Ints, err = varints(f, a.Ints)
		case attrStrings:
			var s string
			s, err = f.str()
			a.Strings = append(a.Strings, s)
		}
		return err
	})
	return a, err
}

func readTensor(b []byte) (Tensor, error) {
	var t Tensor
	var entries [][2]string
	err := scan(b, func(f wireField) error {
		var err error
		switch f.num {
		case tensorDims:
			t.Dims, err = varints(f, t.Dims)
		case tensorDataType:
			var v uint64
			v, err = f.varint()
			t.Type = DataType(v)
		case tensorName:
			t.Name, err = f.str()
		case tensorRawData:
			var p []byte
			p, err = f.bytes()
			t.Raw = append([]byte{}, p...)
		case tensorExternalData:
			var p []byte
			if p, err = f.bytes(); err != nil {
				return err
			}
			var kv [2]string
			kv[0], kv[1], err = readEntry(p)
			entries = append(entries, kv)
		}
		return err
	})
	if err != nil {
		return t, err
	}
	for _, kv := range entries {
		switch kv[0] {
		case "location":
			t.Location = kv[1]
		case "offset", "length":
			n, err := strconv.ParseInt(kv[1], 10, 64)
			if err != nil || n < 0 {
				return t, fmt.Errorf("tensor %q: external data %s %q is not a non-negative integer", t.Name, kv[0], kv[1])
			}
			if kv[0] == "offset" {
				t.Offset = n
			} else {
				t.Length = n
			}
		}
	}
	return t, nil
}
