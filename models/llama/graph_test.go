package llama

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
)

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
	cfg := Variants()[2].Config
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
	cfg := Variants()[2].Config // tied embeddings
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
