package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

type splitStyle int

const (
	styleGPT2 splitStyle = iota
	styleLlama3
)

// handMatcher is an exact, allocation-free equivalent of the GPT-2 and
// LLaMA-3/Qwen2 split regexes (see gpt2Pattern, llama3Pattern). Every
// position of the input is covered by some alternative, so the matches tile
// the input. TestHandMatcherEqualsRegex checks it against regexp2.
type handMatcher struct {
	style     splitStyle
	maxDigits int
}

// charClass bits.
const (
	clLetter = 1 << iota
	clNumber
	clSpace
)

var asciiClass [128]uint8

func init() {
	for c := range 128 {
		r := rune(c)
		switch {
		case unicode.IsLetter(r):
			asciiClass[c] = clLetter
		case unicode.IsNumber(r):
			asciiClass[c] = clNumber
		case unicode.IsSpace(r):
			asciiClass[c] = clSpace
		}
	}
}

func classOf(r rune) uint8 {
	if r < 128 {
		return asciiClass[r]
	}
	switch {
	case unicode.IsLetter(r):
		return clLetter
	case unicode.IsNumber(r):
		return clNumber
	case unicode.IsSpace(r):
		return clSpace
	}
	return 0
}

// at decodes the rune at byte i (utf8.RuneError, 0 at the end).
func at(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func (h handMatcher) find(s string, dst []span) []span {
	for i := 0; i < len(s); {
		e := h.matchAt(s, i)
		dst = append(dst, span{i, e})
		i = e
	}
	return dst
}

// run returns the end of the run of runes whose class has any bit of mask
// (or, when invert, none) starting at i, consuming at most limit runes
// (limit <= 0: unbounded).
func run(s string, i int, mask uint8, invert bool, limit int) int {
	n := 0
	for i < len(s) && (limit <= 0 || n < limit) {
		r, size := at(s, i)
		if (classOf(r)&mask != 0) == invert {
			break
		}
		i += size
		n++
	}
	return i
}

// contraction matches 's 't 're 've 'm 'll 'd at i (optionally ignoring ASCII
// case), returning the end or -1.
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return -1
	}
	lower := func(c byte) byte {
		if fold && 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch lower(s[i+1]) {
	case 's', 't', 'm', 'd':
		return i + 2
	case 'r':
		if i+2 < len(s) && lower(s[i+2]) == 'e' {
			return i + 3
		}
	case 'v':
		if i+2 < len(s) && lower(s[i+2]) == 'e' {
			return i + 3
		}
	case 'l':
		if i+2 < len(s) && lower(s[i+2]) == 'l' {
			return i + 3
		}
	}
	return -1
}

// other reports whether r is in [^\s\p{L}\p{N}].
func other(r rune) bool { return r >= 0 && classOf(r) == 0 }

func isNewline(r rune) bool { return r == '\r' || r == '\n' }

// whitespaceTail handles `\s+(?!\S)|\s+` (and, for LLaMA-3, `\s*[\r\n]+`
// before them) at a whitespace rune at i.
func (h handMatcher) whitespaceTail(s string, i int) int {
	j := run(s, i, clSpace, false, 0)
	if h.style == styleLlama3 {
		// \s*[\r\n]+ : ends after the last newline of the whitespace run.
		last := -1
		for k := i; k < j; {
			r, size := at(s, k)
			if isNewline(r) {
				last = k + size
			}
			k += size
		}
		if last >= 0 {
			return last
		}
	}
	if j == len(s) {
		return j
	}
	// \s+(?!\S): give back the last whitespace rune if that leaves one.
	_, lastSize := utf8.DecodeLastRuneInString(s[i:j])
	if j-lastSize > i {
		return j - lastSize
	}
	return j // \s+
}

func (h handMatcher) matchAt(s string, i int) int {
	r, size := at(s, i)
	if h.style == styleGPT2 {
		if e := contraction(s, i, false); e >= 0 {
			return e
		}
		start := i
		if r == ' ' {
			r2, size2 := at(s, i+1)
			if r2 >= 0 && classOf(r2) != clSpace {
				r, size, start = r2, size2, i+1
			}
		}
		switch c := classOf(r); {
		case c == clLetter:
			return run(s, start+size, clLetter, false, 0)
		case c == clNumber:
			return run(s, start+size, clNumber, false, 0)
		case c == 0:
			return runOther(s, start+size)
		}
		return h.whitespaceTail(s, i)
	}

	// LLaMA-3 / Qwen2.
	if e := contraction(s, i, true); e >= 0 {
		return e
	}
	c := classOf(r)
	if c == clLetter {
		return run(s, i+size, clLetter, false, 0)
	}
	if c != clNumber && !isNewline(r) {
		// [^\r\n\p{L}\p{N}]?\p{L}+
		if r2, size2 := at(s, i+size); r2 >= 0 && classOf(r2) == clLetter {
			return run(s, i+size+size2, clLetter, false, 0)
		}
	}
	if c == clNumber {
		return run(s, i, clNumber, false, h.maxDigits)
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	start := -1
	if c == 0 {
		start = i + size
	} else if r == ' ' {
		if r2, size2 := at(s, i+1); other(r2) {
			start = i + 1 + size2
		}
	}
	if start >= 0 {
		e := runOther(s, start)
		for e < len(s) && (s[e] == '\r' || s[e] == '\n') {
			e++
		}
		return e
	}
	return h.whitespaceTail(s, i)
}

// runOther extends a run of [^\s\p{L}\p{N}] from i.
func runOther(s string, i int) int {
	for i < len(s) {
		r, size := at(s, i)
		if !other(r) {
			break
		}
		i += size
	}
	return i
}
