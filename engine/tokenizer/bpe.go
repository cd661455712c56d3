package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// token is one model token inside a pre-tokenized piece: its id and the byte
// range it covers in the piece.
type token struct {
	id         int
	start, end int
}

// model turns one pre-tokenized piece into tokens.
type model interface {
	tokenize(piece string) []token
	tokenToID(tok string) (int, bool)
	idToToken(id int) (string, bool)
	vocabSize() int
}

type mergeValue struct {
	rank  int32
	newID int32
}

// bpe is Hugging Face's BPE model.
type bpe struct {
	vocab        map[string]int
	vocabR       []string
	merges       map[uint64]mergeValue
	unkID        int // -1 when there is no unk token
	byteFallback bool
	fuseUnk      bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	byteIDs      [256]int
	hasByteIDs   bool

	// chunkRune, when not 0, is a word-start marker (SentencePiece's "▁")
	// that no merge can join to the character before it, except for the
	// characters in badBefore. Long words are cut before such markers and
	// the chunks merged separately (and cached), which gives the same
	// tokens as merging the whole word.
	chunkRune rune
	badBefore map[rune]bool

	mu    sync.RWMutex
	cache map[string][]token
}

// cacheLimit bounds the number of cached words; the cache is cleared when full.
const cacheLimit = 200_000

// cacheMaxWord is the longest piece (in bytes) that is cached.
const cacheMaxWord = 256

type bpeJSON struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

