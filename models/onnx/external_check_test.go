package onnx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// externalTensor returns a 4-byte float tensor stored at location.
func externalTensor(name, location string, offset int64) Tensor {
	return Tensor{Name: name, Type: Float, Dims: []int64{1}, Location: location, Offset: offset, Length: 4}
}

// modelWith encodes a graph whose only content is the initializer t.
func modelWith(t *testing.T, tensor Tensor) []byte {
	t.Helper()
	m := Model{Graph: Graph{Name: "g", Initializers: []Tensor{tensor},
		Outputs: []ValueInfo{{Name: tensor.Name, Type: tensor.Type, Dims: []Dim{D(1)}}}}}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nestedModel encodes model{graph{node{attribute{g: graph{initializer}}}}}
// by hand: an If-style subgraph whose initializer is external.
func nestedModel(t *testing.T, location string) []byte {
	t.Helper()
	inner := Graph{Name: "then", Initializers: []Tensor{externalTensor("w", location, 0)}}
	ib, err := inner.marshal()
	if err != nil {
		t.Fatal(err)
	}
	var attr []byte
	attr = appendString(attr, attrName, "then_branch")
	attr = appendMessage(attr, attrG, ib)
	attr = appendVarint(attr, attrType, 5) // GRAPH
	var node []byte
	node = appendString(node, nodeOpType, "If")
	node = appendMessage(node, nodeAttribute, attr)
	var graph []byte
	graph = appendMessage(graph, graphNode, node)
	var model []byte
	model = appendVarint(model, modelIRVersion, IRVersion)
	return appendMessage(model, modelGraph, graph)
}

// rawTensorModel encodes a model whose one initializer has the given
// external_data entries, written by hand so that any key or value is possible.
func rawTensorModel(entries [][2]string, external bool) []byte {
	var tb []byte
	tb = appendString(tb, tensorName, "w")
	for _, kv := range entries {
		tb = appendMessage(tb, tensorExternalData, entry(kv[0], kv[1]))
	}
	if external {
		tb = appendVarint(tb, tensorDataLocation, dataLocationExternal)
	}
	var graph []byte
	graph = appendMessage(graph, graphInitializer, tb)
	return appendMessage(nil, modelGraph, graph)
}

func TestCheckExternalData(t *testing.T) {
	root := t.TempDir()
	pkg := filepath.Join(root, "pkg")
	if err := os.MkdirAll(filepath.Join(pkg, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(root, "secret")
	for _, f := range []string{secret, filepath.Join(pkg, "w.data"), filepath.Join(pkg, "sub", "w.data")} {
		if err := os.WriteFile(f, make([]byte, 64), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"out.data": secret, "in.data": "w.data", "subdir": "sub", "dev.data": "/dev/zero"} {
		if err := os.Symlink(target, filepath.Join(pkg, name)); err != nil {
			t.Fatal(err)
		}
	}
	// A real graph written by the builder with its external data file.
	data, err := CreateExternalData(filepath.Join(pkg, "real.onnx.data"))
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder("real", data)
	b.InlineLimit = 1
	b.Input("x", Float, D(4))
	b.Float32("w", []int64{4}, []float32{1, 2, 3, 4})
	b.Output(b.Op("Add", "y", []string{"x", "w"}), Float, D(4))
	if err := b.WriteModel(filepath.Join(pkg, "real.onnx")); err != nil {
		t.Fatal(err)
	}
	if err := data.Close(); err != nil {
		t.Fatal(err)
	}
	realModel, err := os.ReadFile(filepath.Join(pkg, "real.onnx"))
	if err != nil {
		t.Fatal(err)
	}

	constNode := func(location string) []byte {
		tensor := externalTensor("c", location, 0)
		m := Model{Graph: Graph{Name: "g", Nodes: []Node{{OpType: "Constant", Outputs: []string{"c"},
			Attrs: []Attr{TensorAttr("value", tensor)}}}}}
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	tests := []struct {
		name  string
		model []byte
		want  string // "" means accepted
	}{
		{"builder graph", realModel, ""},
		{"plain location", modelWith(t, externalTensor("w", "w.data", 8)), ""},
		{"subdirectory", modelWith(t, externalTensor("w", "sub/w.data", 0)), ""},
		{"link inside", modelWith(t, externalTensor("w", "in.data", 0)), ""},
		{"directory link inside", modelWith(t, externalTensor("w", "subdir/w.data", 0)), ""},
		{"dotted file name", modelWith(t, externalTensor("w", "./w.data", 0)), ""},
		{"inline only", modelWith(t, Tensor{Name: "w", Type: Float, Dims: []int64{1}, Raw: make([]byte, 4)}), ""},
		{"parent", modelWith(t, externalTensor("w", "../secret", 0)), "leaves the model directory"},
		{"etc passwd", modelWith(t, externalTensor("w", "../../etc/passwd", 0)), "leaves the model directory"},
		{"parent inside path", modelWith(t, externalTensor("w", "sub/../../secret", 0)), "leaves the model directory"},
		{"absolute", modelWith(t, externalTensor("w", "/etc/passwd", 0)), "must be a path relative"},
		{"backslash", modelWith(t, externalTensor("w", `..\secret`, 0)), "must be a path relative"},
		{"drive letter", modelWith(t, externalTensor("w", "C:secret", 0)), "must be a path relative"},
		{"symlink out", modelWith(t, externalTensor("w", "out.data", 0)), "resolves outside the model directory"},
		{"device file", modelWith(t, externalTensor("w", "dev.data", 0)), "resolves outside"},
		{"directory", modelWith(t, externalTensor("w", "sub", 0)), "not a regular file"},
		{"missing file", modelWith(t, externalTensor("w", "nope.data", 0)), "no such file"},
		{"memory address tag", modelWith(t, externalTensor("w", ortMemoryAddressTag, 0)), "in-memory address tag"},
		{"offset past end", modelWith(t, externalTensor("w", "w.data", 62)), "beyond the end"},
		{"constant attribute escapes", constNode("../secret"), "leaves the model directory"},
		{"nested graph escapes", nestedModel(t, "../secret"), "leaves the model directory"},
		{"nested graph inside", nestedModel(t, "w.data"), ""},
		{"no location", rawTensorModel([][2]string{{"offset", "0"}}, true), "no location"},
		{"two locations", rawTensorModel([][2]string{{"location", "w.data"}, {"location", "../secret"}}, true), "two locations"},
		{"negative length", rawTensorModel([][2]string{{"location", "w.data"}, {"length", "-4"}}, true), "non-negative"},
		{"location without flag", rawTensorModel([][2]string{{"location", "/etc/passwd"}}, false), "must be a path relative"},
		{"empty location", rawTensorModel([][2]string{{"location", ""}}, true), "location is empty"},
		{"empty file", nil, "no graph"},
		{"truncated", realModel[:len(realModel)/2], "not a valid ONNX protobuf"},
		{"garbage", []byte(strings.Repeat("\xff", 32)), "not a valid ONNX protobuf"},
		{"graph with wrong wire type", protowire.AppendVarint(protowire.AppendTag(nil, modelGraph, protowire.VarintType), 1), "not a valid ONNX protobuf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(pkg, "case.onnx")
			if tc.name == "builder graph" {
				path = filepath.Join(pkg, "real.onnx")
			} else if err := os.WriteFile(path, tc.model, 0o644); err != nil {
				t.Fatal(err)
			}
			err := CheckExternalData(path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckExternalData = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckExternalData = %v, want an error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the model file", err)
			}
		})
	}
	if err := CheckExternalData(filepath.Join(pkg, "absent.onnx")); err == nil {
		t.Error("a missing model file was accepted")
	}
}

func TestCheckExternalDataDeepNesting(t *testing.T) {
	// Graphs nested beyond maxNesting are refused without exhausting the stack.
	graph := appendMessage(nil, graphInitializer, appendString(nil, tensorName, "w"))
	for i := 0; i < maxNesting+5; i++ {
		attr := appendMessage(appendString(nil, attrName, "body"), attrG, graph)
		node := appendMessage(appendString(nil, nodeOpType, "Loop"), nodeAttribute, attr)
		graph = appendMessage(nil, graphNode, node)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "deep.onnx")
	if err := os.WriteFile(path, appendMessage(nil, modelGraph, graph), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckExternalData(path); err == nil || !strings.Contains(err.Error(), "nest more than") {
		t.Errorf("deeply nested graphs: %v", err)
	}
}

// FuzzCheckExternalData checks that no byte string makes the checker panic
// and that an accepted model never references a file outside its directory.
func FuzzCheckExternalData(f *testing.F) {
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "w.data"), make([]byte, 16), 0o644); err != nil {
		f.Fatal(err)
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		f.Fatal(err)
	}
	seed := func(tensor Tensor) []byte {
		m := Model{Graph: Graph{Name: "g", Initializers: []Tensor{tensor},
			Outputs: []ValueInfo{{Name: tensor.Name, Type: Float, Dims: []Dim{D(1)}}}}}
		b, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(seed(externalTensor("w", "w.data", 0)))
	f.Add(seed(externalTensor("w", "../w.data", 0)))
	f.Add(rawTensorModel([][2]string{{"location", "w.data"}, {"offset", "12"}, {"length", "4"}}, true))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &externalChecker{dir: dir, root: root, sizes: map[string]int64{}}
		if err := c.model(data); err != nil {
			return
		}
		for loc := range c.sizes {
			if checkLocation(loc) != nil {
				t.Fatalf("accepted location %q", loc)
			}
		}
	})
}
