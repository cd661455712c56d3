package engine

import "errors"

// Tokenizer turns text into token ids and back, as the package's
// tokenizer.json specifies.
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

func loadTokenizer(path string) (Tokenizer, error) {
	return nil, errors.New("tokenizer support is not built yet")
}