func newBPE(raw json.RawMessage) (*bpe, error) {
	var cfg bpeJSON
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("model BPE: %w", err)
	}
	if cfg.Dropout != nil && *cfg.Dropout != 0 {
		return nil, fmt.Errorf("model BPE: dropout %v is not supported (must be null)", *cfg.Dropout)
	}
	if len(cfg.Vocab) == 0 {
		return nil, fmt.Errorf("model BPE: empty vocab")
	}
	m := &bpe{
		vocab:        cfg.Vocab,
		unkID:        -1,
		byteFallback: cfg.ByteFallback,
		fuseUnk:      cfg.FuseUnk,
		ignoreMerges: cfg.IgnoreMerges,
		cache:        make(map[string][]token),
	}
	if cfg.ContinuingSubwordPrefix != nil {
		m.prefix = *cfg.ContinuingSubwordPrefix
	}
	if cfg.EndOfWordSuffix != nil {
		m.suffix = *cfg.EndOfWordSuffix
	}
	maxID := -1
	for tok, id := range cfg.Vocab {
		if id < 0 || id > 1<<28 {
			return nil, fmt.Errorf("model BPE: token %q has invalid id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	m.vocabR = make([]string, maxID+1)
	for tok, id := range cfg.Vocab {
		m.vocabR[id] = tok
	}
	if cfg.UnkToken != nil {
		id, ok := m.vocab[*cfg.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model BPE: unk_token %q is not in the vocab", *cfg.UnkToken)
		}
		m.unkID = id
	}
	if m.byteFallback {
		m.hasByteIDs = true
		for b := range 256 {
			id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]
			if !ok {
				m.hasByteIDs = false
				break
			}
			m.byteIDs[b] = id
		}
	}
	m.initChunking()
	pairs, err := parseMerges(cfg.Merges)
	if err != nil {
		return nil, fmt.Errorf("model BPE: %w", err)
	}
	m.merges = make(map[uint64]mergeValue, len(pairs))
	for rank, p := range pairs {
		a, ok := m.vocab[p[0]]
		if !ok {
			return nil, fmt.Errorf("model BPE: merge %d: token %q is not in the vocab", rank, p[0])
		}
		b, ok := m.vocab[p[1]]
		if !ok {
			return nil, fmt.Errorf("model BPE: merge %d: token %q is not in the vocab", rank, p[1])
		}
		right := p[1]
		if m.prefix != "" {
			right = strings.TrimPrefix(right, m.prefix)
		}
		n, ok := m.vocab[p[0]+right]
		if !ok {
			return nil, fmt.Errorf("model BPE: merge %d: token %q is not in the vocab", rank, p[0]+right)
		}
		m.merges[pairKey(a, b)] = mergeValue{rank: int32(rank), newID: int32(n)}
	}
	return m, nil
}

// parseMerges accepts both serialisations of merges: "a b" strings and
// ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, m := range strs {
			a, b, ok := strings.Cut(m, " ")
			if !ok {
				return nil, fmt.Errorf("merge %d: %q is not of the form \"a b\"", i, m)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("merges: want a list of \"a b\" strings or [a, b] pairs: %w", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("merge %d: want 2 tokens, got %d", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func (m *bpe) tokenToID(tok string) (int, bool) {
	id, ok := m.vocab[tok]
	return id, ok
}

func (m *bpe) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(m.vocabR) {
		return "", false
	}
	t := m.vocabR[id]
	if t == "" {
		if _, ok := m.vocab[""]; !ok || m.vocab[""] != id {
			return "", false
		}
	}
	return t, true
}

func (m *bpe) vocabSize() int { return len(m.vocab) }

// initChunking enables chunked merging for SentencePiece-style vocabularies.
func (m *bpe) initChunking() {
	const marker = '▁'
	if _, ok := m.vocab[string(marker)]; !ok || m.prefix != "" || m.suffix != "" {
		return
	}
	bad := map[rune]bool{}
	for tok := range m.vocab {
		prev := rune(-1)
		for _, r := range tok {
			if r == marker && prev >= 0 && prev != marker {
				bad[prev] = true
			}
			prev = r
		}
	}
	m.chunkRune, m.badBefore = marker, bad
}

func (m *bpe) tokenize(piece string) []token {
	if piece == "" {
		return nil
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[piece]; ok {
			return []token{{id: id, start: 0, end: len(piece)}}
		}
	}
	if m.chunkRune == 0 || len(piece) < 16 {
		return m.word(piece)
	}
	var out []token
	start := 0
	prev := rune(-1)
	for i, r := range piece {
		if r == m.chunkRune && i > start && prev != m.chunkRune && !m.badBefore[prev] {
			out = appendShifted(out, m.word(piece[start:i]), start)
			start = i
		}
		prev = r
	}
	if start == 0 {
		return m.word(piece)
	}
	return appendShifted(out, m.word(piece[start:]), start)
}

func appendShifted(dst, toks []token, shift int) []token {
	for _, t := range toks {
		dst = append(dst, token{id: t.id, start: t.start + shift, end: t.end + shift})
	}
	return dst
}

// word merges one word, using the cache for short words.
func (m *bpe) word(piece string) []token {
	cacheable := len(piece) <= cacheMaxWord
	if cacheable {
		m.mu.RLock()
		toks, ok := m.cache[piece]
		m.mu.RUnlock()
		if ok {
			return toks
		}
	}
	toks := m.mergeWord(piece)
	if cacheable {
		m.mu.Lock()
		if len(m.cache) >= cacheLimit {
			clear(m.cache)
		}
		m.cache[strings.Clone(piece)] = toks // do not pin the caller's buffer
		m.mu.Unlock()
	}
	return toks
}

// symbol is one node of the doubly linked list BPE merges work on.
type symbol struct {
	id         int
	start, end int // byte range in the word
	prev, next int // indices into the symbol slice, -1 at the ends
}

type mergeItem struct {
	rank  int32
	pos   int32
	newID int32
}

// less orders merges like Hugging Face: lowest rank first, then leftmost.
func (a mergeItem) less(b mergeItem) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.pos < b.pos
}

type mergeHeap []mergeItem

func (h *mergeHeap) push(x mergeItem) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeItem {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s[l].less(s[m]) {
			m = l
		}
		if r < n && s[r].less(s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// mergeWord splits a word into initial symbols (characters, byte-fallback
// bytes or unk) and applies the merges in rank order, as Hugging Face's
// BPE::merge_word and Word::merge_all do.
func (m *bpe) mergeWord(w string) []token {
	syms := make([]symbol, 0, len(w))
	add := func(id, start, end int) {
		syms = append(syms, symbol{id: id, start: start, end: end, prev: len(syms) - 1, next: len(syms) + 1})
	}
	unkID, unkStart, unkEnd := -1, 0, 0
	var sb strings.Builder
	for i := 0; i < len(w); {
		_, size := utf8.DecodeRuneInString(w[i:])
		end := i + size
		s := w[i:end]
		if (i > 0 && m.prefix != "") || (end == len(w) && m.suffix != "") {
			sb.Reset()
			if i > 0 {
				sb.WriteString(m.prefix)
			}
			sb.WriteString(s)
			if end == len(w) {
				sb.WriteString(m.suffix)
			}
			s = sb.String()
		}
		if id, ok := m.vocab[s]; ok {
			if unkID >= 0 {
				add(unkID, unkStart, unkEnd)
				unkID = -1
			}
			add(id, i, end)
		} else if m.byteFallback && m.hasByteIDs {
			// Like Hugging Face, each byte token spans one byte.
			for k := 0; k < len(s); k++ {
				add(m.byteIDs[s[k]], min(i+k, end-1), min(i+k+1, end))
			}
		} else if m.unkID >= 0 {
			switch {
			case unkID >= 0 && m.fuseUnk:
				unkEnd = end
			case unkID >= 0:
				add(unkID, unkStart, unkEnd)
				unkID, unkStart, unkEnd = m.unkID, i, end
			default:
				unkID, unkStart, unkEnd = m.unkID, i, end
			}
		}
		i = end
	}
	if unkID >= 0 {
		add(unkID, unkStart, unkEnd)
	}
	if len(syms) == 0 {
		return nil
	}
	syms[len(syms)-1].next = -1

	if len(syms) > 1 {
		h := make(mergeHeap, 0, len(syms))
		for i := 0; i+1 < len(syms); i++ {
			if mv, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
				h.push(mergeItem{rank: mv.rank, pos: int32(i), newID: mv.newID})
			}
		}
		for len(h) > 0 {
			top := h.pop()
			cur := &syms[top.pos]
			if cur.end == cur.start || cur.next < 0 {
				continue
			}
			right := syms[cur.next]
			mv, ok := m.merges[pairKey(cur.id, right.id)]
			if !ok || mv.newID != top.newID {
				continue
			}
			cur.id = int(top.newID)
			cur.end = right.end
			syms[cur.next].end = syms[cur.next].start // mark removed
			cur.next = right.next
			if right.next >= 0 {
				syms[right.next].prev = int(top.pos)
			}
			if cur.prev >= 0 {
				if mv, ok := m.merges[pairKey(syms[cur.prev].id, cur.id)]; ok {
					h.push(mergeItem{rank: mv.rank, pos: int32(cur.prev), newID: mv.newID})
				}
			}
			if cur.next >= 0 {
				if mv, ok := m.merges[pairKey(cur.id, syms[cur.next].id)]; ok {
					h.push(mergeItem{rank: mv.rank, pos: top.pos, newID: mv.newID})
				}
			}
		}
	}
	out := make([]token, 0, len(syms))
	for i := 0; i >= 0 && i < len(syms); i = syms[i].next {
		out = append(out, token{id: syms[i].id, start: syms[i].start, end: syms[i].end})
	}
	return out
}
