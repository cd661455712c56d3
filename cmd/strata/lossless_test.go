package main

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/export"
	defaultmodel "github.com/strata-llm/strata/models/default"
)

// TestLosslessBuiltInModel: on both built-in checkpoints (trained weights,
// where drafts are accepted and rejected for real), lossless decoding gives
// exactly the full-depth greedy ids, one prompt at a time and as a batch of 8.
func TestLosslessBuiltInModel(t *testing.T) {
	sentences := []string{
		"In the beginning God created the heaven and the earth.",
		"And God said, Let there be light: and there was light.",
		"The LORD is my shepherd; I shall not want.",
		"Blessed are the meek: for they shall inherit the earth.",
		"And the earth was without form, and void.",
		"Love is patient, love is kind.",
		"And he said unto them, Go ye into all the world.",
		"For God so loved the world.",
	}
	for _, ckpt := range []string{"base", "uls2"} {
		t.Run(ckpt, func(t *testing.T) {
			pkg := filepath.Join(t.TempDir(), "pkg")
			if err := export.Export(context.Background(), export.Options{In: filepath.Join("../../models/default", ckpt), Out: pkg, DType: "fp32"}); err != nil {
				t.Fatal(err)
			}
			m, err := engine.Load(pkg, engine.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var full []engine.Request
			for _, s := range sentences {
				full = append(full, engine.Request{Prompt: defaultmodel.FormatPrompt(s), MaxTokens: 24, Schedule: "uls", Speedup: 1})
			}
			want, err := m.GenerateBatch(context.Background(), full, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				speedup float64
				draft   int
			}{{2, 2}, {2, 4}, {3, 3}} {
				reqs := make([]engine.Request, len(full))
				for i := range full {
					reqs[i] = full[i]
					reqs[i].Speedup, reqs[i].Lossless, reqs[i].Draft = tc.speedup, true, tc.draft
				}
				got, err := m.GenerateBatch(context.Background(), reqs, nil)
				if err != nil {
					t.Fatal(err)
				}
				one, err := m.Generate(context.Background(), reqs[0])
				if err != nil {
					t.Fatal(err)
				}
				for i := range reqs {
					if !reflect.DeepEqual(got[i].TokenIDs, want[i].TokenIDs) {
						t.Errorf("uls:%g draft %d, row %d: %v, full depth %v", tc.speedup, tc.draft, i, got[i].TokenIDs, want[i].TokenIDs)
					}
				}
				if !reflect.DeepEqual(one.TokenIDs, want[0].TokenIDs) {
					t.Errorf("uls:%g draft %d alone: %v, full depth %v", tc.speedup, tc.draft, one.TokenIDs, want[0].TokenIDs)
				}
				spec := got[0].Stats.Group.Lossless
				t.Logf("uls:%g draft %d batch 8: %d of %d drafts accepted, agreement by position %.2f", tc.speedup, tc.draft, spec.Accepted, spec.Drafted, spec.Agreement)
			}
		})
	}
}
