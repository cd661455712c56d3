package llama

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-llm/strata/engine/ort/orttest"
	"github.com/strata-llm/strata/models/manifest"
	ortgo "github.com/yalue/onnxruntime_go"
)

// TestBatchRightPadding prefills two prompts of different lengths in one
// batch (the shorter one right-padded, seqlens_k per row), then decodes
// both rows together through the kept layers; each row must match the
// reference run on its own.
func TestBatchRightPadding(t *testing.T) {
	cfg := testConfigs()[1] // GQA
	src := RandomWeights(cfg, 7)
	dir := writePackage(t, cfg, src, GraphOptions{MaxSeqLen: testMaxSeq})
	r := newRunner(t, dir, cfg, testMaxSeq, 2)
	ref, err := NewReference(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int{{1, 17, 5, 33, 9, 12}, {1, 40, 2}}
	decode := [][]int{{4, 22, 8, 30}, {6, 13, 44, 19}}
	kept := []int{0, 2}

	want := make([][][]float32, 2)
	for b := range prompts {
		want[b] = orttest.RefRun(t, ref, prompts[b], decode[b], kept)
	}

	const pad = 0
	s := len(prompts[0])
	padded := [][]int{prompts[0], append(append([]int{}, prompts[1]...), make([]int, s-len(prompts[1]))...)}
	for i := len(prompts[1]); i < s; i++ {
		padded[1][i] = pad
	}
	lens := []int{len(prompts[0]), len(prompts[1])}
	got := r.Step(padded, []int32{int32(lens[0] - 1), int32(lens[1] - 1)}, int32(s), nil)
	for b := range prompts {
		for p := 0; p < lens[b]; p++ {
			if d, _ := maxDiff(got[b][p], want[b][p]); d > 1e-4 {
				t.Errorf("row %d prefill position %d: max |Δlogit| = %.3g", b, p, d)
			}
		}
	}
	for j := range decode[0] {
		ids := [][]int{{decode[0][j]}, {decode[1][j]}}
		seqlens := []int32{int32(lens[0]), int32(lens[1])}
		got := r.Step(ids, seqlens, int32(max(lens[0], lens[1])+1), kept)
		for b := range prompts {
			if d, _ := maxDiff(got[b][0], want[b][len(prompts[b])+j]); d > 1e-4 {
				t.Errorf("row %d decode position %d: max |Δlogit| = %.3g", b, lens[b], d)
			}
			lens[b]++
		}
	}
}

// TestFullGraph runs model_full.onnx (prefill, then full-depth decode) and
// compares it with the reference.
func TestFullGraph(t *testing.T) {
	for _, ci := range []int{0, 2} { // untied, and tied with bias
		cfg := testConfigs()[ci]
		t.Run(testNames[ci], func(t *testing.T) {
			src := RandomWeights(cfg, 3)
			dir := t.TempDir()
			path, err := WriteFull(dir, cfg, src, GraphOptions{MaxSeqLen: testMaxSeq})
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(path) != manifest.FullFile {
				t.Errorf("wrote %s", path)
			}
			ref, err := NewReference(cfg, src)
			if err != nil {
				t.Fatal(err)
			}
			prompt, decode := []int{1, 17, 5, 33}, []int{4, 22, 8}
			want := orttest.RefRun(t, ref, prompt, decode, nil)

			got := orttest.RunFull(t, path, cfg.Decoder().Dims(), testMaxSeq, prompt, decode)
			for p := range want {
				if d, _ := maxDiff(got[p], want[p]); d > 1e-4 {
					t.Errorf("position %d: max |Δlogit| = %.3g", p, d)
				}
			}
		})
	}
}

// TestWriteAllHeadLast writes a whole package and checks that head_last
// gives the last position's row of head's logits.
func TestWriteAllHeadLast(t *testing.T) {
	cfg := testConfigs()[2]
	src := RandomWeights(cfg, 9)
	dir := t.TempDir()
	files, err := WriteAll(dir, cfg, src, GraphOptions{MaxSeqLen: testMaxSeq}, true)
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
	initORT(t)
	head := ortSession(t, filepath.Join(dir, manifest.HeadFile), []string{manifest.Hidden}, []string{manifest.Logits})
	last := ortSession(t, filepath.Join(dir, manifest.HeadLastFile), []string{manifest.Hidden}, []string{manifest.Logits})
	const b, s = 2, 3
	hidden := make([]float32, b*s*cfg.HiddenSize)
	for i := range hidden {
		hidden[i] = float32(i%7) - 3
	}
	ht := must(ortgo.NewTensor(ortgo.NewShape(b, s, int64(cfg.HiddenSize)), hidden))(t)
	defer ht.Destroy()
	all, one := []ortgo.Value{nil}, []ortgo.Value{nil}
	if err := head.Run([]ortgo.Value{ht}, all); err != nil {
		t.Fatal(err)
	}
	defer all[0].Destroy()
	if err := last.Run([]ortgo.Value{ht}, one); err != nil {
		t.Fatal(err)
	}
	defer one[0].Destroy()
	if shape := one[0].GetShape(); !shape.Equals(ortgo.NewShape(b, 1, int64(cfg.VocabSize))) {
		t.Fatalf("head_last shape %v", shape)
	}
	full := split(all[0].(*ortgo.Tensor[float32]).GetData(), b, s, cfg.VocabSize)
	lastRows := split(one[0].(*ortgo.Tensor[float32]).GetData(), b, 1, cfg.VocabSize)
	for r := 0; r < b; r++ {
		if d, _ := maxDiff(lastRows[r][0], full[r][s-1]); d > 1e-5 {
			t.Errorf("row %d: head_last differs from head by %g", r, d)
		}
	}
}

// TestChunkedPrefill feeds a prompt in two chunks (the second one with
// sequence_length > 1 on top of a non-empty cache, GroupQueryAttention's
// "subsequent prompt" case) and checks it against the reference.
func TestChunkedPrefill(t *testing.T) {
	cfg := testConfigs()[1]
	src := RandomWeights(cfg, 4)
	dir := writePackage(t, cfg, src, GraphOptions{MaxSeqLen: testMaxSeq})
	r := newRunner(t, dir, cfg, testMaxSeq, 1)
	ref, err := NewReference(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int{3, 14, 15, 9, 26, 5}
	want, err := ref.Forward(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Step([][]int{prompt[:4]}, []int32{3}, 4, nil)[0]
	got = append(got, r.Step([][]int{prompt[4:]}, []int32{5}, 6, nil)[0]...)
	for p := range want {
		if d, _ := maxDiff(got[p], want[p]); d > 1e-4 {
			t.Errorf("position %d: max |Δlogit| = %.3g", p, d)
		}
	}
}
