package tokenizer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// hostileJSON is a tokenizer whose Split pattern backtracks exponentially
// on a run of a's that does not end the text.
func hostileJSON(t testing.TB, where string) []byte {
	split := map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `(a+)+$`}, "behavior": "Isolated"}
	top := map[string]any{"pre_tokenizer": split}
	if where == "normalizer" {
		top = map[string]any{"normalizer": map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": `(a+)+$`}, "content": "b"}}
	}
	return tinyJSON(t, []string{"a", "b", "!"}, nil, top, nil)
}

// TestPatternTimeout checks that a catastrophically backtracking pattern in
// a pre-tokenizer or normalizer ends Encode with ErrPatternTimeout after
// about MatchTimeout, instead of running for minutes.
func TestPatternTimeout(t *testing.T) {
	defer func(d time.Duration) { MatchTimeout = d }(MatchTimeout)
	MatchTimeout = 50 * time.Millisecond
	for _, where := range []string{"pre_tokenizer", "normalizer"} {
		t.Run(where, func(t *testing.T) {
			tk, err := FromJSON(hostileJSON(t, where))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = tk.Encode(strings.Repeat("a", 40)+"!", false)
			if !errors.Is(err, ErrPatternTimeout) || !strings.Contains(err.Error(), "(a+)+$") {
				t.Fatalf("Encode error %v, want ErrPatternTimeout naming the pattern", err)
			}
			// Not a timing assertion on speed: 2^40 backtracking steps would
			// take hours; anything under a minute means the limit worked.
			if d := time.Since(start); d > time.Minute {
				t.Errorf("Encode took %v", d)
			}
			if _, err := tk.Encode("aaa", false); err != nil {
				t.Errorf("a benign text after the timeout: %v", err)
			}
		})
	}
}

// TestEncodeContextCanceled checks that a cancelled context stops EncodeContext.
func TestEncodeContextCanceled(t *testing.T) {
	tk, err := FromJSON(tinyJSON(t, []string{"a", "b"}, nil, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tk.EncodeContext(ctx, "abab", false); !errors.Is(err, context.Canceled) {
		t.Errorf("EncodeContext with a cancelled context: %v", err)
	}
	if enc, err := tk.EncodeContext(context.Background(), "abab", false); err != nil || len(enc.IDs) == 0 {
		t.Errorf("EncodeContext: %v, %v", enc.IDs, err)
	}
}

// BenchmarkPatternTimeout measures what the time limit costs: encoding the
// ~100 KB benchmark text with each family's real tokenizer.json, with the
// limit and without it (regexp2's default: no timeout checks at all).
// Families whose split pattern has a hand-written matcher (gpt2, llama3,
// qwen3) run no regex and show the limit costs nothing there by
// construction; deepseek_v3, gpt4o and gemma3 run regexp2.
func BenchmarkPatternTimeout(b *testing.B) {
	text := benchText(b)
	defer func(d time.Duration) { MatchTimeout = d }(MatchTimeout)
	for _, name := range []string{"llama3", "gpt2", "deepseek_v3", "gpt4o", "gemma3"} {
		for _, limit := range []string{"limit", "nolimit"} {
			b.Run(name+"/"+limit, func(b *testing.B) {
				MatchTimeout = time.Second
				if limit == "nolimit" {
					MatchTimeout = 1<<63 - 1
				}
				tk, err := FromJSON(familyJSON(b, name))
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					if _, err := tk.Encode(text, true); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
