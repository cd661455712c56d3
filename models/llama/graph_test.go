package llama

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
)

// testConfigs are small random models covering the family's variants. The
// graphs these write run through ONNX Runtime in the engine's tests
// (engine/families_test.go), which compare them with this package's
// reference.
func testConfigs() []Config {
	base := Config{ModelType: "llama", NumLayers: 3, HiddenSize: 64, NumHeads: 4, NumKVHeads: 4, HeadDim: 16,
		IntermediateSize: 48, VocabSize: 64, MaxPositionEmbeddings: 128, RopeTheta: 10000, RMSNormEps: 1e-5, BOSID: 1, EOSIDs: []int{2}}
	mistral := base
	mistral.ModelType, mistral.NumKVHeads, mistral.IntermediateSize, mistral.VocabSize = "mistral", 2, 40, 50
	qwen := base
	qwen.ModelType, qwen.NumLayers, qwen.NumKVHeads, qwen.AttentionBias, qwen.TieWordEmbeddings, qwen.RopeTheta = "qwen2", 2, 2, true, true, 1e6
	headDim := base
	headDim.HiddenSize, headDim.NumKVHeads, headDim.HeadDim, headDim.IntermediateSize = 40, 1, 16, 56
	llama3 := base
	llama3.NumHeads, llama3.NumKVHeads, llama3.HeadDim = 2, 1, 16
	llama3.RopeScaling = &manifest.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16}
	return []Config{base, mistral, qwen, headDim, llama3}
}

// maxDiff returns max |a-b| and the largest |b|.
func maxDiff(a, b []float32) (diff, scale float64) {
	for i := range a {
		d := float64(a[i] - b[i])
		if d < 0 {
			d = -d
		}
		diff = max(diff, d)
		s := float64(b[i])
		if s < 0 {
			s = -s
		}
		scale = max(scale, s)
	}
	return diff, scale
}

// TestWriteAllFiles writes a whole package and checks the file names it
// returns for the manifest and that every graph has its external data.
func TestWriteAllFiles(t *testing.T) {
	cfg := testConfigs()[2]
	dir := t.TempDir()
	files, err := WriteAll(dir, cfg, RandomWeights(cfg, 9), GraphOptions{MaxSeqLen: 32}, true)
	if err != nil {
		t.Fatal(err)
	}
	if files.Embed != manifest.EmbedFile || len(files.Layers) != cfg.NumLayers || files.Layers[1] != "layer_01.onnx" ||
		files.Head != manifest.HeadFile || files.HeadLast != manifest.HeadLastFile || files.Full != manifest.FullFile {
		t.Fatalf("files %+v", files)
	}
	for _, f := range append(files.Layers, files.Embed, files.Head, files.HeadLast, files.Full) {
		if _, err := os.Stat(filepath.Join(dir, f+".data")); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestReferenceSetHead: a replaced head changes the logits as the new
// matrix says (doubling it doubles them), and a matrix of the wrong size is
// refused.
func TestReferenceSetHead(t *testing.T) {
	cfg := testConfigs()[2] // tied embeddings
	src := RandomWeights(cfg, 3)
	ref, err := NewReference(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Forward([]int{1, 7, 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.SetHead(make([]float32, cfg.VocabSize*cfg.HiddenSize-1)); err == nil || !strings.Contains(err.Error(), "want") {
		t.Errorf("a head of the wrong size: error %v", err)
	}
	double := append([]float32(nil), src[EmbedName].Data...)
	for i := range double {
		double[i] *= 2
	}
	if err := ref.SetHead(double); err != nil {
		t.Fatal(err)
	}
	ref.Reset()
	got, err := ref.Forward([]int{1, 7, 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		for i := range want[p] {
			if got[p][i] != 2*want[p][i] { // scaling by 2 is exact in floating point
				t.Fatalf("position %d logit %d: %g with the doubled head, want %g", p, i, got[p][i], 2*want[p][i])
			}
		}
	}
}
