package onnx

import (
	"slices"
	"strings"
	"testing"
)

// composeParts are three small graphs: a "embed" (x → hidden), a "layer"
// (hidden, shared → hidden_out) used twice, and a "head" (hidden → y).
func composeParts(t *testing.T) (embed, layer, head *Model) {
	t.Helper()
	build := func(name string, f func(b *Builder)) *Model {
		b := NewBuilder(name, nil)
		f(b)
		if err := b.Err(); err != nil {
			t.Fatal(err)
		}
		data, err := (&Model{Graph: b.Graph}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseModel(data) // what ReadModel gives
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	embed = build("embed", func(b *Builder) {
		b.Input("x", Float, P("n"))
		b.Float32("w", []int64{1}, []float32{2})
		b.Op("Mul", "hidden", []string{"x", "w"})
		b.Output("hidden", Float, P("n"))
	})
	layer = build("layer", func(b *Builder) {
		b.Input("hidden", Float, P("n"))
		b.Input("shared", Float, D(1))
		b.Add(Node{Name: "add", OpType: "Add", Inputs: []string{"hidden", "shared"}, Outputs: []string{"hidden_out"}})
		b.Output("hidden_out", Float, P("n"))
	})
	head = build("head", func(b *Builder) {
		b.Input("hidden", Float, P("n"))
		b.Op("Neg", "y", []string{"hidden"})
		b.Output("y", Float, P("n"))
	})
	embed.Graph.Initializers = append(embed.Graph.Initializers, Tensor{Name: "big", Type: Float, Dims: []int64{4}, Location: "weights.data", Offset: 64, Length: 16})
	return embed, layer, head
}

func TestCompose(t *testing.T) {
	embed, layer, head := composeParts(t)
	parts := []Part{
		{Prefix: "e/", Model: embed, Rename: map[string]string{"x": "x", "hidden": "h0"}},
		{Prefix: "l0/", Model: layer, Rename: map[string]string{"hidden": "h0", "hidden_out": "h1", "shared": "shared"}},
		{Prefix: "l1/", Model: layer, Rename: map[string]string{"hidden": "h1", "hidden_out": "h2", "shared": "shared"}},
		{Prefix: "h/", Model: head, Rename: map[string]string{"hidden": "h2", "y": "y"}},
	}
	m, err := Compose("fused", parts, []string{"x", "shared"}, []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	var ins, nodes, inits []string
	for _, v := range m.Graph.Inputs {
		ins = append(ins, v.Name)
	}
	for _, n := range m.Graph.Nodes {
		nodes = append(nodes, n.Name+":"+strings.Join(n.Inputs, ",")+"→"+strings.Join(n.Outputs, ","))
	}
	for _, t := range m.Graph.Initializers {
		inits = append(inits, t.Name)
	}
	if want := []string{"x", "shared"}; !slices.Equal(ins, want) {
		t.Errorf("inputs %v, want %v", ins, want)
	}
	if want := []string{"e/Mul_1:x,e/w→h0", "l0/add:h0,shared→h1", "l1/add:h1,shared→h2", "h/Neg_1:h2→y"}; !slices.Equal(nodes, want) {
		t.Errorf("nodes %v, want %v", nodes, want)
	}
	if want := []string{"e/w", "e/big"}; !slices.Equal(inits, want) {
		t.Errorf("initializers %v, want %v", inits, want)
	}
	if big := m.Graph.Initializers[1]; big.Location != "weights.data" || big.Offset != 64 || big.Length != 16 || big.Raw != nil {
		t.Errorf("external initializer %+v: location, offset and length must be kept", big)
	}
	if len(m.Graph.Outputs) != 1 || m.Graph.Outputs[0].Name != "y" || m.Graph.Outputs[0].Type != Float {
		t.Errorf("outputs %+v", m.Graph.Outputs)
	}
	// The parts are not changed.
	if layer.Graph.Nodes[0].Inputs[0] != "hidden" || embed.Graph.Initializers[0].Name != "w" {
		t.Error("Compose changed a part")
	}
	if _, err := m.Marshal(); err != nil {
		t.Fatal(err)
	}

	graphAttr := *head
	graphAttr.Graph.Nodes = []Node{{Name: "if", OpType: "If", Inputs: []string{"hidden"}, Outputs: []string{"y"}, Attrs: []Attr{{Name: "then_branch", Type: 5}}}}
	for _, tc := range []struct {
		name            string
		parts           []Part
		inputs, outputs []string
		want            string
	}{
		{"no parts", nil, nil, nil, "no parts"},
		{"unchained", parts[1:], []string{"shared"}, []string{"y"}, `input "hidden" (as "h0")`},
		{"output not computed", parts, []string{"x", "shared"}, []string{"z"}, `output "z"`},
		{"unread input", parts, []string{"x", "shared", "extra"}, []string{"y"}, `input "extra" is read by no part`},
		{"graph attribute", []Part{parts[0], parts[1], parts[2], {Prefix: "h/", Model: &graphAttr, Rename: parts[3].Rename}}, []string{"x", "shared"}, []string{"y"}, `attribute "then_branch"`},
	} {
		_, err := Compose("fused", tc.parts, tc.inputs, tc.outputs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
