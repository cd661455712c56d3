package manifest_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// TestCheckLayerGraph reads a layer graph's declared inputs with
// onnx.GraphIO and checks them against manifests that agree and disagree.
func TestCheckLayerGraph(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layer_00.onnx")
	b := onnx.NewBuilder("layer", nil)
	b.Input(manifest.Hidden, onnx.Float, onnx.P("batch"), onnx.P("seq"), onnx.D(64))
	for _, n := range []string{manifest.PastKey, manifest.PastValue} {
		b.Input(n, onnx.Float, onnx.P("batch"), onnx.D(2), onnx.D(128), onnx.D(16))
	}
	b.Output(b.Op("Identity", "hidden_out", []string{manifest.Hidden}), onnx.Float, onnx.P("batch"), onnx.P("seq"), onnx.D(64))
	if err := b.WriteModel(path); err != nil {
		t.Fatal(err)
	}
	ins, outs, err := onnx.GraphIO(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 3 || len(outs) != 1 || ins[1].Name != manifest.PastKey {
		t.Fatalf("inputs %+v, outputs %+v", ins, outs)
	}
	var inputs []manifest.LayerInput
	for _, in := range ins {
		inputs = append(inputs, manifest.LayerInput{Name: in.Name, Dims: in.Shape()})
	}
	good := manifest.Manifest{HiddenSize: 64, NumKVHeads: 2, MaxSeqLen: 128, HeadDim: 16}
	if err := good.CheckLayerGraph(path, inputs); err != nil {
		t.Errorf("matching manifest: %v", err)
	}
	tests := []struct {
		edit func(m *manifest.Manifest)
		want string
	}{
		{func(m *manifest.Manifest) { m.MaxSeqLen = 256 }, "input past_key dimension 2 is 128 but manifest.json max_seq_len is 256"},
		{func(m *manifest.Manifest) { m.HiddenSize = 32 }, "manifest.json hidden_size is 32"},
		{func(m *manifest.Manifest) { m.HeadDim = 8 }, "manifest.json head_dim is 8"},
		{func(m *manifest.Manifest) { m.NumKVHeads = 4 }, "manifest.json num_kv_heads is 4"},
	}
	for _, tc := range tests {
		m := good
		tc.edit(&m)
		if err := m.CheckLayerGraph(path, inputs); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "layer_00.onnx") {
			t.Errorf("error %v, want %q naming the file", err, tc.want)
		}
	}
	if err := good.CheckLayerGraph(path, inputs[:1]); err == nil || !strings.Contains(err.Error(), "lacks the inputs") {
		t.Errorf("missing inputs: %v", err)
	}
	bad := good
	bad.MaxSeqLen = 64
	if err := bad.CheckLayerGraphFile(path, "layer_00.onnx"); err == nil || !strings.Contains(err.Error(), "layer_00.onnx: input past_key dimension 2 is 128 but manifest.json max_seq_len is 64") {
		t.Errorf("CheckLayerGraphFile: %v", err)
	}
	if err := good.CheckLayerGraphFile(path, "layer_00.onnx"); err != nil {
		t.Errorf("CheckLayerGraphFile of a matching graph: %v", err)
	}
	if _, _, err := onnx.GraphIO(filepath.Join(t.TempDir(), "nope.onnx")); err == nil {
		t.Error("GraphIO of a missing file succeeded")
	}
}
