package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// span is a half-open byte range [start, end) in the original input text.
type span struct{ start, end int }

// align is the original byte range of one normalized byte (int32 keeps the
// per-byte alignment compact; Encode rejects texts over 2 GiB).
type align struct{ start, end int32 }

// nstr is a piece of normalized text that remembers, for every byte, which
// bytes of the original input produced it (the character-level alignment
// Hugging Face's NormalizedString keeps). Offsets of tokens are read from it.
type nstr struct {
	s  string
	al []align // len(al) == len(s)
}

// newNstr wraps a slice of the original input starting at byte base. Every
// byte of a character is aligned to the whole character.
func newNstr(s string, base int) nstr {
	al := make([]align, len(s))
	for i := 0; i < len(s); {
		_, n := utf8.DecodeRuneInString(s[i:])
		sp := align{int32(base + i), int32(base + i + n)}
		for k := i; k < i+n; k++ {
			al[k] = sp
		}
		i += n
	}
	return nstr{s: s, al: al}
}

// sub returns the bytes [a, b) of n.
func (n nstr) sub(a, b int) nstr { return nstr{s: n.s[a:b], al: n.al[a:b]} }

// origin returns the original byte range covered by the bytes [a, b) of n.
func (n nstr) origin(a, b int) span {
	if a >= b || b > len(n.al) {
		if a < len(n.al) {
			return span{int(n.al[a].start), int(n.al[a].start)}
		}
		if len(n.al) > 0 {
			e := int(n.al[len(n.al)-1].end)
			return span{e, e}
		}
		return span{}
	}
	return span{int(n.al[a].start), int(n.al[b-1].end)}
}

// nbuilder assembles a new nstr from pieces aligned to original ranges.
type nbuilder struct {
	b  strings.Builder
	al []align
}

func (nb *nbuilder) grow(n int) {
	nb.b.Grow(n)
	if cap(nb.al) < n {
		nb.al = make([]align, 0, n)
	}
}

// add appends s, aligning all its bytes to the original range sp.
func (nb *nbuilder) add(s string, sp span) {
	nb.addAlign(s, align{int32(sp.start), int32(sp.end)})
}

// addAlign appends s, aligning all its bytes to a.
func (nb *nbuilder) addAlign(s string, sp align) {
	nb.b.WriteString(s)
	if len(s) == 1 {
		nb.al = append(nb.al, sp)
		return
	}
	for range len(s) {
		nb.al = append(nb.al, sp)
	}
}

// copy appends the bytes [a, b) of n keeping their alignment.
func (nb *nbuilder) copy(n nstr, a, b int) {
	nb.b.WriteString(n.s[a:b])
	nb.al = append(nb.al, n.al[a:b]...)
}

func (nb *nbuilder) nstr() nstr { return nstr{s: nb.b.String(), al: nb.al} }
