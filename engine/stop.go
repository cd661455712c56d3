package engine

import (
	"slices"
	"strings"
)

// accept records a sampled token and reports whether the sequence may go on.
// pos is the position the token would occupy in the KV cache.
func (s *sequence) accept(m *Model, id, pos int, onToken func(Token) error) error {
	if !s.req.IgnoreEOS && slices.Contains(m.Manifest.EOSIDs, id) {
		return s.finish(StopEOS, s.text.Len(), onToken)
	}
	s.out = append(s.out, id)
	if s.decoder != nil {
		s.text.WriteString(s.decoder.Next(id))
	}
	text := s.text.String()
	for _, stop := range s.req.Stop {
		if stop == "" {
			continue
		}
		if i := strings.Index(text[max(0, s.emitted-len(stop)+1):], stop); i >= 0 {
			return s.finishToken(id, StopString, max(0, s.emitted-len(stop)+1)+i, onToken)
		}
	}
	switch {
	case len(s.out) >= s.maxTokens():
		return s.finishToken(id, StopMaxTokens, len(text), onToken)
	case pos >= m.Manifest.MaxSeqLen:
		return s.finishToken(id, StopLength, len(text), onToken)
	}
	// Hold back a tail that could still become a stop string.
	safe := len(text)
	for _, stop := range s.req.Stop {
		for k := min(len(stop)-1, len(text)); k > 0; k-- {
			if strings.HasSuffix(text, stop[:k]) {
				safe = min(safe, len(text)-k)
				break
			}
		}
	}
	return s.emit(id, safe, onToken)
}

func (s *sequence) emit(id, upto int, onToken func(Token) error) error {
	piece := ""
	if upto > s.emitted {
		piece = s.text.String()[s.emitted:upto]
		s.emitted = upto
	}
	if onToken == nil {
		return nil
	}
	return onToken(Token{Index: s.index, ID: id, Text: piece})
}

func (s *sequence) finishToken(id int, reason string, textEnd int, onToken func(Token) error) error {
	if s.decoder != nil && reason != StopString {
		s.text.WriteString(s.decoder.Flush())
		textEnd = s.text.Len()
	}
	err := s.emit(id, textEnd, onToken)
	s.done, s.reason = true, reason
	return err
}

func (s *sequence) finish(reason string, textEnd int, onToken func(Token) error) error {
	if s.decoder != nil {
		s.text.WriteString(s.decoder.Flush())
		textEnd = s.text.Len()
	}
	if textEnd > s.emitted && onToken != nil {
		if err := onToken(Token{Index: s.index, ID: -1, Text: s.text.String()[s.emitted:textEnd]}); err != nil {
			return err
		}
	}
	s.emitted = max(s.emitted, textEnd)
	s.done, s.reason = true, reason
	return nil
}
