package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tinyJSON builds a small tokenizer.json around a BPE model with the given
// vocab and merges, and optional overrides of top-level and model keys.
func tinyJSON(t testing.TB, vocab []string, merges any, top map[string]any, modelKeys map[string]any) []byte {
	t.Helper()
	v := map[string]int{}
	for i, s := range vocab {
		v[s] = i
	}
	model := map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "vocab": v, "merges": merges}
	for k, x := range modelKeys {
		model[k] = x
	}
	doc := map[string]any{"version": "1.0", "added_tokens": []any{}, "normalizer": nil, "pre_tokenizer": nil,
		"post_processor": nil, "decoder": nil, "model": model}
	for k, x := range top {
		doc[k] = x
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMergeForms(t *testing.T) {
	vocab := []string{"a", "b", "c", "ab", "abc", "bc"}
	tests := []struct {
		name   string
		merges any
		want   []string
	}{
		{"strings", []string{"a b", "ab c"}, []string{"abc"}},
		{"pairs", [][]string{{"a", "b"}, {"ab", "c"}}, []string{"abc"}},
		{"rank order", []string{"b c", "a b", "ab c"}, []string{"a", "bc"}},
		{"no merges", nil, []string{"a", "b", "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := FromJSON(tinyJSON(t, vocab, tc.merges, nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			enc, err := tk.Encode("abc", false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(enc.Tokens, tc.want) {
				t.Fatalf("tokens %q, want %q", enc.Tokens, tc.want)
			}
		})
	}
}

