// Command synth writes a small synthetic Hugging Face checkpoint (export/synth:
// random weights in the real LLaMA, Qwen2 or Mistral layout) to fine-tune in
// tests and in the documented workflow, optionally with a character-level
// tokenizer.json so that text prompts work end to end.
//
//	go run ./scripts/train/synth -preset llama2 -layers 4 -tokenizer -out DIR
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-llm/strata/export/synth"
)

func main() {
	preset := flag.String("preset", "llama2", "shape: llama2, qwen2 or mistral (export/synth presets)")
	layers := flag.Int("layers", 0, "override the layer count (0: the preset's)")
	seed := flag.Uint64("seed", 0, "override the weights' seed (0: the preset's)")
	tok := flag.Bool("tokenizer", false, "also write a character-level tokenizer.json (printable ASCII)")
	out := flag.String("out", "", "checkpoint directory to write (required)")
	flag.Parse()
	if err := run(*preset, *layers, *seed, *tok, *out); err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		os.Exit(1)
	}
}

func run(preset string, layers int, seed uint64, tok bool, out string) error {
	if out == "" {
		return errors.New("-out is required")
	}
	presets := synth.Presets()
	spec, ok := presets[preset]
	if !ok {
		names := make([]string, 0, len(presets))
		for n := range presets {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("unknown preset %q: want one of %s", preset, strings.Join(names, ", "))
	}
	if layers > 0 {
		spec.Layers = layers
	}
	if seed > 0 {
		spec.Seed = seed
	}
	if err := synth.Write(out, spec); err != nil {
		return err
	}
	if !tok {
		return nil
	}
	if spec.Vocab < len(charVocab)+3 {
		return fmt.Errorf("preset %s has %d tokens, the character tokenizer needs %d", preset, spec.Vocab, len(charVocab)+3)
	}
	return writeCharTokenizer(filepath.Join(out, "tokenizer.json"), spec.BOSID)
}

// charVocab is every printable ASCII character; ids start at 3, after
// <unk>=0, <s>=1 and </s>=2 (the synth presets' BOS 1 and EOS 2).
var charVocab = func() []string {
	var v []string
	for c := ' '; c <= '~'; c++ {
		v = append(v, string(c))
	}
	return v
}()

// writeCharTokenizer writes a BPE tokenizer.json without merges: one token per
// character, BOS added by the post-processor, tokens fused on decoding.
func writeCharTokenizer(path string, bos int) error {
	vocab := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2}
	for i, c := range charVocab {
		vocab[c] = i + 3
	}
	special := func(id int, s string) map[string]any {
		return map[string]any{"id": id, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
	}
	t := map[string]any{
		"version":       "1.0",
		"truncation":    nil,
		"padding":       nil,
		"added_tokens":  []any{special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")},
		"normalizer":    nil,
		"pre_tokenizer": nil,
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{"<s>": map[string]any{"id": "<s>", "ids": []int{bos}, "tokens": []string{"<s>"}}},
		},
		"decoder": map[string]any{"type": "Fuse"},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": "<unk>", "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": []string{}},
	}
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
