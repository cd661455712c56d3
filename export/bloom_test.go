package export

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/export/synth"
	"github.com/strata-llm/strata/models/bloom"
	"github.com/strata-llm/strata/models/family"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/refmath"
)

// referenceGreedy decodes n greedy tokens on the reference as the engine
// does: the prompt at full depth, then each new token through kept only.
func referenceGreedy(t *testing.T, ref family.Reference, prompt, kept []int, n int) []int {
	t.Helper()
	ref.Reset()
	logits, err := ref.Forward(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for {
		tok := refmath.Argmax(logits[len(logits)-1])
		ids = append(ids, tok)
		if len(ids) == n {
			return ids
		}
		if logits, err = ref.Forward([]int{tok}, kept); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExportBloom exports a synthetic BLOOM checkpoint (6 heads, so both
// ALiBi slope branches) in every dtype, loads it in the engine and checks
// the manifest, then that greedy decoding under the full (uls:1), uls:2 and
// uls:3 schedules gives the ids of the reference over the weights as the
// package stores them. int4 only has to decode: MatMulNBits with
// accuracy_level 4 quantizes activations to int8, which flips near-tied
// greedy choices (models/bloom bounds its logits instead).
func TestExportBloom(t *testing.T) {
	prompt := []int{1, 17, 5, 33, 9, 70, 12}
	for _, tc := range []struct {
		dtype  string
		greedy bool
	}{{graph.DTypeFP32, true}, {graph.DTypeFP16, true}, {graph.DTypeInt4, false}} {
		t.Run(tc.dtype, func(t *testing.T) {
			s := synth.BloomLike()
			s.Layers = 6    // uls:3 keeps 2
			s.ProjScale = 4 // greedy ids that vary
			ckpt, pkg := exported(t, s, tc.dtype, tc.dtype == graph.DTypeFP32)
			m, err := manifest.Load(pkg)
			if err != nil {
				t.Fatal(err)
			}
			if m.Architecture != bloom.Family || m.Rope.Theta != 0 || m.Rope.Scaling != nil || m.NumHeads != 6 || m.NumKVHeads != 6 ||
				m.HeadDim != 16 || m.IntermediateSize != 4*s.Hidden || m.MaxSeqLen != 64 || m.DType != tc.dtype {
				t.Fatalf("manifest %+v", m)
			}
			src, err := OpenSource(ckpt)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ref, err := src.Model.NewReference(bloom.StoredWeights(src.Weights, tc.dtype))
			if err != nil {
				t.Fatal(err)
			}
			model, err := engine.Load(pkg, engine.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer model.Close()
			const n = 8
			for _, sched := range []string{"uls:1", "uls:2", "uls:3"} {
				res, err := model.Generate(context.Background(), engine.Request{PromptIDs: prompt, MaxTokens: n, IgnoreEOS: true, Schedule: sched})
				if err != nil {
					t.Fatal(err)
				}
				wantLayers := map[string]int{"uls:1": 6, "uls:2": 3, "uls:3": 2}[sched]
				if len(res.KeptLayers) != wantLayers {
					t.Fatalf("%s kept %v", sched, res.KeptLayers)
				}
				want := referenceGreedy(t, ref, prompt, res.KeptLayers, n)
				t.Logf("%s (layers %v): %v", sched, res.KeptLayers, res.TokenIDs)
				if len(res.TokenIDs) != n || tc.greedy && !slices.Equal(res.TokenIDs, want) {
					t.Errorf("%s (layers %v): greedy ids %v, reference %v", sched, res.KeptLayers, res.TokenIDs, want)
				}
			}
		})
	}
}

// TestBloomReferenceFile checks that the exported reference weights carry
// the BLOOM config, so a verifier can rebuild the family's reference
// forward from the package alone, and that it matches the checkpoint's.
func TestBloomReferenceFile(t *testing.T) {
	s := synth.BloomLike()
	_, pkg := exported(t, s, graph.DTypeFP32, true)
	m, err := manifest.Load(pkg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := safetensors.OpenCheckpoint(filepath.Join(pkg, m.Files.Reference))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	model, err := family.FromConfig(m.Architecture, []byte(c.Metadata(configKey)))
	if err != nil {
		t.Fatal(err)
	}
	fromManifest, err := family.FromManifest(m, c.Has)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(model.Config()) != fmt.Sprint(fromManifest.Config()) {
		t.Errorf("stored config %+v, from the manifest %+v", model.Config(), fromManifest.Config())
	}
	ref, err := model.NewReference(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := referenceGreedy(t, ref, []int{1, 2, 3}, nil, 3); len(got) != 3 {
		t.Fatalf("greedy %v", got)
	}
}

// TestBloomUnprefixedNames exports a checkpoint saved from BloomModel (no
// "transformer." prefix) to the same graphs as the prefixed one.
func TestBloomUnprefixedNames(t *testing.T) {
	s := synth.BloomLike()
	s.Layers = 1
	_, a := exported(t, s, graph.DTypeFP32, false)
	s.Unprefixed = true
	_, b := exported(t, s, graph.DTypeFP32, false)
	for _, f := range []string{manifest.EmbedFile, manifest.LayerFile(0), manifest.HeadFile} {
		x, err := os.ReadFile(filepath.Join(a, f+".data"))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, f+".data"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between prefixed and unprefixed tensor names", f)
		}
	}
}
