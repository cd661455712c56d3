package engine

// The model families' graphs, written by models/llama and models/bloom,
// run through Load and the runner and checked against each family's plain-Go
// reference (docs/design.md, "Verification"): ULS decoding, every weight
// dtype, right-padded batches, chunked prefill and model_full.onnx.

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/strata-llm/strata/models/bloom"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// familyMaxSeq is the KV length of the family test packages.
const familyMaxSeq = 32

// familyRef is a family's plain-Go forward pass.
type familyRef interface {
	Reset()
	Forward(tokens, layers []int) ([][]float32, error)
}

// refRun does on the reference what the engine does for one sequence: the
// prompt at full depth, then each decode token through kept only (nil:
// every layer). It returns the logits after every prompt and decode token.
func refRun(t testing.TB, ref familyRef, prompt, decode, kept []int) [][]float32 {
	t.Helper()
	ref.Reset()
	logits, err := ref.Forward(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range decode {
		l, err := ref.Forward([]int{tok}, kept)
		if err != nil {
			t.Fatal(err)
		}
		logits = append(logits, l...)
	}
	return logits
}

// familyPackage writes a package of d's graphs (embed, every layer, head,
// head_last and, with full, model_full) into a temporary directory, with
// the model fields of man and the export settings opts resolves to.
func familyPackage(t testing.TB, man manifest.Manifest, d graph.Decoder, src graph.WeightSource, opts graph.Options, full bool) string {
	t.Helper()
	opts, err := d.Normalize(opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if man.Files, err = graph.WriteAll(dir, d, src, opts, full); err != nil {
		t.Fatal(err)
	}
	man.DType, man.MaxSeqLen = opts.DType, opts.MaxSeqLen
	if opts.Compute != manifest.ComputeFP32 {
		man.ComputeType = opts.Compute
	}
	if opts.DType == graph.DTypeInt4 {
		man.Int4BlockSize = opts.Int4Block
	}
	if man.EOSIDs == nil {
		man.EOSIDs = []int{}
	}
	if err := man.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadFamily loads a package written by familyPackage for the test's life.
func loadFamily(t testing.TB, dir string, opts Options) *Model {
	t.Helper()
	opts.NoTokenizer = true
	m, err := Load(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// newFamilyRunner makes a runner of batch rows whose cache keeps kept's
// layers (nil: every layer), closed with the test.
func newFamilyRunner(t testing.TB, m *Model, batch int, kept []int) *runner {
	t.Helper()
	if kept == nil {
		kept = m.allLayers()
	}
	r, err := m.runnerFor(batch, kept)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

// stepAll runs one part through layers and the head and returns a copy of
// the logits after each of its tokens, [row][token].
func stepAll(t testing.TB, r *runner, p part, layers []int) [][][]float32 {
	t.Helper()
	logits, err := r.step([]part{p}, layers, true)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][][]float32, r.batch)
	for b := range out {
		for i := 0; i < p.S; i++ {
			out[b] = append(out[b], slices.Clone(logits.at(b, i)))
		}
	}
	return out
}

// ulsLogits does what generation does for one sequence, keeping every
// logit: the prompt through every layer in one step, then each decode token
// through kept (nil: every layer) on a cache that keeps kept's layers only.
func ulsLogits(t testing.TB, m *Model, prompt, decode, kept []int) [][]float32 {
	t.Helper()
	if kept == nil {
		kept = m.allLayers()
	}
	r := newFamilyRunner(t, m, 1, kept)
	logits := stepAll(t, r, part{S: len(prompt), ids: slices.Clone(prompt), pos: []int{0}}, m.allLayers())[0]
	for j, tok := range decode {
		logits = append(logits, stepAll(t, r, part{S: 1, ids: []int{tok}, pos: []int{len(prompt) + j}}, kept)[0]...)
	}
	return logits
}

// logitDiff returns max |a−b| (+Inf for a NaN or a length mismatch) and
// the largest |b|.
func logitDiff(a, b []float32) (diff, scale float64) {
	if len(a) != len(b) {
		return math.Inf(1), 0
	}
	for i := range a {
		d := math.Abs(float64(a[i] - b[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		diff = max(diff, d)
		scale = max(scale, math.Abs(float64(b[i])))
	}
	return diff, scale
}

// positionName says which step a logits position belongs to.
func positionName(p, promptLen int) string {
	if p < promptLen {
		return fmt.Sprintf("prefill (position %d)", p)
	}
	return fmt.Sprintf("decode (position %d)", p)
}

// llamaPackage writes cfg's graphs with opts.
func llamaPackage(t testing.TB, cfg llama.Config, src llama.WeightSource, opts graph.Options, full bool) string {
	t.Helper()
	return familyPackage(t, cfg.Manifest(), cfg.Decoder(), src, opts, full)
}

// bloomConfig has 6 heads, not a power of two, so ALiBi's second slope
// branch is used; head_dim 16 is the smallest GroupQueryAttention accepts.
func bloomConfig(postLN bool) bloom.Config {
	return bloom.Config{NumLayers: 4, HiddenSize: 96, NumHeads: 6, VocabSize: 80, LayerNormEps: 1e-5,
		ResidualPostLayerNorm: postLN, BOSID: 1, EOSIDs: []int{2}}
}

// bloomPackage writes cfg's graphs with opts.
func bloomPackage(t testing.TB, cfg bloom.Config, src bloom.WeightSource, opts graph.Options, full bool) string {
	t.Helper()
	return familyPackage(t, cfg.Manifest(), cfg.Decoder(), src, opts, full)
}

// int4TiedHead is the head an int4 package with tied embeddings holds: a
// 4-bit copy of the embedding, dequantized.
func int4TiedHead(t testing.TB, src graph.WeightSource, embed string, block int) []float32 {
	t.Helper()
	data, shape, err := src.Tensor(embed)
	if err != nil {
		t.Fatal(err)
	}
	p, s, _ := graph.QuantizeInt4(data, shape[0], shape[1], block)
	return graph.DequantizeInt4(p, s, shape[0], shape[1], block)
}

// TestLlamaGraphsMatchReference runs each dtype's LLaMA-family graphs
// through the runner (prefill of five tokens at full depth, then six decode
// steps through the first and last layer only) and compares every
// position's logits with the reference. Against a reference over the
// weights as stored, every dtype must match to fp32 accuracy (int4 looser:
// MatMulNBits with accuracy_level 4 quantizes activations to int8); against
// the fp32 reference, fp16 and int4 must stay close.
func TestLlamaGraphsMatchReference(t *testing.T) {
	prompt := []int{1, 17, 5, 33, 9}
	decode := []int{4, 22, 8, 30, 11, 3}
	dtypes := []struct {
		dtype           string
		block           int     // int4 block size (0: the default)
		tolStored       float64 // absolute, vs the reference over stored weights
		tolStoredRel    float64 // relative to max |logit|, added to tolStored
		tolFP32Relative float64 // relative to max |logit|, vs the fp32 reference
	}{
		{graph.DTypeFP32, 0, 1e-4, 0, 1e-4},
		{graph.DTypeFP16, 0, 1e-4, 0, 0.01},
		{graph.DTypeInt4, 0, 0.01, 0.02, 0.25},
		{graph.DTypeInt4, 128, 0.01, 0.02, 0.35},
	}
	for ci, v := range llama.Variants() {
		cfg := v.Config
		src := llama.RandomWeights(cfg, uint64(ci+1))
		kept := []int{0, cfg.NumLayers - 1}
		fp32Ref, err := llama.NewReference(cfg, src)
		if err != nil {
			t.Fatal(err)
		}
		want32 := refRun(t, fp32Ref, prompt, decode, kept)
		for _, dt := range dtypes {
			name := v.Name + "/" + dt.dtype
			if dt.block != 0 {
				name += fmt.Sprintf("/block%d", dt.block)
			}
			t.Run(name, func(t *testing.T) {
				opts := graph.Options{DType: dt.dtype, MaxSeqLen: familyMaxSeq, Int4Block: dt.block}
				block := cmp.Or(dt.block, graph.Int4BlockSize)
				m := loadFamily(t, llamaPackage(t, cfg, src, opts, false), Options{})
				ref, err := llama.NewReference(cfg, graph.StoredWeights(src, dt.dtype, llama.EmbedName, block))
				if err != nil {
					t.Fatal(err)
				}
				if cfg.TieWordEmbeddings && dt.dtype == graph.DTypeInt4 {
					if err := ref.SetHead(int4TiedHead(t, src, llama.EmbedName, block)); err != nil {
						t.Fatal(err)
					}
				}
				want := refRun(t, ref, prompt, decode, kept)
				got := ulsLogits(t, m, prompt, decode, kept)
				var worst, worst32 float64
				for p := range want {
					d, storedScale := logitDiff(got[p], want[p])
					d32, scale := logitDiff(got[p], want32[p])
					worst, worst32 = max(worst, d), max(worst32, d32/scale)
					if tol := dt.tolStored + dt.tolStoredRel*storedScale; d > tol {
						t.Errorf("%s: max |Δlogit| = %.3g vs reference over stored weights, tolerance %.3g", positionName(p, len(prompt)), d, tol)
					}
					if d32 > dt.tolFP32Relative*scale {
						t.Errorf("%s: max |Δlogit| = %.3g vs fp32 reference (max |logit| %.3g), tolerance %g relative",
							positionName(p, len(prompt)), d32, scale, dt.tolFP32Relative)
					}
				}
				t.Logf("max |Δlogit| %.2g (stored weights), %.2g relative (fp32)", worst, worst32)
			})
		}
	}
}

// TestBloomGraphsMatchReference runs the fp32 graphs of both residual
// variants through the runner (prefill at full depth, then decode through
// every layer and through two subsets, as ULS does) against the plain-Go
// reference, and the fp16 and int4 graphs against the reference over their
// stored weights.
func TestBloomGraphsMatchReference(t *testing.T) {
	prompt, decode := []int{1, 17, 5, 33, 9, 70, 12}, []int{4, 22, 8, 30, 61}
	for _, tc := range []struct {
		postLN bool
		dtype  string
		tol    float64 // absolute
		tolRel float64 // relative to max |logit|, added to tol
	}{
		{false, graph.DTypeFP32, 1e-4, 0}, {true, graph.DTypeFP32, 1e-4, 0},
		{false, graph.DTypeFP16, 1e-4, 0},
		// MatMulNBits with accuracy_level 4 quantizes activations to int8.
		{false, graph.DTypeInt4, 0.01, 0.02},
	} {
		t.Run(fmt.Sprintf("postln=%v/%s", tc.postLN, tc.dtype), func(t *testing.T) {
			cfg := bloomConfig(tc.postLN)
			src := bloom.RandomWeights(cfg, 11)
			m := loadFamily(t, bloomPackage(t, cfg, src, graph.Options{DType: tc.dtype, MaxSeqLen: familyMaxSeq}, false), Options{})
			ref, err := bloom.NewReference(cfg, bloom.StoredWeights(src, tc.dtype))
			if err != nil {
				t.Fatal(err)
			}
			if tc.dtype == graph.DTypeInt4 {
				if err := ref.SetHead(int4TiedHead(t, src, bloom.EmbedName, graph.Int4BlockSize)); err != nil {
					t.Fatal(err)
				}
			}
			var worst float64
			for _, kept := range [][]int{nil, {0, 2}, {1, 3}} {
				want := refRun(t, ref, prompt, decode, kept)
				got := ulsLogits(t, m, prompt, decode, kept)
				for p := range want {
					d, scale := logitDiff(got[p], want[p])
					worst = max(worst, d)
					if tol := tc.tol + tc.tolRel*scale; d > tol {
						t.Errorf("layers %v, position %d: max |Δlogit| %.3g exceeds %.3g", kept, p, d, tol)
					}
				}
			}
			t.Logf("max |Δlogit| %.2g", worst)
		})
	}
}

// TestFamiliesBatchRightPadding prefills two prompts of different lengths
// in one step (the shorter one right-padded), then decodes both rows
// together through two kept layers; each row must match the reference run
// on its own, at every prompt position and every decode step.
func TestFamiliesBatchRightPadding(t *testing.T) {
	llamaCfg := llama.Variants()[1].Config // GQA
	llamaSrc := llama.RandomWeights(llamaCfg, 7)
	llamaRef, err := llama.NewReference(llamaCfg, llamaSrc)
	if err != nil {
		t.Fatal(err)
	}
	bloomCfg := bloomConfig(false)
	bloomSrc := bloom.RandomWeights(bloomCfg, 5)
	bloomRef, err := bloom.NewReference(bloomCfg, bloomSrc)
	if err != nil {
		t.Fatal(err)
	}
	opts := graph.Options{MaxSeqLen: familyMaxSeq}
	for _, tc := range []struct {
		name    string
		dir     func(t *testing.T) string
		ref     familyRef
		prompts [][]int
		decode  [][]int
		kept    []int
	}{
		{"llama", func(t *testing.T) string { return llamaPackage(t, llamaCfg, llamaSrc, opts, false) }, llamaRef,
			[][]int{{1, 17, 5, 33, 9, 12}, {1, 40, 2}}, [][]int{{4, 22, 8, 30}, {6, 13, 44, 19}}, []int{0, 2}},
		{"bloom", func(t *testing.T) string { return bloomPackage(t, bloomCfg, bloomSrc, opts, false) }, bloomRef,
			[][]int{{1, 17, 5, 33, 9, 12}, {1, 40, 2}}, [][]int{{4, 22, 8}, {6, 13, 44}}, []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := make([][][]float32, len(tc.prompts))
			for b := range tc.prompts {
				want[b] = refRun(t, tc.ref, tc.prompts[b], tc.decode[b], tc.kept)
			}
			m := loadFamily(t, tc.dir(t), Options{})
			r := newFamilyRunner(t, m, 2, tc.kept)
			s := len(tc.prompts[0])
			padded := slices.Concat(tc.prompts[0], tc.prompts[1], make([]int, s-len(tc.prompts[1])))
			got := stepAll(t, r, part{S: s, ids: padded, pos: []int{0, 0}}, m.allLayers())
			lens := []int{len(tc.prompts[0]), len(tc.prompts[1])}
			for b := range tc.prompts {
				for p := 0; p < lens[b]; p++ {
					if d, _ := logitDiff(got[b][p], want[b][p]); d > 1e-4 {
						t.Errorf("row %d prefill position %d: max |Δlogit| = %.3g", b, p, d)
					}
				}
			}
			for j := range tc.decode[0] {
				ids := []int{tc.decode[0][j], tc.decode[1][j]}
				got := stepAll(t, r, part{S: 1, ids: ids, pos: slices.Clone(lens)}, tc.kept)
				for b := range tc.prompts {
					if d, _ := logitDiff(got[b][0], want[b][len(tc.prompts[b])+j]); d > 1e-4 {
						t.Errorf("row %d decode position %d: max |Δlogit| = %.3g", b, lens[b], d)
					}
					lens[b]++
				}
			}
		})
	}
}

// TestLlamaChunkedPrefill feeds a prompt in two steps (the second with
// more than one token on top of a non-empty cache, GroupQueryAttention's
// "subsequent prompt" case) and checks every position against the
// reference.
func TestLlamaChunkedPrefill(t *testing.T) {
	cfg := llama.Variants()[1].Config
	src := llama.RandomWeights(cfg, 4)
	m := loadFamily(t, llamaPackage(t, cfg, src, graph.Options{MaxSeqLen: familyMaxSeq}, false), Options{})
	ref, err := llama.NewReference(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int{3, 14, 15, 9, 26, 5}
	want, err := ref.Forward(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newFamilyRunner(t, m, 1, nil)
	got := stepAll(t, r, part{S: 4, ids: slices.Clone(prompt[:4]), pos: []int{0}}, m.allLayers())[0]
	got = append(got, stepAll(t, r, part{S: 2, ids: slices.Clone(prompt[4:]), pos: []int{4}}, m.allLayers())[0]...)
	for p := range want {
		if d, _ := logitDiff(got[p], want[p]); d > 1e-4 {
			t.Errorf("position %d: max |Δlogit| = %.3g", p, d)
		}
	}
}

// TestFamiliesFullGraph runs each family's model_full.onnx (every layer in
// one graph; BLOOM's bias built once for every layer, its sequence length
// read off input_ids) through a Monolithic Load: the prompt, then each
// decode token at full depth, against the reference.
func TestFamiliesFullGraph(t *testing.T) {
	opts := graph.Options{MaxSeqLen: familyMaxSeq}
	type fullCase struct {
		name string
		dir  func(t *testing.T) string
		ref  func(t *testing.T) familyRef
	}
	var cases []fullCase
	for _, ci := range []int{0, 2} { // untied, and tied with bias
		v := llama.Variants()[ci]
		src := llama.RandomWeights(v.Config, 3)
		cases = append(cases, fullCase{"llama/" + v.Name,
			func(t *testing.T) string { return llamaPackage(t, v.Config, src, opts, true) },
			func(t *testing.T) familyRef {
				ref, err := llama.NewReference(v.Config, src)
				if err != nil {
					t.Fatal(err)
				}
				return ref
			}})
	}
	bcfg := bloomConfig(false)
	bsrc := bloom.RandomWeights(bcfg, 3)
	cases = append(cases, fullCase{"bloom",
		func(t *testing.T) string { return bloomPackage(t, bcfg, bsrc, opts, true) },
		func(t *testing.T) familyRef {
			ref, err := bloom.NewReference(bcfg, bsrc)
			if err != nil {
				t.Fatal(err)
			}
			return ref
		}})
	prompt, decode := []int{1, 17, 5, 33}, []int{4, 22, 8}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := refRun(t, tc.ref(t), prompt, decode, nil)
			m := loadFamily(t, tc.dir(t), Options{Monolithic: true})
			if m.g.full == nil {
				t.Fatal("a Monolithic Load did not open model_full.onnx")
			}
			f, err := m.NewForward()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := f.Step(prompt)
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range decode {
				l, err := f.Step([]int{tok})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, l...)
			}
			for p := range want {
				if d, _ := logitDiff(got[p], want[p]); d > 1e-4 {
					t.Errorf("position %d: max |Δlogit| = %.3g", p, d)
				}
			}
		})
	}
}
