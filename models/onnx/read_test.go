package onnx

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestReadModelRoundTrip writes a small graph with Builder (one initializer
// inline, one in the external data file) and reads it back.
func TestReadModelRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "g.onnx")
	data, err := CreateExternalData(path + ".data")
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder("g", data)
	b.InlineLimit = 64
	x := b.Input("x", Float16, P("batch"), D(8))
	big := b.Float32("w", []int64{8, 4}, make([]float32, 32)) // 128 bytes: external
	small := b.Initializer("axes", Int64, []int64{1}, Int64Bytes([]int64{-1}))
	xf := b.Op("Cast", "xf", []string{x}, IntAttr("to", int64(Float)))
	y := b.Op("MatMul", "y", []string{xf, big})
	b.Add(Node{Name: "norm", OpType: "SkipSimplifiedLayerNormalization", Domain: "com.microsoft",
		Inputs: []string{y, y, "", small}, Outputs: []string{"out", "", "", "sum"},
		Attrs: []Attr{FloatAttr("epsilon", 1e-5), IntsAttr("perm", 0, 2, 1), FloatsAttr("f", 0.5, -2),
			StringAttr("mode", "a"), StringsAttr("names", "p", "q"),
			TensorAttr("value", Tensor{Name: "v", Type: Int32, Dims: []int64{2}, Raw: Int32Bytes([]int32{3, 4})})}})
	b.Output("out", Float, P("batch"), D(4))
	if err := b.WriteModel(path); err != nil {
		t.Fatal(err)
	}

	m, err := ReadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.IRVersion != IRVersion || m.Producer != Producer {
		t.Errorf("ir %d producer %q", m.IRVersion, m.Producer)
	}
	if !reflect.DeepEqual(m.Opsets, DefaultOpsets()) {
		t.Errorf("opsets %v, want %v", m.Opsets, DefaultOpsets())
	}
	for _, c := range []struct {
		domain string
		want   int64
		ok     bool
	}{{"", OpsetVersion, true}, {"ai.onnx", OpsetVersion, true}, {"com.microsoft", 1, true}, {"ai.onnx.ml", 0, false}} {
		if v, ok := m.OpsetVersion(c.domain); v != c.want || ok != c.ok {
			t.Errorf("OpsetVersion(%q) = %d, %v; want %d, %v", c.domain, v, ok, c.want, c.ok)
		}
	}
	g := m.Graph
	if g.Name != "g" {
		t.Errorf("graph name %q", g.Name)
	}
	if !reflect.DeepEqual(g.Inputs, b.Graph.Inputs) || !reflect.DeepEqual(g.Outputs, b.Graph.Outputs) {
		t.Errorf("inputs %+v outputs %+v, want %+v %+v", g.Inputs, g.Outputs, b.Graph.Inputs, b.Graph.Outputs)
	}
	if !reflect.DeepEqual(g.Nodes, b.Graph.Nodes) {
		t.Errorf("nodes\n got %+v\nwant %+v", g.Nodes, b.Graph.Nodes)
	}
	if len(g.Initializers) != 2 {
		t.Fatalf("%d initializers, want 2", len(g.Initializers))
	}
	w, axes := g.Initializers[0], g.Initializers[1]
	if w.Name != "w" || w.Type != Float || !reflect.DeepEqual(w.Dims, []int64{8, 4}) || w.Raw != nil ||
		w.Location != "g.onnx.data" || w.Length != 128 || w.Offset%SmallAlign != 0 {
		t.Errorf("external initializer %+v", w)
	}
	if axes.Name != "axes" || axes.Type != Int64 || axes.Location != "" || !reflect.DeepEqual(axes.Raw, Int64Bytes([]int64{-1})) {
		t.Errorf("inline initializer %+v", axes)
	}
}

// TestReadModelPackedFields reads repeated fields written packed, as other
// ONNX writers do, which strata's own writer never produces.
func TestReadModelPackedFields(t *testing.T) {
	var dims, ints []byte
	for _, v := range []uint64{2, 3} {
		dims = protowire.AppendVarint(dims, v)
	}
	for _, v := range []int64{-1, 7} {
		ints = protowire.AppendVarint(ints, uint64(v))
	}
	var tensor []byte
	tensor = appendMessage(tensor, tensorDims, dims)
	tensor = appendVarint(tensor, tensorDataType, uint64(Float))
	tensor = appendString(tensor, tensorName, "w")
	var attr []byte
	attr = appendString(attr, attrName, "axes")
	attr = appendMessage(attr, attrInts, ints)
	attr = appendVarint(attr, attrType, uint64(AttrInts))
	var node []byte
	node = appendString(node, nodeInput, "w")
	node = appendString(node, nodeOutput, "y")
	node = appendString(node, nodeOpType, "ReduceSum")
	node = appendMessage(node, nodeAttribute, attr)
	var graph []byte
	graph = appendMessage(graph, graphNode, node)
	graph = appendMessage(graph, graphInitializer, tensor)
	var model []byte
	model = appendMessage(model, modelGraph, graph)

	m, err := ParseModel(model)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Graph.Initializers[0].Dims; !reflect.DeepEqual(got, []int64{2, 3}) {
		t.Errorf("packed dims %v", got)
	}
	if got := m.Graph.Nodes[0].Attrs[0].Ints; !reflect.DeepEqual(got, []int64{-1, 7}) {
		t.Errorf("packed ints %v", got)
	}
	if len(m.Opsets) != 0 || m.Opsets == nil {
		t.Errorf("opsets %v, want empty", m.Opsets)
	}
}

func TestReadModelBadInput(t *testing.T) {
	dir := t.TempDir()
	good, err := (&Model{Graph: Graph{Name: "g", Nodes: []Node{{OpType: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		Inputs: []ValueInfo{{Name: "x", Type: Float}}, Outputs: []ValueInfo{{Name: "y", Type: Float}}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var noOpType []byte
	noOpType = appendMessage(noOpType, modelGraph, appendMessage(nil, graphNode, appendString(nil, nodeName, "n")))
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "holds no graph"},
		{"truncated", good[:len(good)-3], "not a valid ONNX protobuf"},
		{"garbage", []byte{0xff, 0xff, 0xff, 0xff}, "not a valid ONNX protobuf"},
		{"node without op type", noOpType, `node "n" has no op type`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".onnx")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadModel(p)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("ReadModel: %v, want an error naming %s and %q", err, p, c.want)
			}
		})
	}
	if _, err := ReadModel(filepath.Join(dir, "missing.onnx")); err == nil {
		t.Fatal("missing file read without error")
	}
}
