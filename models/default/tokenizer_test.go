package defaultmodel

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/strata-llm/strata/engine/tokenizer"
)

// TestTokenizerGolden checks that strata's Go tokenizer encodes like Hugging Face's
// `tokenizers` on the embedded tokenizer.json. testdata/tokenizer_golden.json is
// written by scripts/train/tokenizer_golden.mjs (see docs/default-model.md).
func TestTokenizerGolden(t *testing.T) {
	raw, err := ReadFile("tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromJSON(raw)
	if err != nil {
		t.Fatalf("engine/tokenizer cannot load the default tokenizer: %v", err)
	}
	data, err := os.ReadFile("testdata/tokenizer_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden []struct {
		Text    string   `json:"text"`
		IDs     []int    `json:"ids"`
		Tokens  []string `json:"tokens"`
		Decoded string   `json:"decoded"`
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden) < 5 {
		t.Fatalf("only %d golden rows", len(golden))
	}
	for _, g := range golden {
		enc, err := tok.Encode(g.Text, true)
		if err != nil {
			t.Errorf("Encode(%q): %v", g.Text, err)
			continue
		}
		if fmt.Sprint(enc.IDs) != fmt.Sprint(g.IDs) {
			t.Errorf("Encode(%q)\n got ids %v\nwant ids %v", g.Text, enc.IDs, g.IDs)
		}
		if got := tok.Decode(g.IDs, true); got != g.Decoded {
			t.Errorf("Decode(%v) = %q, want %q", g.IDs, got, g.Decoded)
		}
	}
	// The prompt FormatPrompt builds starts with <s> and ends with the "Spanish:" tokens.
	enc, err := tok.Encode(FormatPrompt("In the beginning God created the heaven and the earth."), true)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(enc.IDs) != fmt.Sprint(golden[0].IDs) {
		t.Errorf("FormatPrompt encodes to %v, want %v", enc.IDs, golden[0].IDs)
	}
}
