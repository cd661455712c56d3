package tokenizer

import "strings"

// StreamDecoder turns ids into text one token at a time, as Hugging Face's
// DecodeStream does. It never yields half a UTF-8 character: bytes of a
// character split over several tokens (byte-fallback or byte-level tokens)
// are held back until the character is complete, and decoders that treat
// the first token specially (Metaspace, Strip) see the same context as a
// decode of the whole sequence. The concatenation of everything Next and
// Flush return equals Decode of all ids. A StreamDecoder is not safe for
// concurrent use.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	ids         []int
	prefix      string
	prefixIndex int
}

// NewStreamDecoder returns a decoder for one sequence of generated ids.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{t: t, skipSpecial: skipSpecial}
}

// Next adds one id and returns the text it completes (possibly "").
func (s *StreamDecoder) Next(id int) string {
	s.ids = append(s.ids, id)
	text := s.t.Decode(s.ids, s.skipSpecial)
	if len(text) <= len(s.prefix) || strings.HasSuffix(text, "\uFFFD") {
		return ""
	}
	var out string
	if strings.HasPrefix(text, s.prefix) {
		out = text[len(s.prefix):]
	} else {
		// The decoder rewrote earlier text (rare); emit what is new beyond
		// the common prefix length.
		out = text[commonPrefix(text, s.prefix):]
	}
	// Keep the ids after the previous prefix as context for the next token.
	newPrefixIndex := len(s.ids) - s.prefixIndex
	s.ids = append(s.ids[:0], s.ids[s.prefixIndex:]...)
	s.prefix = s.t.Decode(s.ids, s.skipSpecial)
	s.prefixIndex = newPrefixIndex
	return out
}

// Flush returns the text still held back (incomplete characters decode to
// U+FFFD) and resets the decoder.
func (s *StreamDecoder) Flush() string {
	text := s.t.Decode(s.ids, s.skipSpecial)
	out := ""
	if len(text) > len(s.prefix) {
		out = text[commonPrefix(text, s.prefix):]
	}
	s.ids, s.prefix, s.prefixIndex = s.ids[:0], "", 0
	return out
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}
