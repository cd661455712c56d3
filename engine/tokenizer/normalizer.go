package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text, keeping the alignment to the original.
type normalizer interface {
	normalize(n nstr) nstr
}

type typed struct {
	Type string `json:"type"`
}

func newNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	switch t.Type {
	case "Sequence":
		var cfg struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("normalizer Sequence: %w", err)
		}
		var seq seqNormalizer
		for _, r := range cfg.Normalizers {
			n, err := newNormalizer(r)
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "Prepend":
		var cfg struct {
			Prepend string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("normalizer Prepend: %w", err)
		}
		return prependNormalizer(cfg.Prepend), nil
	case "Replace":
		var cfg struct {
			Pattern json.RawMessage `json:"pattern"`
			Content string          `json:"content"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("normalizer Replace: %w", err)
		}
		m, err := newPattern(cfg.Pattern)
		if err != nil {
			return nil, fmt.Errorf("normalizer Replace: %w", err)
		}
		return replaceNormalizer{m: m, content: cfg.Content}, nil
	case "NFC":
		return formNormalizer{norm.NFC}, nil
	case "NFD":
		return formNormalizer{norm.NFD}, nil
	case "NFKC":
		return formNormalizer{norm.NFKC}, nil
	case "NFKD":
		return formNormalizer{norm.NFKD}, nil
	case "Lowercase":
		return lowercaseNormalizer{}, nil
	case "Strip":
		var cfg struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("normalizer Strip: %w", err)
		}
		return stripNormalizer{left: cfg.Left, right: cfg.Right}, nil
	case "":
		return nil, fmt.Errorf("normalizer: missing type in %s", truncate(string(raw), 60))
	}
	return nil, fmt.Errorf("normalizer %q is not supported", t.Type)
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

type seqNormalizer []normalizer

func (s seqNormalizer) normalize(n nstr) nstr {
	for _, x := range s {
		n = x.normalize(n)
	}
	return n
}

// prependNormalizer prepends a string to non-empty text, aligned to the
// first character.
type prependNormalizer string

func (p prependNormalizer) normalize(n nstr) nstr {
	if n.s == "" {
		return n
	}
	var nb nbuilder
	nb.grow(len(p) + len(n.s))
	_, size := utf8.DecodeRuneInString(n.s)
	nb.add(string(p), n.origin(0, size))
	nb.copy(n, 0, len(n.s))
	return nb.nstr()
}

// replaceNormalizer replaces every match of a pattern by content; like
// Hugging Face, the replacement is aligned to the last character of the
// match.
type replaceNormalizer struct {
	m       matcher
	content string
}

func (r replaceNormalizer) normalize(n nstr) nstr {
	matches := r.m.find(n.s, nil)
	if len(matches) == 0 {
		return n
	}
	var nb nbuilder
	nb.grow(len(n.s))
	prev := 0
	for _, sp := range matches {
		nb.copy(n, prev, sp.start)
		if sp.end > sp.start {
			_, size := utf8.DecodeLastRuneInString(n.s[sp.start:sp.end])
			nb.add(r.content, n.origin(sp.end-size, sp.end))
		} else {
			nb.add(r.content, n.origin(sp.start, sp.end))
		}
		prev = sp.end
	}
	nb.copy(n, prev, len(n.s))
	return nb.nstr()
}

// formNormalizer applies a Unicode normalization form segment by segment.
// Like Hugging Face, the k-th output character of a segment is aligned to
// the k-th input character (the last one when the output is longer), so a
// composed character points at its base letter.
type formNormalizer struct{ f norm.Form }

func (f formNormalizer) normalize(n nstr) nstr {
	if f.f.IsNormalString(n.s) {
		return n
	}
	var nb nbuilder
	nb.grow(len(n.s))
	var inputs []span // original ranges of the input characters of a segment
	for start := 0; start < len(n.s); {
		end := len(n.s)
		if b := f.f.NextBoundaryInString(n.s[start:], true); b > 0 {
			end = start + b
		}
		inputs = inputs[:0]
		for i := start; i < end; {
			_, size := utf8.DecodeRuneInString(n.s[i:])
			inputs = append(inputs, n.origin(i, i+size))
			i += size
		}
		k := 0
		for _, r := range f.f.String(n.s[start:end]) {
			nb.add(string(r), inputs[min(k, len(inputs)-1)])
			k++
		}
		start = end
	}
	return nb.nstr()
}

// lowercaseNormalizer lowercases like Rust's str::to_lowercase.
type lowercaseNormalizer struct{}

func (lowercaseNormalizer) normalize(n nstr) nstr {
	var nb nbuilder
	nb.grow(len(n.s))
	for i := 0; i < len(n.s); {
		r, size := utf8.DecodeRuneInString(n.s[i:])
		sp := n.origin(i, i+size)
		switch {
		case r == 'İ': // the one full (multi-rune) lowercase mapping outside final sigma
			nb.add("i\u0307", sp)
		case r == 'Σ' && finalSigma(n.s, i, size):
			nb.add("ς", sp)
		default:
			nb.add(string(unicode.ToLower(r)), sp)
		}
		i += size
	}
	return nb.nstr()
}

// finalSigma reports whether the capital sigma at i ends a word (preceded by
// a letter and not followed by one), where Rust lowercases it to ς.
func finalSigma(s string, i, size int) bool {
	before, _ := utf8.DecodeLastRuneInString(s[:i])
	after, _ := utf8.DecodeRuneInString(s[i+size:])
	return i > 0 && unicode.IsLetter(before) && (i+size == len(s) || !unicode.IsLetter(after))
}

// stripNormalizer removes leading and/or trailing whitespace.
type stripNormalizer struct{ left, right bool }

func (s stripNormalizer) normalize(n nstr) nstr {
	a, b := 0, len(n.s)
	if s.left {
		a = len(n.s) - len(strings.TrimLeftFunc(n.s, unicode.IsSpace))
	}
	if s.right {
		b = len(strings.TrimRightFunc(n.s, unicode.IsSpace))
	}
	if a >= b {
		return nstr{}
	}
	return n.sub(a, b)
}
