package export

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/export/synth"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

// TestOpenReference builds the reference of a BLOOM and a LLaMA package
// from the checkpoint and from the package's reference weights, and
// rejects weights of another model.
func TestOpenReference(t *testing.T) {
	bloomCkpt, bloomPkg := exported(t, synth.BloomLike(), graph.DTypeFP32, true)
	llamaCkpt, llamaPkg := exported(t, synth.Llama2Like(), graph.DTypeFP32, true)
	for _, tc := range []struct {
		name, pkg, weights, err string
	}{
		{"bloom checkpoint", bloomPkg, bloomCkpt, ""},
		{"bloom reference file", bloomPkg, filepath.Join(bloomPkg, ReferenceFile), ""},
		{"llama checkpoint", llamaPkg, llamaCkpt, ""},
		{"llama reference file", llamaPkg, filepath.Join(llamaPkg, ReferenceFile), ""},
		{"llama weights for a bloom package", bloomPkg, llamaCkpt, "llama model"},
		{"bloom weights for a llama package", llamaPkg, bloomCkpt, "bloom model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifest.Load(tc.pkg)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := OpenReference(tc.weights, m)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			logits, err := ref.Forward([]int{1, 5, 9}, nil)
			if err != nil || len(logits) != 3 || len(logits[2]) != m.VocabSize {
				t.Fatalf("forward: %d positions, %v", len(logits), err)
			}
		})
	}
}
