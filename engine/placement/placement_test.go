package placement

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine/ortlib/kernels"
	"github.com/strata-llm/strata/models/onnx"
)

// gqaGraph builds a layer-like graph around GroupQueryAttention whose
// activations have element type act.
func gqaGraph(act onnx.DataType) *onnx.Builder {
	b := onnx.NewBuilder("g", nil)
	x := b.Input("x", act, onnx.P("b"), onnx.P("s"), onnx.D(48))
	pk := b.Input("past_key", act, onnx.P("b"), onnx.D(1), onnx.D(8), onnx.D(16))
	pv := b.Input("past_value", act, onnx.P("b"), onnx.D(1), onnx.D(8), onnx.D(16))
	sl := b.Input("seqlens_k", onnx.Int32, onnx.P("b"))
	tot := b.Input("total_seq_len", onnx.Int32)
	cos := b.Initializer("cos", act, []int64{8, 8}, make([]byte, 64*act.Size()))
	sin := b.Initializer("sin", act, []int64{8, 8}, make([]byte, 64*act.Size()))
	b.Add(onnx.Node{Name: "attn", OpType: "GroupQueryAttention", Domain: "com.microsoft",
		Inputs:  []string{x, "", "", pk, pv, sl, tot, cos, sin},
		Outputs: []string{"y", "present_key", "present_value"}})
	b.Output("y", act, onnx.P("b"), onnx.P("s"), onnx.D(16))
	b.Output("present_key", act)
	b.Output("present_value", act)
	return b
}

func model(b *onnx.Builder, opsets ...onnx.Opset) *onnx.Model {
	if opsets == nil {
		opsets = onnx.DefaultOpsets()
	}
	return &onnx.Model{Graph: b.Graph, Opsets: opsets}
}

func TestTypes(t *testing.T) {
	b := onnx.NewBuilder("g", nil)
	ids := b.Input("ids", onnx.Int64, onnx.P("b"))
	tab := b.Initializer("table", onnx.Float16, []int64{4, 2}, make([]byte, 16))
	rows := b.Op("Gather", "rows", []string{tab, ids})
	f := b.Op("Cast", "f", []string{rows}, onnx.IntAttr("to", int64(onnx.Float)))
	shape := b.Op("Shape", "shape", []string{f})
	q := b.Initializer("q", onnx.Uint8, []int64{3, 1, 1}, make([]byte, 3))
	s := b.Initializer("s", onnx.Float, []int64{3, 1}, make([]byte, 12))
	y := b.Add(onnx.Node{OpType: "MatMulNBits", Domain: "com.microsoft", Inputs: []string{f, q, s}, Outputs: []string{"y"}})[0]
	parts := b.Add(onnx.Node{OpType: "Split", Inputs: []string{y, b.Initializer("sizes", onnx.Int64, []int64{2}, onnx.Int64Bytes([]int64{1, 2}))},
		Outputs: []string{"p0", "p1"}})
	norm := b.Add(onnx.Node{OpType: "SkipSimplifiedLayerNormalization", Domain: "com.microsoft",
		Inputs: []string{parts[1], parts[1], b.Float32("g", []int64{2}, []float32{1, 1})}, Outputs: []string{"n", "", "", "sum"}})
	b.Output("n", onnx.Float)
	types, err := Types(&b.Graph)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]onnx.DataType{
		rows: onnx.Float16, f: onnx.Float, shape: onnx.Int64, y: onnx.Float, parts[0]: onnx.Float, "p1": onnx.Float,
		norm[0]: onnx.Float, "sum": onnx.Float, ids: onnx.Int64,
	} {
		if got := types[name]; got != want {
			t.Errorf("type of %s = %s, want %s", name, kernels.TypeName(got), kernels.TypeName(want))
		}
	}
	if _, ok := types[""]; ok {
		t.Error("an omitted output got a type")
	}

	gqa := gqaGraph(onnx.Float16)
	types, err = Types(&gqa.Graph)
	if err != nil {
		t.Fatal(err)
	}
	if types["y"] != onnx.Float16 || types["present_key"] != onnx.Float16 {
		t.Errorf("GroupQueryAttention outputs %s %s, want float16", kernels.TypeName(types["y"]), kernels.TypeName(types["present_key"]))
	}
}

func TestTypesErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func(b *onnx.Builder)
		want  string
	}{
		{"unknown op", func(b *onnx.Builder) {
			b.Add(onnx.Node{Name: "mystery", OpType: "Frobnicate", Domain: "com.example", Inputs: []string{"x"}, Outputs: []string{"y"}})
		}, `node "mystery": op com.example:Frobnicate has no type rule`},
		{"undefined input", func(b *onnx.Builder) {
			b.Add(onnx.Node{Name: "add", OpType: "Add", Inputs: []string{"x", "nowhere"}, Outputs: []string{"y"}})
		}, `input "nowhere" is not defined before it`},
		{"cast without to", func(b *onnx.Builder) {
			b.Add(onnx.Node{Name: "cast", OpType: "Cast", Inputs: []string{"x"}, Outputs: []string{"y"}})
		}, "no 'to' attribute"},
		{"declared output type differs", func(b *onnx.Builder) {
			b.Op("Sigmoid", "y", []string{"x"})
			b.Output("y", onnx.Float16)
		}, `graph output "y" is declared float16 but computed as float`},
		{"too many inputs", func(b *onnx.Builder) {
			b.Op("Sigmoid", "y", []string{"x", "x"})
		}, "2 inputs, the op has 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := onnx.NewBuilder("g", nil)
			b.Input("x", onnx.Float)
			c.build(b)
			_, err := Types(&b.Graph)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Types: %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestCheckModel checks hand-built graphs against the pinned tables.
func TestCheckModel(t *testing.T) {
	cast25 := onnx.NewBuilder("g", nil)
	cast25.Op("Cast", "y", []string{cast25.Input("x", onnx.Float)}, onnx.IntAttr("to", int64(onnx.Float16)))
	where := onnx.NewBuilder("g", nil)
	where.Op("Where", "y", []string{where.Input("c", 9), where.Input("a", onnx.Float), where.Input("b", onnx.Float)})
	fp16MatMul := onnx.NewBuilder("g", nil)
	fp16MatMul.Op("MatMul", "y", []string{fp16MatMul.Input("a", onnx.Float16), fp16MatMul.Input("b", onnx.Float16)})
	noImport := gqaGraph(onnx.Float16)

	for _, c := range []struct {
		name      string
		model     *onnx.Model
		device    string
		reason    string // "" when every node places
		fallbacks int
	}{
		{"float attention on cuda", model(gqaGraph(onnx.Float)), "cuda", "type float of input query is not allowed for T (bfloat16, float16)", 0},
		{"float16 attention on cuda", model(gqaGraph(onnx.Float16)), "cuda", "", 0},
		{"float attention on cpu", model(gqaGraph(onnx.Float)), "cpu", "", 0},
		{"float attention on webgpu", model(gqaGraph(onnx.Float)), "webgpu", "", 0},
		{"cast at opset 25 on cuda", model(cast25, onnx.Opset{Version: 25}), "cuda",
			"opset 25 (schema version 25) is outside the registered versions [6, 8], [9, 12], [13, 18], [19, 20], [21, 22], 23+", 0},
		{"cast at opset 17 on cuda", model(cast25), "cuda", "", 0},
		{"op without a webgpu kernel", model(where, onnx.Opset{Version: 17}), "webgpu", "webgpu has no ai.onnx kernel for Where", 0},
		{"float16 MatMul on cpu runs between casts", model(fp16MatMul), "cpu", "", 1},
		{"float16 MatMul on cuda", model(fp16MatMul), "cuda", "", 0},
		{"domain not imported", model(noImport, onnx.Opset{Version: 17}), "cpu", "the model imports no opset of domain com.microsoft", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab, err := Table(c.device)
			if err != nil {
				t.Fatal(err)
			}
			misses, fallbacks, err := CheckModel(c.model, "g.onnx", tab)
			if err != nil {
				t.Fatal(err)
			}
			if fallbacks != c.fallbacks {
				t.Errorf("%d cast fallbacks, want %d", fallbacks, c.fallbacks)
			}
			if c.reason == "" {
				if len(misses) != 0 {
					t.Fatalf("misses %v, want none", misses)
				}
				return
			}
			if len(misses) != 1 || misses[0].Reason != c.reason {
				t.Fatalf("misses %v, want one with reason %q", misses, c.reason)
			}
		})
	}
}

func TestMissString(t *testing.T) {
	m := Miss{Graph: "layer_00.onnx", Node: "attn", Domain: "com.microsoft", Op: "GroupQueryAttention",
		Inputs: []onnx.DataType{onnx.Float, 0, onnx.Int32}, Reason: "why"}
	if got, want := m.String(), "layer_00.onnx  attn  com.microsoft:GroupQueryAttention  float,-,int32  why"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestOpsCoverTables: every op a kernel table lists has schema versions
// and parameter bindings here, so no kernel row is unreachable, and every
// op with a rule has a CPU kernel.
func TestOpsCoverTables(t *testing.T) {
	cpu, err := Table("cpu")
	if err != nil {
		t.Fatal(err)
	}
	for _, device := range []string{"cpu", "cuda", "webgpu"} {
		tab, err := Table(device)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range tab.Ops() {
			if _, ok := ops[op]; !ok {
				t.Errorf("%s table lists %s, which has no op rule", device, op)
			}
		}
	}
	for key := range ops {
		domain, op, _ := strings.Cut(key, ":")
		if len(cpu.Lookup(domain, op)) == 0 {
			t.Errorf("%s has a rule but no CPU kernel", key)
		}
	}
}

func TestCheckGraphErrors(t *testing.T) {
	if _, err := CheckGraph(filepath.Join(t.TempDir(), "missing.onnx"), "cpu"); err == nil {
		t.Error("a missing graph checked without error")
	}
	if _, err := CheckGraph("x.onnx", "tpu"); err == nil || !strings.Contains(err.Error(), `unknown device "tpu"`) {
		t.Errorf("device tpu: %v", err)
	}
	if _, err := Check(t.TempDir(), "cpu"); err == nil || !strings.Contains(err.Error(), "manifest.json") {
		t.Errorf("directory without a manifest: %v", err)
	}
}
