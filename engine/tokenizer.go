package engine

import (
	"strings"
	"unicode/utf8"

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

func (h hfTokenizer) Decode(ids []int) string { return h.t.Decode(ids, true) }

func (h hfTokenizer) NewStreamDecoder() StreamDecoder { return &prefixStream{decode: h.Decode} }

// prefixStream decodes the whole sequence after every token and reports
// what was appended, as Hugging Face's TextStreamer does: the decoders see
// exactly what a full decode sees (leading-space rules, byte fallback), and
// text ending in an incomplete UTF-8 sequence (decoded as U+FFFD) is held
// back until the next token completes it.
type prefixStream struct {
	decode  func([]int) string
	ids     []int
	emitted string
}

func (s *prefixStream) Next(id int) string {
	s.ids = append(s.ids, id)
	text := s.decode(s.ids)
	if strings.HasSuffix(text, string(utf8.RuneError)) {
		return ""
	}
	return s.advance(text)
}

func (s *prefixStream) Flush() string { return s.advance(s.decode(s.ids)) }

func (s *prefixStream) advance(text string) string {
	if !strings.HasPrefix(text, s.emitted) {
		// A decoder rewrote earlier text (rare); report nothing new rather
		// than repeat it.
		return ""
	}
	piece := text[len(s.emitted):]
	s.emitted = text
	return piece
}
