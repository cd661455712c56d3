package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// preTokenizer splits normalized pieces into smaller pieces (words).
type preTokenizer interface {
	preTokenize(pieces []nstr) []nstr
}

// behavior is Hugging Face's SplitDelimiterBehavior.
type behavior int

const (
	removed behavior = iota
	isolated
	mergedWithPrevious
	mergedWithNext
	contiguous
)

func parseBehavior(s string) (behavior, error) {
	switch strings.ToLower(s) {
	case "removed":
		return removed, nil
	case "isolated":
		return isolated, nil
	case "mergedwithprevious":
		return mergedWithPrevious, nil
	case "mergedwithnext":
		return mergedWithNext, nil
	case "contiguous":
		return contiguous, nil
	}
	return 0, fmt.Errorf("unknown split behavior %q", s)
}

type part struct {
	sp    span // byte range in the piece
	match bool
}

// splitPiece splits n at the matches as NormalizedString::split does and
// appends the non-empty pieces to dst.
func splitPiece(n nstr, matches []span, b behavior, invert bool, dst []nstr) []nstr {
	if len(matches) == 0 && !invert {
		if n.s != "" {
			dst = append(dst, n)
		}
		return dst
	}
	parts := make([]part, 0, 2*len(matches)+1)
	prev := 0
	for _, m := range matches {
		if m.start > prev {
			parts = append(parts, part{span{prev, m.start}, invert})
		}
		parts = append(parts, part{m, !invert})
		prev = m.end
	}
	if prev < len(n.s) {
		parts = append(parts, part{span{prev, len(n.s)}, invert})
	}
	switch b {
	case removed:
		out := parts[:0]
		for _, p := range parts {
			if !p.match {
				out = append(out, p)
			}
		}
		parts = out
	case mergedWithPrevious:
		out := parts[:0:0]
		prevMatch := false
		for _, p := range parts {
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].sp.end = p.sp.end
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
		parts = out
	case mergedWithNext:
		out := make([]part, 0, len(parts))
		prevMatch := false
		for i := len(parts) - 1; i >= 0; i-- {
			p := parts[i]
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].sp.start = p.sp.start
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		parts = out
	case contiguous:
		out := parts[:0:0]
		prevMatch := false
		for _, p := range parts {
			if p.match == prevMatch && len(out) > 0 {
				out[len(out)-1].sp.end = p.sp.end
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
		parts = out
	}
	for _, p := range parts {
		if p.sp.end > p.sp.start {
			dst = append(dst, n.sub(p.sp.start, p.sp.end))
		}
	}
	return dst
}

// charMatcher matches every single character satisfying a predicate (Rust's
// char patterns).
type charMatcher func(rune) bool

func (f charMatcher) find(s string, dst []span) []span {
	for i, r := range s {
		if f(r) {
			dst = append(dst, span{i, i + utf8.RuneLen(r)})
		}
	}
	return dst
}

func newPreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch t.Type {
	case "Sequence":
		var cfg struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Sequence: %w", err)
		}
		var seq seqPreTokenizer
		for _, r := range cfg.PreTokenizers {
			p, err := newPreTokenizer(r)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "ByteLevel":
		var cfg struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("pre_tokenizer ByteLevel: %w", err)
		}
		return byteLevelPre{addPrefixSpace: cfg.AddPrefixSpace, useRegex: cfg.UseRegex == nil || *cfg.UseRegex}, nil
	case "Metaspace":
		m, err := parseMetaspace(raw)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Metaspace: %w", err)
		}
		return m, nil
	case "Split":
		var cfg struct {
			Pattern  json.RawMessage `json:"pattern"`
			Behavior string          `json:"behavior"`
			Invert   bool            `json:"invert"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		m, err := newPattern(cfg.Pattern)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		b, err := parseBehavior(cfg.Behavior)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		return splitPre{m: m, b: b, invert: cfg.Invert}, nil
	case "Digits":
		var cfg struct {
			Individual bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Digits: %w", err)
		}
		b := contiguous
		if cfg.Individual {
			b = isolated
		}
		return splitPre{m: charMatcher(unicode.IsNumber), b: b}, nil
	case "Whitespace":
		return splitPre{m: wordMatcher{}, b: removed, invert: true}, nil
	case "WhitespaceSplit":
		return splitPre{m: charMatcher(unicode.IsSpace), b: removed}, nil
	case "Punctuation":
		var cfg struct {
			Behavior string `json:"behavior"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("pre_tokenizer Punctuation: %w", err)
		}
		b := isolated
		if cfg.Behavior != "" {
			var err error
			if b, err = parseBehavior(cfg.Behavior); err != nil {
				return nil, fmt.Errorf("pre_tokenizer Punctuation: %w", err)
			}
		}
		return splitPre{m: charMatcher(isPunctuation), b: b}, nil
	case "BertPreTokenizer":
		return seqPreTokenizer{
			splitPre{m: charMatcher(unicode.IsSpace), b: removed},
			splitPre{m: charMatcher(isPunctuation), b: isolated},
		}, nil
	case "":
		return nil, fmt.Errorf("pre_tokenizer: missing type in %s", truncate(string(raw), 60))
	}
	return nil, fmt.Errorf("pre_tokenizer %q is not supported", t.Type)
}

func isPunctuation(r rune) bool {
	return (r < 128 && unicode.IsPunct(r)) || (r < 128 && unicode.IsSymbol(r)) || unicode.IsPunct(r)
}

