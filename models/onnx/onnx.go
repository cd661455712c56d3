// Package onnx writes ONNX models (the protobuf format of onnx.proto, IR
// version 9) without generated code: the few messages an exporter needs are
// plain Go structs encoded with protowire. Large initializers go to an
// external data file written by ExternalData, one tensor at a time.
package onnx

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// IRVersion is the ONNX IR version written by default (IR 9, ONNX 1.14).
const IRVersion = 9

// OpsetVersion is the default ai.onnx opset version.
const OpsetVersion = 17

// Producer is the producer_name written into every model.
const Producer = "strata"

// DataType is TensorProto.DataType.
type DataType int32

// Tensor element types (values from onnx.proto).
const (
	Float   DataType = 1
	Uint8   DataType = 2
	Int8    DataType = 3
	Int32   DataType = 6
	Int64   DataType = 7
	Float16 DataType = 10
)

// Size is the size in bytes of one element, or 0 for unsupported types.
func (t DataType) Size() int {
	switch t {
	case Float, Int32:
		return 4
	case Uint8, Int8:
		return 1
	case Int64:
		return 8
	case Float16:
		return 2
	}
	return 0
}

// String names the type as onnx.proto does.
func (t DataType) String() string {
	switch t {
	case Float:
		return "FLOAT"
	case Uint8:
		return "UINT8"
	case Int8:
		return "INT8"
	case Int32:
		return "INT32"
	case Int64:
		return "INT64"
	case Float16:
		return "FLOAT16"
	}
	return fmt.Sprintf("DataType(%d)", int32(t))
}

// AttrType is AttributeProto.AttributeType.
type AttrType int32

// Attribute types (values from onnx.proto).
const (
	AttrFloat   AttrType = 1
	AttrInt     AttrType = 2
	AttrString  AttrType = 3
	AttrTensor  AttrType = 4
	AttrFloats  AttrType = 6
	AttrInts    AttrType = 7
	AttrStrings AttrType = 8
)

// Dim is one dimension of a value's shape: a fixed size or, when Param is
// not empty, a symbolic name such as "batch".
type Dim struct {
	Value int64
	Param string
}

// D returns a fixed dimension.
func D(n int) Dim { return Dim{Value: int64(n)} }

// P returns a symbolic dimension.
func P(name string) Dim { return Dim{Param: name} }

// ValueInfo declares a graph input or output.
type ValueInfo struct {
	Name string
	Type DataType
	// Dims is the shape; nil with Scalar false means "unknown rank".
	Dims []Dim
	// Scalar marks a rank-0 value (Dims is then ignored).
	Scalar bool
}

// Tensor is a TensorProto: inline Raw bytes (little endian) or a reference
// to external data when Location is set.
type Tensor struct {
	Name string
	Type DataType
	Dims []int64
	Raw  []byte
	// External data: file name relative to the model, byte offset and length.
	Location string
	Offset   int64
	Length   int64
}

// Attr is a node attribute; Type selects which value field is used.
type Attr struct {
	Name    string
	Type    AttrType
	F       float32
	I       int64
	S       string
	T       *Tensor
	Floats  []float32
	Ints    []int64
	Strings []string
}

// FloatAttr returns a float attribute.
func FloatAttr(name string, v float32) Attr { return Attr{Name: name, Type: AttrFloat, F: v} }

// IntAttr returns an int attribute.
func IntAttr(name string, v int64) Attr { return Attr{Name: name, Type: AttrInt, I: v} }

// StringAttr returns a string attribute.
func StringAttr(name, v string) Attr { return Attr{Name: name, Type: AttrString, S: v} }

// TensorAttr returns a tensor attribute (the tensor must be inline).
func TensorAttr(name string, t Tensor) Attr { return Attr{Name: name, Type: AttrTensor, T: &t} }

// FloatsAttr returns a list-of-floats attribute.
func FloatsAttr(name string, v ...float32) Attr { return Attr{Name: name, Type: AttrFloats, Floats: v} }

// IntsAttr returns a list-of-ints attribute.
func IntsAttr(name string, v ...int64) Attr { return Attr{Name: name, Type: AttrInts, Ints: v} }

// StringsAttr returns a list-of-strings attribute.
func StringsAttr(name string, v ...string) Attr {
	return Attr{Name: name, Type: AttrStrings, Strings: v}
}

