package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// matcher finds the non-overlapping matches of a pattern, left to right, as
// byte ranges.
type matcher interface {
	find(s string, dst []span) []span
}

// patternJSON is Hugging Face's pattern: {"String": "..."} or {"Regex": "..."}.
type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func newPattern(raw json.RawMessage) (matcher, error) {
	var p patternJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("pattern: %w", err)
	}
	switch {
	case p.String != nil:
		return literalMatcher(*p.String), nil
	case p.Regex != nil:
		return newRegexMatcher(*p.Regex)
	}
	return nil, fmt.Errorf("pattern: want {\"String\": …} or {\"Regex\": …}, got %s", truncate(string(raw), 60))
}

// literalMatcher matches a fixed string.
type literalMatcher string

func (l literalMatcher) find(s string, dst []span) []span {
	if l == "" {
		return dst
	}
	for i := 0; i <= len(s); {
		k := strings.Index(s[i:], string(l))
		if k < 0 {
			break
		}
		dst = append(dst, span{i + k, i + k + len(l)})
		i += k + len(l)
	}
	return dst
}

// The split patterns of GPT-2, LLaMA-3 and Qwen2 have exact hand-written
// equivalents (see handMatcher); other patterns go through regexp2.
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func newRegexMatcher(pattern string) (matcher, error) {
	switch pattern {
	case gpt2Pattern:
		return handMatcher{style: styleGPT2}, nil
	case llama3Pattern:
		return handMatcher{style: styleLlama3, maxDigits: 3}, nil
	case qwen2Pattern:
		return handMatcher{style: styleLlama3, maxDigits: 1}, nil
	}
	return compileRegex(pattern)
}

// regexMatcher runs a regexp2 (backtracking, .NET syntax) regex, which
// supports the lookahead and Unicode classes Hugging Face's Oniguruma
// patterns use.
type regexMatcher struct {
	re      *regexp2.Regexp
	pattern string
}

// Time limits on regex matching. A backtracking regex from a downloaded
// tokenizer.json can take exponential time (nested quantifiers): one match
// may take at most MatchTimeout, and all matches over one text at most
// MatchTimeout plus MatchTimePerByte for each of its bytes (a floor of
// 0.1 MB/s, far below the 0.5 to 7 MB/s real patterns run at on a loaded
// machine). Exceeding either ends the Encode with an error wrapping
// ErrPatternTimeout. These are read when a tokenizer is loaded.
var (
	MatchTimeout     = time.Second
	MatchTimePerByte = 10 * time.Microsecond
)

// ErrPatternTimeout is wrapped by the Encode error of a pattern that took
// too long (catastrophic backtracking).
var ErrPatternTimeout = errors.New("pattern matching took too long")

// matchAbort is the panic value that carries a matching error out of the
// normalizers and pre-tokenizers to Encode, which recovers it.
type matchAbort struct{ err error }

func compileRegex(pattern string) (regexMatcher, error) {
	re, err := regexp2.Compile(flattenClasses(pattern), regexp2.None)
	if err != nil {
		return regexMatcher{}, fmt.Errorf("regex %q: %w", truncate(pattern, 80), err)
	}
	re.MatchTimeout = MatchTimeout
	return regexMatcher{re: re, pattern: pattern}, nil
}

// timeout aborts the running Encode: one match or the whole text ran past its limit.
func (r regexMatcher) timeout(n int, err error) {
	panic(matchAbort{fmt.Errorf("regex %q on %d bytes: %w (%v; a pattern with nested quantifiers?)", truncate(r.pattern, 60), n, ErrPatternTimeout, err)})
}

func (r regexMatcher) find(s string, dst []span) []span {
	if s == "" {
		return dst
	}
	runes := []rune(s)
	// byteAt[i] is the byte offset of rune i.
	byteAt := make([]int, len(runes)+1)
	b := 0
	for i, c := range runes {
		byteAt[i] = b
		b += utf8.RuneLen(c)
	}
	byteAt[len(runes)] = b
	limit := r.re.MatchTimeout
	if per := time.Duration(len(s)) * MatchTimePerByte; limit < math.MaxInt64-per {
		limit += per
	}
	deadline := time.Now().Add(limit)
	check := limit < time.Duration(math.MaxInt64)/2
	m, err := r.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		dst = append(dst, span{byteAt[m.Index], byteAt[m.Index+m.Length]})
		if check && time.Now().After(deadline) {
			r.timeout(len(s), errors.New("all matches over the text"))
		}
		m, err = r.re.FindNextMatch(m)
	}
	if err != nil {
		r.timeout(len(s), err)
	}
	return dst
}

// flattenClasses rewrites Oniguruma's nested character classes, which are
// unions ([^(\s|[.,!?])] excludes "(", whitespace, "|", ".", ",", "!", "?"
// and ")", as in BLOOM's pre-tokenizer), into flat classes, since regexp2
// reads "[" inside a class as a literal. Only non-negated nested classes are
// flattened (a union distributes over the enclosing class, negated or not);
// patterns without nesting are returned unchanged.
func flattenClasses(p string) string {
	var b strings.Builder
	depth := 0     // class nesting depth
	first := false // at the start of a class, where "]" is a literal
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			b.WriteByte(c)
			i++
			b.WriteByte(p[i])
			first = false
			continue
		case c == '[' && depth == 0:
			depth = 1
			b.WriteByte(c)
			if i+1 < len(p) && p[i+1] == '^' {
				i++
				b.WriteByte('^')
			}
			first = true
			continue
		case c == '[' && depth > 0 && i+1 < len(p) && p[i+1] != '^' && p[i+1] != ':':
			depth++ // a nested union: drop its brackets
			first = true
			continue
		case c == ']' && depth > 0 && !first:
			depth--
			if depth > 0 {
				first = false
				continue
			}
		}
		first = false
		b.WriteByte(c)
	}
	return b.String()
}