type seqPreTokenizer []preTokenizer

func (s seqPreTokenizer) preTokenize(pieces []nstr) []nstr {
	for _, p := range s {
		pieces = p.preTokenize(pieces)
	}
	return pieces
}

type splitPre struct {
	m      matcher
	b      behavior
	invert bool
}

func (p splitPre) preTokenize(pieces []nstr) []nstr {
	out := make([]nstr, 0, len(pieces))
	var matches []span
	for _, n := range pieces {
		matches = p.m.find(n.s, matches[:0])
		out = splitPiece(n, matches, p.b, p.invert, out)
	}
	return out
}

// wordMatcher matches `\w+|[^\w\s]+` (Oniguruma's Unicode \w: letters,
// marks, numbers and connector punctuation).
type wordMatcher struct{}

func isWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsNumber(r) || unicode.Is(unicode.Pc, r)
}

func (wordMatcher) find(s string, dst []span) []span {
	start, kind := -1, 0 // kind 1: word, 2: other non-space
	for i, r := range s {
		k := 0
		switch {
		case isWord(r):
			k = 1
		case !unicode.IsSpace(r):
			k = 2
		}
		if k != kind {
			if kind != 0 {
				dst = append(dst, span{start, i})
			}
			start, kind = i, k
		}
	}
	if kind != 0 {
		dst = append(dst, span{start, len(s)})
	}
	return dst
}

// byteLevelPre is the GPT-2 ByteLevel pre-tokenizer: optional prefix space,
// the GPT-2 split regex, and the byte-to-unicode mapping.
type byteLevelPre struct {
	addPrefixSpace bool
	useRegex       bool
}

var gpt2Matcher = handMatcher{style: styleGPT2}

func (b byteLevelPre) preTokenize(pieces []nstr) []nstr {
	// All mapped pieces share one string and one alignment slice.
	total := 0
	for _, n := range pieces {
		total += 2*len(n.s) + 1
	}
	var nb nbuilder
	nb.grow(total)
	var bounds []span
	var matches []span
	for _, n := range pieces {
		if b.addPrefixSpace && !strings.HasPrefix(n.s, " ") {
			n = prependNormalizer(" ").normalize(n)
		}
		if !b.useRegex {
			matches = append(matches[:0], span{0, len(n.s)})
		} else {
			matches = gpt2Matcher.find(n.s, matches[:0])
		}
		for _, m := range matches {
			if m.end <= m.start {
				continue
			}
			start := len(nb.al)
			for i := m.start; i < m.end; i++ {
				nb.addAlign(byteToChar[n.s[i]], n.al[i])
			}
			bounds = append(bounds, span{start, len(nb.al)})
		}
	}
	all := nb.nstr()
	out := make([]nstr, len(bounds))
	for i, sp := range bounds {
		out[i] = all.sub(sp.start, sp.end)
	}
	return out
}

// byteToChar and charToByte are GPT-2's bytes_to_unicode table.
var (
	byteToChar [256]string
	charToByte = map[rune]byte{}
)

func init() {
	n := 0
	for b := range 256 {
		printable := ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF)
		r := rune(b)
		if !printable {
			r = rune(256 + n)
			n++
		}
		byteToChar[b] = string(r)
		charToByte[r] = byte(b)
	}
}

// prependScheme is Metaspace's prepend_scheme.
type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

type metaspace struct {
	replacement string
	scheme      prependScheme
	split       bool
}

func parseMetaspace(raw json.RawMessage) (metaspace, error) {
	var cfg struct {
		Replacement    *string `json:"replacement"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		PrependScheme  *string `json:"prepend_scheme"`
		Split          *bool   `json:"split"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return metaspace{}, err
	}
	m := metaspace{replacement: "▁", scheme: prependAlways, split: true}
	if cfg.Replacement != nil {
		if utf8.RuneCountInString(*cfg.Replacement) != 1 {
			return m, fmt.Errorf("replacement %q must be one character", *cfg.Replacement)
		}
		m.replacement = *cfg.Replacement
	}
	if cfg.Split != nil {
		m.split = *cfg.Split
	}
	switch {
	case cfg.PrependScheme != nil:
		switch strings.ToLower(*cfg.PrependScheme) {
		case "always":
			m.scheme = prependAlways
		case "first":
			m.scheme = prependFirst
		case "never":
			m.scheme = prependNever
		default:
			return m, fmt.Errorf("unknown prepend_scheme %q", *cfg.PrependScheme)
		}
	case cfg.AddPrefixSpace != nil && !*cfg.AddPrefixSpace:
		m.scheme = prependNever
	}
	return m, nil
}

func (m metaspace) preTokenize(pieces []nstr) []nstr {
	out := make([]nstr, 0, len(pieces))
	rep := literalMatcher(m.replacement)
	var matches []span
	for _, n := range pieces {
		n = replaceNormalizer{m: literalMatcher(" "), content: m.replacement}.normalize(n)
		if !strings.HasPrefix(n.s, m.replacement) {
			if m.scheme == prependAlways || (m.scheme == prependFirst && len(n.al) > 0 && n.al[0].start == 0) {
				n = prependNormalizer(m.replacement).normalize(n)
			}
		}
		if !m.split {
			if n.s != "" {
				out = append(out, n)
			}
			continue
		}
		matches = rep.find(n.s, matches[:0])
		out = splitPiece(n, matches, mergedWithNext, false, out)
	}
	return out
}
