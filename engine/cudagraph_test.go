package engine

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// TestCapturedDecodeBookkeeping runs the code path of captured fused decode
// steps on the CPU, where ORT ignores the graph ids: each runner's fused
// binding gets a graph id of its own and reads seqlens_k from a buffer
// written before each run, a finished batch's runner (and its graph) serves
// the next batch of its size, and greedy ids equal the per-layer chain's,
// on host memory and on the device-memory code path, in a ragged batch.
func TestCapturedDecodeBookkeeping(t *testing.T) {
	dir, _, _ := testPackage(t)
	reqs := []Request{
		{PromptIDs: []int{1, 5, 9}, MaxTokens: 6, Schedule: "uls", Speedup: 2},
		{PromptIDs: []int{7, 3, 2, 8, 4, 6, 1}, MaxTokens: 4, Schedule: "uls", Speedup: 2},
	}
	for _, resident := range []bool{false, true} {
		ref, err := Load(dir, Options{NoTokenizer: true, Threads: 1, Fuse: FuseOff, DeviceResident: resident})
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.GenerateBatch(t.Context(), reqs, nil)
		if err != nil {
			t.Fatal(err)
		}
		ref.Close()

		m, err := Load(dir, Options{NoTokenizer: true, Threads: 1, Fuse: FuseOn, DeviceResident: resident})
		if err != nil {
			t.Fatal(err)
		}
		m.g.fusion.capture = true // what a CUDA package asks for
		m.pool = &runnerPool{}    // and what Load then makes
		for round := 1; round <= 2; round++ {
			got, err := m.GenerateBatch(t.Context(), reqs, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range reqs {
				if !slices.Equal(got[i].TokenIDs, want[i].TokenIDs) {
					t.Errorf("resident=%v round %d request %d: captured path %v, per-layer %v", resident, round, i, got[i].TokenIDs, want[i].TokenIDs)
				}
			}
			if len(m.g.fusion.graphs.sessions) == 0 {
				t.Fatalf("resident=%v: no fused session was opened for capture", resident)
			}
			// One graph id per runner binding; the second round reuses the
			// first round's runner, and with it its graph.
			if n := m.g.fusion.graphs.next; n != 1 {
				t.Errorf("resident=%v: %d graph ids after %d rounds, want 1", resident, n, round)
			}
			if len(m.pool.idle) != 1 {
				t.Errorf("resident=%v: %d idle runners after round %d, want 1", resident, len(m.pool.idle), round)
			}
		}
		m.Close()
	}
}

// TestCapturable: LLaMA layers (total_seq_len read by GroupQueryAttention
// only) are captured; a layer with any other reader of total_seq_len, as
// BLOOM's ALiBi bias, is not.
func TestCapturable(t *testing.T) {
	dir, _, _ := testPackage(t)
	man, err := manifest.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := onnx.ReadModel(filepath.Join(dir, man.Files.Layers[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !capturable(layer) {
		t.Error("the LLaMA test package's layer is not capturable")
	}
	for _, tc := range []struct {
		name  string
		nodes []onnx.Node
		want  bool
	}{
		{"attention only", []onnx.Node{{OpType: "GroupQueryAttention", Inputs: []string{"q", "k", "v", "pk", "pv", manifest.SeqLensK, manifest.TotalSeqLen}}}, true},
		{"alibi sized by total", []onnx.Node{
			{OpType: "Unsqueeze", Inputs: []string{manifest.TotalSeqLen, "axes"}},
			{OpType: "GroupQueryAttention", Inputs: []string{"q", "k", "v", "pk", "pv", manifest.SeqLensK, manifest.TotalSeqLen}},
		}, false},
		{"no attention", []onnx.Node{{OpType: "MatMul", Inputs: []string{"a", "b"}}}, true},
	} {
		if got := capturable(&onnx.Model{Graph: onnx.Graph{Nodes: tc.nodes}}); got != tc.want {
			t.Errorf("%s: capturable %v, want %v", tc.name, got, tc.want)
		}
	}
}
