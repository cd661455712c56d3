package onnx

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// field is one decoded protobuf field; msg holds the raw bytes of
// length-delimited fields so tests can descend into sub-messages.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	msg []byte
}

// decode splits a message into its fields, failing the test on bad wire data.
func decode(t *testing.T, b []byte) []field {
	t.Helper()
	var out []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.BytesType:
			f.msg, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("unexpected wire type %d", typ)
		}
		if n < 0 {
			t.Fatalf("bad field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		out = append(out, f)
	}
	return out
}

func all(fs []field, num protowire.Number) []field {
	var out []field
	for _, f := range fs {
		if f.num == num {
			out = append(out, f)
		}
	}
	return out
}

func one(t *testing.T, fs []field, num protowire.Number) field {
	t.Helper()
	got := all(fs, num)
	if len(got) != 1 {
		t.Fatalf("field %d occurs %d times, want 1", num, len(got))
	}
	return got[0]
}

func TestAttributeEncoding(t *testing.T) {
	tensor := Tensor{Name: "c", Type: Int64, Dims: []int64{2}, Raw: Int64Bytes([]int64{-1, 7})}
	tests := []struct {
		attr  Attr
		field protowire.Number
		check func(t *testing.T, fs []field)
	}{
		{FloatAttr("eps", 1e-5), attrF, func(t *testing.T, fs []field) {
			if got := math.Float32frombits(uint32(one(t, fs, attrF).v)); got != 1e-5 {
				t.Errorf("f = %v", got)
			}
		}},
		{IntAttr("axis", -1), attrI, func(t *testing.T, fs []field) {
			if got := int64(one(t, fs, attrI).v); got != -1 {
				t.Errorf("i = %d", got)
			}
		}},
		{StringAttr("mode", "linear"), attrS, func(t *testing.T, fs []field) {
			if got := string(one(t, fs, attrS).msg); got != "linear" {
				t.Errorf("s = %q", got)
			}
		}},
		{TensorAttr("value", tensor), attrT, func(t *testing.T, fs []field) {
			tf := decode(t, one(t, fs, attrT).msg)
			raw := one(t, tf, tensorRawData).msg
			if int64(binary.LittleEndian.Uint64(raw)) != -1 || binary.LittleEndian.Uint64(raw[8:]) != 7 {
				t.Errorf("raw = %v", raw)
			}
		}},
		{FloatsAttr("scales", 0.5, 2), attrFloats, func(t *testing.T, fs []field) {
			got := all(fs, attrFloats)
			if len(got) != 2 || math.Float32frombits(uint32(got[1].v)) != 2 {
				t.Errorf("floats = %v", got)
			}
		}},
		{IntsAttr("perm", 0, 2, 1), attrInts, func(t *testing.T, fs []field) {
			got := all(fs, attrInts)
			if len(got) != 3 || got[1].v != 2 {
				t.Errorf("ints = %v", got)
			}
		}},
		{StringsAttr("names", "a", "bc"), attrStrings, func(t *testing.T, fs []field) {
			got := all(fs, attrStrings)
			if len(got) != 2 || string(got[1].msg) != "bc" {
				t.Errorf("strings = %v", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.attr.Name, func(t *testing.T) {
			b, err := tc.attr.marshal()
			if err != nil {
				t.Fatal(err)
			}
			fs := decode(t, b)
			if got := string(one(t, fs, attrName).msg); got != tc.attr.Name {
				t.Errorf("name = %q", got)
			}
			if got := AttrType(one(t, fs, attrType).v); got != tc.attr.Type {
				t.Errorf("type = %d, want %d", got, tc.attr.Type)
			}
			tc.check(t, fs)
		})
	}
}

func TestModelEncoding(t *testing.T) {
	dir := t.TempDir()
	data, err := CreateExternalData(filepath.Join(dir, "m.onnx.data"))
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder("g", data)
	b.Input("x", Float, P("batch"), D(4))
	w := b.Float32("w", []int64{4, 4}, make([]float32, 16)) // 64 bytes: inline
	b.InlineLimit = 1
	big := b.Initializer("big", Float16, []int64{3}, Float16Bytes([]float32{1, 2, 3}))
	big2 := b.Initializer("big2", Uint8, []int64{5}, []byte{1, 2, 3, 4, 5})
	y := b.Op("MatMul", "y", []string{"x", w})
	b.Output(y, Float, P("batch"), D(4))
	b.Input("n", Int32)
	_ = big + big2
	if err := b.WriteModel(filepath.Join(dir, "m.onnx")); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "m.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	fs := decode(t, raw)
	if v := one(t, fs, modelIRVersion).v; v != IRVersion {
		t.Errorf("ir_version = %d", v)
	}
	if s := string(one(t, fs, modelProducerName).msg); s != "strata" {
		t.Errorf("producer = %q", s)
	}
	opsets := map[string]uint64{}
	for _, o := range all(fs, modelOpsetImport) {
		of := decode(t, o.msg)
		opsets[string(one(t, of, opsetDomain).msg)] = one(t, of, opsetVersion).v
	}
	if opsets[""] != OpsetVersion || opsets["com.microsoft"] != 1 {
		t.Errorf("opsets = %v", opsets)
	}
	g := decode(t, one(t, fs, modelGraph).msg)
	inits := all(g, graphInitializer)
	if len(inits) != 3 {
		t.Fatalf("%d initializers, want 3", len(inits))
	}
	// The first stays inline, the others are external and 64-byte aligned.
	if len(all(decode(t, inits[0].msg), tensorRawData)) != 1 {
		t.Error("w is not inline")
	}
	stored, err := os.ReadFile(filepath.Join(dir, "m.onnx.data"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]byte{Float16Bytes([]float32{1, 2, 3}), {1, 2, 3, 4, 5}} {
		tf := decode(t, inits[i+1].msg)
		if one(t, tf, tensorDataLocation).v != dataLocationExternal {
			t.Errorf("initializer %d: data_location not EXTERNAL", i+1)
		}
		kv := map[string]string{}
		for _, e := range all(tf, tensorExternalData) {
			ef := decode(t, e.msg)
			kv[string(one(t, ef, entryKey).msg)] = string(one(t, ef, entryValue).msg)
		}
		off, _ := strconv.Atoi(kv["offset"])
		n, _ := strconv.Atoi(kv["length"])
		if kv["location"] != "m.onnx.data" || off%SmallAlign != 0 || n != len(want) {
			t.Fatalf("external data entries %v", kv)
		}
		if string(stored[off:off+n]) != string(want) {
			t.Errorf("stored bytes %v, want %v", stored[off:off+n], want)
		}
	}
	// Inputs: a symbolic and a fixed dim; the scalar has an empty shape.
	ins := all(g, graphInput)
	shapeOf := func(vi []byte) []field {
		typ := decode(t, one(t, decode(t, vi), valueInfoType).msg)
		tt := decode(t, one(t, typ, typeTensorType).msg)
		return all(decode(t, one(t, tt, tensorTypeShape).msg), shapeDim)
	}
	dims := shapeOf(ins[0].msg)
	if len(dims) != 2 || string(one(t, decode(t, dims[0].msg), dimParam).msg) != "batch" ||
		one(t, decode(t, dims[1].msg), dimValue).v != 4 {
		t.Errorf("x dims wrong")
	}
	if len(shapeOf(ins[1].msg)) != 0 {
		t.Errorf("scalar input has dims")
	}
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		g    Graph
		want string
	}{
		{"undefined input", Graph{Nodes: []Node{{OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}}}, "not defined"},
		{"missing output", Graph{Outputs: []ValueInfo{{Name: "y", Type: Float}}}, "never computed"},
		{"duplicate", Graph{Inputs: []ValueInfo{{Name: "x"}}, Initializers: []Tensor{{Name: "x", Type: Float, Raw: []byte{0, 0, 0, 0}}}}, "already defined"},
		{"short data", Graph{Initializers: []Tensor{{Name: "w", Type: Float, Dims: []int64{2}, Raw: []byte{0, 0, 0, 0}}}}, "data bytes"},
		{"bad type", Graph{Initializers: []Tensor{{Name: "w", Type: 99, Raw: []byte{}}}}, "unsupported data type"},
		{"bad attr", Graph{Inputs: []ValueInfo{{Name: "x"}}, Nodes: []Node{{OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}, Attrs: []Attr{{Name: "a", Type: 42}}}}}, "unsupported type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Model{Graph: tc.g}
			_, err := m.Marshal()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFloat16(t *testing.T) {
	tests := []struct{ in, want float32 }{
		{1, 1}, {-2.5, -2.5}, {65504, 65504}, {1e-8, 0}, {0.1, 0.0999755859375},
		{float32(math.Inf(1)), float32(math.Inf(1))}, {1e6, float32(math.Inf(1))},
	}
	for _, tc := range tests {
		got := Float16ToFloat32(Float16Bytes([]float32{tc.in}))[0]
		if got != tc.want || RoundFloat16(tc.in) != tc.want {
			t.Errorf("fp16(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestORTRun writes MatMul + com.microsoft.FusedMatMul +
// com.microsoft.SkipSimplifiedLayerNormalization with external weights (one
// of them fp16, cast inside the graph) and checks ORT's numbers against Go.

func TestGraphIO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "io.onnx")
	m := Model{Graph: Graph{
		Name:    "io",
		Inputs:  []ValueInfo{{Name: "x", Type: Float, Dims: []Dim{P("batch"), D(3)}}, {Name: "n", Type: Int32, Scalar: true}},
		Outputs: []ValueInfo{{Name: "y", Type: Float, Dims: []Dim{P("batch"), D(3)}}},
		Nodes:   []Node{{OpType: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}},
	}}
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	in, out, err := GraphIO(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, m.Graph.Inputs) {
		t.Errorf("inputs %+v, want %+v", in, m.Graph.Inputs)
	}
	if !reflect.DeepEqual(out, m.Graph.Outputs) {
		t.Errorf("outputs %+v, want %+v", out, m.Graph.Outputs)
	}
	if err := os.WriteFile(path, []byte{0x3a, 0xff}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := GraphIO(path); err == nil {
		t.Error("a truncated file was read without error")
	}
}