func TestModelOptions(t *testing.T) {
	tests := []struct {
		name      string
		vocab     []string
		merges    []string
		modelKeys map[string]any
		text      string
		want      []string
	}{
		{"unk", []string{"<unk>", "a"}, nil, map[string]any{"unk_token": "<unk>"}, "axxa", []string{"a", "<unk>", "<unk>", "a"}},
		{"fuse unk", []string{"<unk>", "a"}, nil, map[string]any{"unk_token": "<unk>", "fuse_unk": true}, "axxa", []string{"a", "<unk>", "a"}},
		{"no unk drops", []string{"a"}, nil, nil, "axa", []string{"a", "a"}},
		{"continuing prefix", []string{"a", "##b", "##c", "a##b", "ab"}, []string{"a ##b"}, map[string]any{"continuing_subword_prefix": "##"}, "abc", []string{"ab", "##c"}},
		{"end of word suffix", []string{"a", "b", "b</w>", "ab</w>"}, []string{"a b</w>"}, map[string]any{"end_of_word_suffix": "</w>"}, "ab", []string{"ab</w>"}},
		{"ignore merges", []string{"a", "b", "c", "ab", "abc"}, []string{"a b"}, map[string]any{"ignore_merges": true}, "abc", []string{"abc"}},
		{"merges without ignore", []string{"a", "b", "c", "ab", "abc"}, []string{"a b"}, nil, "abc", []string{"ab", "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := FromJSON(tinyJSON(t, tc.vocab, tc.merges, nil, tc.modelKeys))
			if err != nil {
				t.Fatal(err)
			}
			enc, err := tk.Encode(tc.text, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(enc.Tokens, tc.want) {
				t.Fatalf("tokens %q, want %q", enc.Tokens, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	vocab := []string{"a", "b"}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not json", []byte("{"), "parse tokenizer.json"},
		{"no model", []byte(`{"normalizer": null}`), "no model"},
		{"unigram", []byte(`{"model": {"type": "Unigram", "vocab": []}}`), `model "Unigram" is not supported`},
		{"dropout", tinyJSON(t, vocab, nil, nil, map[string]any{"dropout": 0.1}), "dropout"},
		{"merge out of vocab", tinyJSON(t, vocab, []string{"a c"}, nil, nil), `"c" is not in the vocab`},
		{"bad merge", tinyJSON(t, vocab, []string{"ab"}, nil, nil), `not of the form`},
		{"unk missing", tinyJSON(t, vocab, nil, nil, map[string]any{"unk_token": "<unk>"}), "unk_token"},
		{"normalizer", tinyJSON(t, vocab, nil, map[string]any{"normalizer": map[string]any{"type": "Precompiled"}}, nil), `normalizer "Precompiled" is not supported`},
		{"pre-tokenizer", tinyJSON(t, vocab, nil, map[string]any{"pre_tokenizer": map[string]any{"type": "UnicodeScripts"}}, nil), `pre_tokenizer "UnicodeScripts" is not supported`},
		{"decoder", tinyJSON(t, vocab, nil, map[string]any{"decoder": map[string]any{"type": "CTC"}}, nil), `decoder "CTC" is not supported`},
		{"post-processor", tinyJSON(t, vocab, nil, map[string]any{"post_processor": map[string]any{"type": "Foo"}}, nil), `post_processor "Foo" is not supported`},
		{"bad regex", tinyJSON(t, vocab, nil, map[string]any{"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"Regex": "(("}, "behavior": "Isolated"}}, nil), "pre_tokenizer Split: regex"},
		{"bad behavior", tinyJSON(t, vocab, nil, map[string]any{"pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"String": "x"}, "behavior": "Sideways"}}, nil), "split behavior"},
		{"template token", tinyJSON(t, vocab, nil, map[string]any{"post_processor": map[string]any{"type": "TemplateProcessing", "single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>"}}}, "special_tokens": map[string]any{}}}, nil), `"<s>" is not in special_tokens`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromJSON(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadPathAndDir(t *testing.T) {
	dir := t.TempDir()
	data := tinyJSON(t, []string{"a"}, nil, nil, nil)
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "tokenizer.json")} {
		tk, err := Load(p)
		if err != nil {
			t.Fatalf("Load(%s): %v", p, err)
		}
		if id, ok := tk.TokenToID("a"); !ok || id != 0 || tk.VocabSize() != 1 {
			t.Fatalf("TokenToID(a) = %d, %v; VocabSize %d", id, ok, tk.VocabSize())
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

func TestInvalidUTF8(t *testing.T) {
	tk, err := FromJSON(tinyJSON(t, []string{"a"}, nil, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Encode("a\xffa", true); err == nil {
		t.Fatal("Encode accepted invalid UTF-8")
	}
}

// TestSpecialTokenInfo checks BOS/EOS/special ids on LLaMA-2.
func TestSpecialTokenInfo(t *testing.T) {
	tk := loadFamily(t, "llama2")
	if id, ok := tk.BOS(); !ok || id != 1 {
		t.Errorf("BOS = %d, %v; want 1", id, ok)
	}
	if id, ok := tk.EOS(); !ok || id != 2 {
		t.Errorf("EOS = %d, %v; want 2", id, ok)
	}
	if !tk.IsSpecial(1) || tk.IsSpecial(100) {
		t.Errorf("IsSpecial wrong")
	}
	if s, ok := tk.IDToToken(1); !ok || s != "<s>" {
		t.Errorf("IDToToken(1) = %q", s)
	}
	if _, ok := tk.IDToToken(1 << 30); ok {
		t.Errorf("IDToToken of an unknown id succeeded")
	}
	if got := tk.Decode([]int{-5, 1 << 30}, false); got != "" {
		t.Errorf("Decode of unknown ids = %q", got)
	}
}

// TestHandMatcherEqualsRegex checks the hand-written GPT-2 / LLaMA-3 / Qwen2
// split patterns against regexp2 on random text built from characters of
// every class the patterns distinguish.
func TestHandMatcherEqualsRegex(t *testing.T) {
	alphabet := []string{"a", "Z", "é", "ß", "中", "ー", "1", "٣", "½", "Ⅻ", " ", "  ", "\t", "\n", "\r", "\u00a0", "\u3000",
		"'", "'s", "'S", "'ll", "'LL", "'re", "'Ve", "'d", "'m", "'t", "'x", ".", ",", "!", "-", "😀", "\u0301", "_", "$", "\u200b"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, pat := range []string{gpt2Pattern, llama3Pattern, qwen2Pattern} {
		hand, err := newRegexMatcher(pat)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := hand.(handMatcher); !ok {
			t.Fatalf("pattern %q has no hand-written matcher", pat)
		}
		re, err := compileRegex(pat)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3000 {
			var sb strings.Builder
			for range rng.IntN(12) + 1 {
				sb.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			s := sb.String()
			got, want := hand.find(s, nil), re.find(s, nil)
			if !slices.Equal(got, want) {
				t.Fatalf("pattern %d, case %d, %q: hand %v, regexp2 %v", i, i, s, got, want)
			}
		}
	}
}
