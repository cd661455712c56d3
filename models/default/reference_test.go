package defaultmodel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-llm/strata/engine/tokenizer"
	"github.com/strata-llm/strata/export/hf"
	"github.com/strata-llm/strata/models/llama"
)

// TestGreedyMatchesPyTorch decodes verses with strata's plain-Go reference forward
// pass on the written checkpoint and compares the greedy tokens with those of the
// PyTorch training code (testdata/translation_golden.json, written by
// scripts/train/translate.py --golden-out): same weights, same prompt ids, same
// schedule (full-depth prefill, then the kept layers for every new token).
func TestGreedyMatchesPyTorch(t *testing.T) {
	data, err := os.ReadFile("testdata/translation_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Schedule string `json:"schedule"`
		Kept     []int  `json:"kept"`
		Cases    []struct {
			Ref       string `json:"ref"`
			EN        string `json:"en"`
			PromptIDs []int  `json:"prompt_ids"`
			IDs       []int  `json:"ids"`
			Text      string `json:"text"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	dir := filepath.Join(t.TempDir(), "ck")
	if err := WriteCheckpoint(dir); err != nil {
		t.Fatal(err)
	}
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatalf("export/hf cannot open the default checkpoint: %v", err)
	}
	defer ck.Close()
	if ck.ULS.DefaultSchedule != golden.Schedule {
		t.Errorf("checkpoint default schedule %q, golden decoded with %q", ck.ULS.DefaultSchedule, golden.Schedule)
	}
	ref, err := llama.NewReference(ck.Config, ck)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ReadFile("tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	eos := 2
	for _, c := range golden.Cases {
		t.Run(c.Ref, func(t *testing.T) {
			enc, err := tok.Encode(FormatPrompt(c.EN), true)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(enc.IDs) != fmt.Sprint(c.PromptIDs) {
				t.Fatalf("prompt ids %v, want %v", enc.IDs, c.PromptIDs)
			}
			ref.Reset()
			logits, err := ref.Forward(c.PromptIDs, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			next := llama.Argmax(logits[len(logits)-1])
			for next != eos && len(got) < len(c.IDs)+1 {
				got = append(got, next)
				logits, err = ref.Forward([]int{next}, golden.Kept)
				if err != nil {
					t.Fatal(err)
				}
				next = llama.Argmax(logits[0])
			}
			if fmt.Sprint(got) != fmt.Sprint(c.IDs) {
				t.Errorf("greedy ids\n got %v\nwant %v", got, c.IDs)
			}
			if text := tok.Decode(got, true); text != c.Text {
				t.Errorf("text %q, want %q", text, c.Text)
			}
		})
	}
}
