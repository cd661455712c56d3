package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzSeeds are small tokenizer.json documents exercising most components.
var fuzzSeeds = []string{
	`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<0x41>": 3}, "merges": ["a b"], "byte_fallback": true}}`,
	`{"model": {"type": "BPE", "vocab": {"Ġ": 0, "a": 1}, "merges": [["Ġ", "a"]]}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true}, "decoder": {"type": "ByteLevel"}}`,
	`{"added_tokens": [{"id": 5, "content": "<s>", "special": true, "lstrip": true, "rstrip": true, "single_word": true, "normalized": false}], "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": true, "strip_right": true}, {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": "▁"}]}, "pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "first", "split": true}, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [5], "tokens": ["<s>"]}}}, "decoder": {"type": "Sequence", "decoders": [{"type": "Metaspace"}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 1}]}, "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "vocab": {"<unk>": 0, "▁": 1, "a": 2, "▁a": 3}, "merges": ["▁ a"]}}`,
	`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(?i:'s)|\\p{L}+|\\s+(?!\\S)"}, "behavior": "Contiguous", "invert": true}, {"type": "Digits", "individual_digits": true}, {"type": "Whitespace"}, {"type": "Punctuation"}]}}`,
}

// FuzzFromJSON checks that malformed tokenizer.json gives errors, not
// panics, and that whatever loads can encode and decode.
func FuzzFromJSON(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), "Hello, wörld! 123 <s> a b")
	}
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		tk, err := FromJSON(data)
		if err != nil {
			return
		}
		if !utf8.ValidString(text) {
			if _, err := tk.Encode(text, true); err == nil {
				t.Fatal("invalid UTF-8 accepted")
			}
			return
		}
		enc, err := tk.Encode(text, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range enc.Offsets {
			if o[0] < 0 || o[1] < o[0] || o[1] > len(text) {
				t.Fatalf("offsets %v out of range for %d bytes", o, len(text))
			}
		}
		tk.Decode(enc.IDs, false)
		sd := tk.NewStreamDecoder(true)
		for _, id := range enc.IDs {
			sd.Next(id)
		}
		sd.Flush()
	})
}

// FuzzEncodeByteLevel checks on GPT-2 that any valid text round-trips
// through Encode and Decode and that offsets cover the text in order.
func FuzzEncodeByteLevel(f *testing.F) {
	tk, err := FromJSON(familyJSON(f, "gpt2"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "Hello world", "  \n\t x", "中文 😀 <|endoftext|>", "'s'S'll", strings.Repeat("ab", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		enc, err := tk.Encode(text, false)
		if !utf8.ValidString(text) {
			if err == nil {
				t.Fatal("invalid UTF-8 accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := tk.Decode(enc.IDs, false); got != text {
			t.Fatalf("round trip %q -> %q", text, got)
		}
		prev := 0
		for _, o := range enc.Offsets {
			if o[0] < prev-4 || o[1] < o[0] || o[1] > len(text) {
				t.Fatalf("offsets %v (previous end %d) out of order for %q", o, prev, text)
			}
			prev = o[1]
		}
	})
}
