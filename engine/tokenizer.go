package engine

import (
	"context"

	"github.com/strata-llm/strata/engine/tokenizer"
)

// Tokenizer turns text into token ids and back, as the package's
// tokenizer.json specifies. *tokenizer.Tokenizer provides it for packages.
type Tokenizer interface {
	// Encode returns the ids of text, with the tokenizer's post-processing
	// (BOS and the like) when addSpecial is set.
	Encode(text string, addSpecial bool) ([]int, error)
	// Decode returns the text of ids, special tokens skipped.
	Decode(ids []int) string
	// NewStreamDecoder returns a decoder for one generated sequence.
	NewStreamDecoder() StreamDecoder
}

// StreamDecoder turns generated ids into text as they arrive, never
// splitting a UTF-8 character.
type StreamDecoder interface {
	// Next returns the text that became printable with id.
	Next(id int) string
	// Flush returns whatever is still held back at the end.
	Flush() string
}

// hfTokenizer adapts engine/tokenizer to Tokenizer.
type hfTokenizer struct{ t *tokenizer.Tokenizer }

func loadTokenizer(path string) (Tokenizer, error) {
	t, err := tokenizer.Load(path)
	if err != nil {
		return nil, err
	}
	return hfTokenizer{t}, nil
}

func (h hfTokenizer) Encode(text string, addSpecial bool) ([]int, error) {
	enc, err := h.t.Encode(text, addSpecial)
	if err != nil {
		return nil, err
	}
	return enc.IDs, nil
}

// EncodeContext is Encode that stops when ctx is done and fails when a
// tokenizer.json pattern runs past its time limit
// (tokenizer.ErrPatternTimeout).
func (h hfTokenizer) EncodeContext(ctx context.Context, text string, addSpecial bool) ([]int, error) {
	enc, err := h.t.EncodeContext(ctx, text, addSpecial)
	if err != nil {
		return nil, err
	}
	return enc.IDs, nil
}

// ContextEncoder is implemented by tokenizers whose Encode can be cancelled.
type ContextEncoder interface {
	EncodeContext(ctx context.Context, text string, addSpecial bool) ([]int, error)
}

func (h hfTokenizer) Decode(ids []int) string { return h.t.Decode(ids, true) }

// NewStreamDecoder follows Hugging Face's DecodeStream: pieces joined equal
// Decode of all ids, and no piece ends inside a UTF-8 character.
func (h hfTokenizer) NewStreamDecoder() StreamDecoder { return h.t.NewStreamDecoder(true) }