// Node is a NodeProto. An empty output name marks an unused optional output,
// an empty input name an omitted optional input.
type Node struct {
	Name    string
	OpType  string
	Domain  string // "" is ai.onnx, "com.microsoft" for ORT contrib ops
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Graph is a GraphProto.
type Graph struct {
	Name         string
	Nodes        []Node
	Inputs       []ValueInfo
	Outputs      []ValueInfo
	Initializers []Tensor
}

// Opset is an OperatorSetIdProto.
type Opset struct {
	Domain  string
	Version int64
}

// DefaultOpsets imports ai.onnx at OpsetVersion and com.microsoft 1.
func DefaultOpsets() []Opset {
	return []Opset{{Domain: "", Version: OpsetVersion}, {Domain: "com.microsoft", Version: 1}}
}

// Model is a ModelProto.
type Model struct {
	IRVersion int64 // 0 means IRVersion
	Producer  string
	Opsets    []Opset // nil means DefaultOpsets()
	Graph     Graph
	// Metadata becomes metadata_props.
	Metadata map[string]string
}

// Field numbers from onnx.proto.
const (
	modelIRVersion    = 1
	modelProducerName = 2
	modelGraph        = 7
	modelOpsetImport  = 8
	modelMetadata     = 14

	opsetDomain  = 1
	opsetVersion = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5
	nodeDomain    = 7

	attrName    = 1
	attrF       = 2
	attrI       = 3
	attrS       = 4
	attrT       = 5
	attrFloats  = 7
	attrInts    = 8
	attrStrings = 9
	attrType    = 20

	valueInfoName = 1
	valueInfoType = 2

	typeTensorType  = 1
	tensorElemType  = 1
	tensorTypeShape = 2
	shapeDim        = 1
	dimValue        = 1
	dimParam        = 2

	tensorDims         = 1
	tensorDataType     = 2
	tensorName         = 8
	tensorRawData      = 9
	tensorExternalData = 13
	tensorDataLocation = 14

	entryKey   = 1
	entryValue = 2

	dataLocationExternal = 1
)

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// Marshal encodes the model as ONNX protobuf bytes.
func (m *Model) Marshal() ([]byte, error) {
	if err := m.Graph.validate(); err != nil {
		return nil, err
	}
	ir := m.IRVersion
	if ir == 0 {
		ir = IRVersion
	}
	producer := m.Producer
	if producer == "" {
		producer = Producer
	}
	opsets := m.Opsets
	if opsets == nil {
		opsets = DefaultOpsets()
	}
	var b []byte
	b = appendVarint(b, modelIRVersion, uint64(ir))
	b = appendString(b, modelProducerName, producer)
	g, err := m.Graph.marshal()
	if err != nil {
		return nil, err
	}
	b = appendMessage(b, modelGraph, g)
	for _, o := range opsets {
		var ob []byte
		ob = appendString(ob, opsetDomain, o.Domain)
		ob = appendVarint(ob, opsetVersion, uint64(o.Version))
		b = appendMessage(b, modelOpsetImport, ob)
	}
	for _, k := range sortedKeys(m.Metadata) {
		b = appendMessage(b, modelMetadata, entry(k, m.Metadata[k]))
	}
	return b, nil
}

// WriteFile writes the encoded model to path.
func (m *Model) WriteFile(path string) error {
	data, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	return nil
}

func entry(k, v string) []byte {
	var b []byte
	b = appendString(b, entryKey, k)
	return appendString(b, entryValue, v)
}

func (g *Graph) validate() error {
	seen := map[string]bool{}
	for _, in := range g.Inputs {
		if in.Name == "" {
			return errors.New("graph input without a name")
		}
		seen[in.Name] = true
	}
	for _, t := range g.Initializers {
		if t.Name == "" {
			return errors.New("initializer without a name")
		}
		if seen[t.Name] {
			return fmt.Errorf("initializer %q: name already defined", t.Name)
		}
		seen[t.Name] = true
	}
	for _, n := range g.Nodes {
		if n.OpType == "" {
			return fmt.Errorf("node %q has no op type", n.Name)
		}
		for _, in := range n.Inputs {
			if in != "" && !seen[in] {
				return fmt.Errorf("node %q (%s): input %q is not defined before it", n.Name, n.OpType, in)
			}
		}
		for _, out := range n.Outputs {
			if out == "" {
				continue
			}
			if seen[out] {
				return fmt.Errorf("node %q (%s): output %q is defined twice", n.Name, n.OpType, out)
			}
			seen[out] = true
		}
	}
	for _, out := range g.Outputs {
		if !seen[out.Name] {
			return fmt.Errorf("graph output %q is never computed", out.Name)
		}
	}
	return nil
}

func (g *Graph) marshal() ([]byte, error) {
	var b []byte
	for i := range g.Nodes {
		nb, err := g.Nodes[i].marshal()
		if err != nil {
			return nil, err
		}
		b = appendMessage(b, graphNode, nb)
	}
	b = appendString(b, graphName, g.Name)
	for i := range g.Initializers {
		tb, err := g.Initializers[i].marshal()
		if err != nil {
			return nil, err
		}
		b = appendMessage(b, graphInitializer, tb)
	}
	for _, v := range g.Inputs {
		b = appendMessage(b, graphInput, v.marshal())
	}
	for _, v := range g.Outputs {
		b = appendMessage(b, graphOutput, v.marshal())
	}
	return b, nil
}

func (n *Node) marshal() ([]byte, error) {
	var b []byte
	for _, in := range n.Inputs {
		b = appendString(b, nodeInput, in)
	}
	for _, out := range n.Outputs {
		b = appendString(b, nodeOutput, out)
	}
	if n.Name != "" {
		b = appendString(b, nodeName, n.Name)
	}
	b = appendString(b, nodeOpType, n.OpType)
	for i := range n.Attrs {
		ab, err := n.Attrs[i].marshal()
		if err != nil {
			return nil, fmt.Errorf("node %q: %w", n.Name, err)
		}
		b = appendMessage(b, nodeAttribute, ab)
	}
	if n.Domain != "" {
		b = appendString(b, nodeDomain, n.Domain)
	}
	return b, nil
}

func (a *Attr) marshal() ([]byte, error) {
	if a.Name == "" {
		return nil, errors.New("attribute without a name")
	}
	var b []byte
	b = appendString(b, attrName, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, attrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttrInt:
		b = appendVarint(b, attrI, uint64(a.I))
	case AttrString:
		b = appendString(b, attrS, a.S)
	case AttrTensor:
		if a.T == nil {
			return nil, fmt.Errorf("attribute %q: tensor is nil", a.Name)
		}
		tb, err := a.T.marshal()
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		b = appendMessage(b, attrT, tb)
	case AttrFloats:
		for _, f := range a.Floats {
			b = protowire.AppendTag(b, attrFloats, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(f))
		}
	case AttrInts:
		for _, v := range a.Ints {
			b = appendVarint(b, attrInts, uint64(v))
		}
	case AttrStrings:
		for _, s := range a.Strings {
			b = appendString(b, attrStrings, s)
		}
	default:
		return nil, fmt.Errorf("attribute %q: unsupported type %d", a.Name, a.Type)
	}
	b = appendVarint(b, attrType, uint64(a.Type))
	return b, nil
}

func (v ValueInfo) marshal() []byte {
	var tt []byte
	tt = appendVarint(tt, tensorElemType, uint64(v.Type))
	if v.Dims != nil || v.Scalar {
		var shape []byte
		if !v.Scalar {
			for _, d := range v.Dims {
				var db []byte
				if d.Param != "" {
					db = appendString(db, dimParam, d.Param)
				} else {
					db = appendVarint(db, dimValue, uint64(d.Value))
				}
				shape = appendMessage(shape, shapeDim, db)
			}
		}
		// An empty shape message means rank 0, so it is always written.
		tt = protowire.AppendTag(tt, tensorTypeShape, protowire.BytesType)
		tt = protowire.AppendBytes(tt, shape)
	}
	var typ []byte
	typ = appendMessage(typ, typeTensorType, tt)
	var b []byte
	b = appendString(b, valueInfoName, v.Name)
	return appendMessage(b, valueInfoType, typ)
}

// NumElements is the product of the tensor's dims.
func (t *Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

func (t *Tensor) marshal() ([]byte, error) {
	size := t.Type.Size()
	if size == 0 {
		return nil, fmt.Errorf("tensor %q: unsupported data type %v", t.Name, t.Type)
	}
	for _, d := range t.Dims {
		if d < 0 {
			return nil, fmt.Errorf("tensor %q: negative dimension in %v", t.Name, t.Dims)
		}
	}
	want := t.NumElements() * int64(size)
	var b []byte
	for _, d := range t.Dims {
		b = appendVarint(b, tensorDims, uint64(d))
	}
	b = appendVarint(b, tensorDataType, uint64(t.Type))
	b = appendString(b, tensorName, t.Name)
	if t.Location != "" {
		if t.Raw != nil {
			return nil, fmt.Errorf("tensor %q: both inline and external data", t.Name)
		}
		if t.Length != want {
			return nil, fmt.Errorf("tensor %q: external length %d, want %d for %v %v", t.Name, t.Length, want, t.Type, t.Dims)
		}
		b = appendMessage(b, tensorExternalData, entry("location", t.Location))
		b = appendMessage(b, tensorExternalData, entry("offset", fmt.Sprint(t.Offset)))
		b = appendMessage(b, tensorExternalData, entry("length", fmt.Sprint(t.Length)))
		b = appendVarint(b, tensorDataLocation, dataLocationExternal)
		return b, nil
	}
	if int64(len(t.Raw)) != want {
		return nil, fmt.Errorf("tensor %q: %d data bytes, want %d for %v %v", t.Name, len(t.Raw), want, t.Type, t.Dims)
	}
	b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
	return protowire.AppendBytes(b, t.Raw), nil
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
