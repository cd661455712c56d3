package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens.
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

// trie finds added tokens in text with leftmost-longest semantics, like
// the Aho-Corasick matcher Hugging Face uses.
type trie struct {
	nodes []trieNode
	first [256]bool
}

type trieNode struct {
	next  map[byte]int32
	token int // index into the added token list, -1 if none
}

func newTrie() *trie { return &trie{nodes: []trieNode{{token: -1}}} }

func (t *trie) insert(s string, token int) {
	if s == "" {
		return
	}
	t.first[s[0]] = true
	n := 0
	for i := 0; i < len(s); i++ {
		nx, ok := t.nodes[n].next[s[i]]
		if !ok {
			if t.nodes[n].next == nil {
				t.nodes[n].next = map[byte]int32{}
			}
			t.nodes = append(t.nodes, trieNode{token: -1})
			nx = int32(len(t.nodes) - 1)
			t.nodes[n].next[s[i]] = nx
		}
		n = int(nx)
	}
	if t.nodes[n].token < 0 {
		t.nodes[n].token = token
	}
}

func (t *trie) empty() bool { return len(t.nodes) == 1 }

// longestAt returns the token index and end of the longest token starting at
// byte i, or -1.
func (t *trie) longestAt(s string, i int) (int, int) {
	tok, end := -1, -1
	n := 0
	for k := i; k < len(s); k++ {
		nx, ok := t.nodes[n].next[s[k]]
		if !ok {
			break
		}
		n = int(nx)
		if t.nodes[n].token >= 0 {
			tok, end = t.nodes[n].token, k+1
		}
	}
	return tok, end
}

// segment is a slice [start, end) of a text that is either an added token
// (token >= 0) or text to tokenize further (token == -1).
type segment struct {
	start, end int
	token      int
}

// addedSet is one trie with the tokens it holds.
type addedSet struct {
	t      *trie
	tokens []addedToken
}

func newAddedSet(tokens []addedToken, contents []string) addedSet {
	t := newTrie()
	// Keep the first of duplicate contents, like Hugging Face's map.
	order := make([]int, len(tokens))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return tokens[order[a]].ID < tokens[order[b]].ID })
	for _, i := range order {
		t.insert(contents[i], i)
	}
	return addedSet{t: t, tokens: tokens}
}

// findSegments splits s around the added tokens it contains, applying
// single_word, lstrip and rstrip as AddedVocabulary::find_matches does.
func (a addedSet) findSegments(s string) []segment {
	if a.t == nil || a.t.empty() {
		return []segment{{0, len(s), -1}}
	}
	var out []segment
	startOffset := 0
	for i := 0; i < len(s); {
		if !a.t.first[s[i]] {
			i++
			continue
		}
		ti, stop := a.t.longestAt(s, i)
		if ti < 0 {
			i++
			continue
		}
		start := i
		i = stop
		tok := a.tokens[ti]
		if tok.SingleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if tok.LStrip {
			newStart := len(strings.TrimRightFunc(s[:start], unicode.IsSpace))
			start = max(newStart, startOffset)
		}
		if tok.RStrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
		}
		if startOffset < start {
			out = append(out, segment{startOffset, start, -1})
		}
		out = append(out, segment{start, stop, ti})
		startOffset = stop
	}
	if startOffset != len(s) {
		out = append(out, segment{startOffset, len(s), -1})
	}
	return out
}

// isWordChar is the word test of single_word added tokens (Rust's
// is_alphanumeric or '_').
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_'
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordChar(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordChar(r)
}
