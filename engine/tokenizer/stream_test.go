package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestStreamDecoder checks on every golden case that streaming yields whole
// characters only and adds up to the full decode.
func TestStreamDecoder(t *testing.T) {
	for _, g := range readGoldens(t) {
		if !strings.Contains(g.Name, "-") || g.Name == "llama2-metaspace-first" {
			t.Run(g.Name, func(t *testing.T) {
				tk := loadFamily(t, g.Name)
				for _, skip := range []bool{false, true} {
					for _, c := range g.Cases {
						want := tk.Decode(c.IDs, skip)
						sd := tk.NewStreamDecoder(skip)
						var got strings.Builder
						for _, id := range c.IDs {
							chunk := sd.Next(id)
							if !utf8.ValidString(chunk) || (strings.Contains(chunk, "\uFFFD") && !strings.Contains(want, "\uFFFD")) {
								t.Errorf("%q: chunk %q is not whole characters", truncate(c.Text, 30), chunk)
							}
							got.WriteString(chunk)
						}
						got.WriteString(sd.Flush())
						if got.String() != want {
							t.Errorf("%q (skip %v): stream\n got %q\nwant %q", truncate(c.Text, 30), skip, got.String(), want)
						}
					}
				}
			})
		}
	}
}

// TestStreamDecoderHoldsPartialCharacters feeds the byte tokens of a
// four-byte emoji one by one.
func TestStreamDecoderHoldsPartialCharacters(t *testing.T) {
	tests := []struct {
		name   string
		family string
		text   string
	}{
		{"byte-fallback", "llama2", "a 🦙 b"},
		{"byte-level", "gpt2", "a 🦙 b"},
		{"metaspace", "llama2-metaspace-first", " x 🦙"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tk := loadFamily(t, tc.family)
			enc, err := tk.Encode(tc.text, false)
			if err != nil {
				t.Fatal(err)
			}
			sd := tk.NewStreamDecoder(true)
			var chunks []string
			for _, id := range enc.IDs {
				if c := sd.Next(id); c != "" {
					chunks = append(chunks, c)
				}
			}
			if rest := sd.Flush(); rest != "" {
				chunks = append(chunks, rest)
			}
			joined := strings.Join(chunks, "")
			if want := tk.Decode(enc.IDs, true); joined != want {
				t.Fatalf("stream %q, decode %q", joined, want)
			}
			if !strings.Contains(joined, "🦙") {
				t.Fatalf("stream lost the emoji: %q", chunks)
			}
			for _, c := range chunks {
				if strings.ContainsRune(c, utf8.RuneError) {
					t.Errorf("chunk %q holds a broken character (chunks %q)", c, chunks)
				}
			}
			if len(enc.IDs) < 4 {
				t.Fatalf("expected the emoji to span several tokens, got %q", enc.Tokens)
			}
		})
	}
}
