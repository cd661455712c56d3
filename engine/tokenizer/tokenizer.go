// Package tokenizer implements Hugging Face tokenizer.json tokenizers (BPE
// models with their normalizers, pre-tokenizers, added tokens, decoders and
// post-processors) in pure Go, producing the same ids and text as Hugging
// Face's tokenizers library.
package tokenizer

import (
	"github.com/strata-llm/strata/internal/limitread"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Encoding is the result of Encode.
type Encoding struct {
	// IDs are the token ids.
	IDs []int
	// Tokens are the token strings (vocabulary entries).
	Tokens []string
	// Offsets are the [start, end) byte offsets of each token in the input
	// text ([0, 0] for tokens added by the post-processor).
	Offsets [][2]int
}

// Tokenizer encodes text to token ids and decodes ids to text. It is safe
// for concurrent use.
type Tokenizer struct {
	normalizer normalizer
	pre        preTokenizer
	model      model
	decoder    decoder
	post       postProcessor

	added      []addedToken
	rawSet     addedSet // added tokens matched in the original text
	normSet    addedSet // added tokens matched in the normalized text
	addedByID  map[int]int
	addedByStr map[string]int
	special    map[int]bool
}

// Load reads a tokenizer.json file, or the tokenizer.json inside a directory.
func Load(path string) (*Tokenizer, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := limitread.ReadFile(path, 1<<30)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := FromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}

type fileJSON struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
}

// FromJSON parses the contents of a tokenizer.json file. Components that
// are not supported give an error naming them.
func FromJSON(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	if isNull(f.Model) {
		return nil, errors.New("tokenizer.json has no model")
	}
	if !isNull(f.Truncation) || !isNull(f.Padding) {
		slog.Warn("tokenizer: truncation and padding settings are ignored")
	}
	var t typed
	if err := json.Unmarshal(f.Model, &t); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	tk := &Tokenizer{}
	var err error
	switch t.Type {
	case "BPE", "":
		if tk.model, err = newBPE(f.Model); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("model %q is not supported (only BPE)", t.Type)
	}
	if tk.normalizer, err = newNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if tk.pre, err = newPreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if tk.decoder, err = newDecoder(f.Decoder); err != nil {
		return nil, err
	}
	if tk.post, err = newPostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if err := tk.setAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	return tk, nil
}

func (t *Tokenizer) setAdded(tokens []addedToken) error {
	t.addedByID = map[int]int{}
	t.addedByStr = map[string]int{}
	t.special = map[int]bool{}
	var raw, norm []addedToken
	var rawC, normC []string
	for i, a := range tokens {
		if a.Content == "" {
			return fmt.Errorf("added_tokens[%d]: empty content", i)
		}
		if a.ID < 0 {
			return fmt.Errorf("added_tokens[%d]: negative id %d", i, a.ID)
		}
		if id, ok := t.model.tokenToID(a.Content); ok {
			// Like Hugging Face, a token already in the model keeps its id.
			a.ID = id
		}
		if a.Normalized == nil {
			v := !a.Special
			a.Normalized = &v
		}
		t.added = append(t.added, a)
		if _, ok := t.addedByID[a.ID]; !ok {
			t.addedByID[a.ID] = len(t.added) - 1
		}
		if _, ok := t.addedByStr[a.Content]; !ok {
			t.addedByStr[a.Content] = a.ID
		}
		if a.Special {
			t.special[a.ID] = true
		}
		if *a.Normalized {
			content := a.Content
			if t.normalizer != nil {
				content = t.normalizer.normalize(newNstr(content, 0)).s
			}
			norm = append(norm, a)
			normC = append(normC, content)
		} else {
			raw = append(raw, a)
			rawC = append(rawC, a.Content)
		}
	}
	t.rawSet = newAddedSet(raw, rawC)
	t.normSet = newAddedSet(norm, normC)
	return nil
}

// Encode tokenizes text. With addSpecial the post-processor's special
// tokens (such as BOS) are added, as Hugging Face's encode does by default.
// Text must be valid UTF-8.
func (t *Tokenizer) Encode(text string, addSpecial bool) (Encoding, error) {
	return t.EncodeContext(context.Background(), text, addSpecial)
}

// EncodeContext is Encode that stops when ctx is done (checked between
// pieces of the text; a single regex match is bounded by MatchTimeout) and
// fails with ErrPatternTimeout when a tokenizer.json regex runs past its
// time limit.
func (t *Tokenizer) EncodeContext(ctx context.Context, text string, addSpecial bool) (enc Encoding, err error) {
	defer func() {
		if r := recover(); r != nil {
			abort, ok := r.(matchAbort)
			if !ok {
				panic(r)
			}
			enc, err = Encoding{}, fmt.Errorf("encode: %w", abort.err)
		}
	}()
	if !utf8.ValidString(text) {
		return Encoding{}, errors.New("encode: text is not valid UTF-8")
	}
	if len(text) > math.MaxInt32/2 {
		return Encoding{}, fmt.Errorf("encode: text of %d bytes is too long (at most 1 GiB)", len(text))
	}
	est := len(text)/3 + 2
	enc = Encoding{IDs: make([]int, 0, est), Tokens: make([]string, 0, est), Offsets: make([][2]int, 0, est)}
	for _, seg := range t.rawSet.findSegments(text) {
		if err := ctx.Err(); err != nil {
			return Encoding{}, fmt.Errorf("encode: %w", err)
		}
		if seg.token >= 0 {
			enc.addAdded(t.rawSet.tokens[seg.token].ID, text[seg.start:seg.end], seg.start, seg.end)
			continue
		}
		if seg.end <= seg.start {
			continue
		}
		n := newNstr(text[seg.start:seg.end], seg.start)
		if t.normalizer != nil {
			n = t.normalizer.normalize(n)
		}
		for _, nseg := range t.normSet.findSegments(n.s) {
			if nseg.token >= 0 {
				sp := n.origin(nseg.start, nseg.end)
				enc.addAdded(t.normSet.tokens[nseg.token].ID, n.s[nseg.start:nseg.end], sp.start, sp.end)
				continue
			}
			if nseg.end <= nseg.start {
				continue
			}
			pieces := []nstr{n.sub(nseg.start, nseg.end)}
			if t.pre != nil {
				pieces = t.pre.preTokenize(pieces)
			}
			for i, p := range pieces {
				if i%256 == 0 {
					if err := ctx.Err(); err != nil {
						return Encoding{}, fmt.Errorf("encode: %w", err)
					}
				}
				for _, tok := range t.model.tokenize(p.s) {
					sp := p.origin(tok.start, tok.end)
					s, _ := t.model.idToToken(tok.id)
					enc.IDs = append(enc.IDs, tok.id)
					enc.Tokens = append(enc.Tokens, s)
					enc.Offsets = append(enc.Offsets, [2]int{sp.start, sp.end})
				}
			}
		}
	}
	if t.post != nil {
		if trim, keepPrefix := t.post.trimOffsets(); trim {
			trimOffsets(&enc, keepPrefix)
		}
	}
	if addSpecial && t.post != nil {
		enc = t.applyTemplate(enc)
	}
	return enc, nil
}

// trimOffsets narrows token offsets to exclude leading and trailing
// (byte-level) spaces, as the ByteLevel post-processor's trim_offsets does.
func trimOffsets(enc *Encoding, keepPrefix bool) {
	isSpace := func(r rune) bool { return r == 'Ġ' || unicode.IsSpace(r) }
	for i, tok := range enc.Tokens {
		lead := len([]rune(tok)) - len([]rune(strings.TrimLeftFunc(tok, isSpace)))
		trail := len([]rune(tok)) - len([]rune(strings.TrimRightFunc(tok, isSpace)))
		o := &enc.Offsets[i]
		if lead == 1 && keepPrefix && (i == 0 || o[0] == 0) {
			lead = 0 // the space the pre-tokenizer added
		}
		if lead > 0 {
			o[0] = min(o[0]+lead, o[1])
		}
		if trail > 0 && o[1] >= trail {
			o[1] = max(o[1]-trail, o[0])
		}
	}
}

func (e *Encoding) addAdded(id int, tok string, start, end int) {
	e.IDs = append(e.IDs, id)
	e.Tokens = append(e.Tokens, tok)
	e.Offsets = append(e.Offsets, [2]int{start, end})
}

func (t *Tokenizer) applyTemplate(enc Encoding) Encoding {
	var out Encoding
	for _, p := range t.post.pieces() {
		if p.seq {
			out.IDs = append(out.IDs, enc.IDs...)
			out.Tokens = append(out.Tokens, enc.Tokens...)
			out.Offsets = append(out.Offsets, enc.Offsets...)
			continue
		}
		out.IDs = append(out.IDs, p.ids...)
		out.Tokens = append(out.Tokens, p.tokens...)
		for range p.ids {
			out.Offsets = append(out.Offsets, [2]int{0, 0})
		}
	}
	return out
}

// Decode turns ids into text. Unknown ids are ignored; with skipSpecial the
// special added tokens are left out.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		if skipSpecial && t.special[id] {
			continue
		}
		if s, ok := t.IDToToken(id); ok {
			tokens = append(tokens, s)
		}
	}
	if t.decoder == nil {
		return strings.Join(tokens, " ")
	}
	return strings.Join(t.decoder.decodeChain(tokens), "")
}

// TokenToID returns the id of a token string (added tokens included).
func (t *Tokenizer) TokenToID(token string) (int, bool) {
	if id, ok := t.addedByStr[token]; ok {
		return id, true
	}
	return t.model.tokenToID(token)
}

// IDToToken returns the token string of an id (added tokens included).
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if i, ok := t.addedByID[id]; ok {
		return t.added[i].Content, true
	}
	return t.model.idToToken(id)
}

// VocabSize returns the number of distinct ids: the model vocabulary plus
// the added tokens that are not part of it.
func (t *Tokenizer) VocabSize() int {
	n := t.model.vocabSize()
	for id := range t.addedByID {
		if _, ok := t.model.idToToken(id); !ok {
			n++
		}
	}
	return n
}

// IsSpecial reports whether id is a special added token.
func (t *Tokenizer) IsSpecial(id int) bool { return t.special[id] }

// SpecialIDs returns the ids of all special added tokens.
func (t *Tokenizer) SpecialIDs() []int {
	out := make([]int, 0, len(t.special))
	for _, a := range t.added {
		if a.Special {
			out = append(out, a.ID)
		}
	}
	return out
}

// BOS returns the token the post-processor puts before the sequence (such
// as <s>), if any.
func (t *Tokenizer) BOS() (int, bool) {
	if t.post == nil {
		return 0, false
	}
	ps := t.post.pieces()
	if len(ps) > 0 && !ps[0].seq && len(ps[0].ids) > 0 {
		return ps[0].ids[0], true
	}
	return 0, false
}

// eosNames are the end-of-sequence tokens of common model families.
var eosNames = []string{"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>", "<｜end▁of▁sentence｜>"}

// EOS returns the end-of-sequence token: the one the post-processor puts
// after the sequence, else a special token with a well-known EOS name.
func (t *Tokenizer) EOS() (int, bool) {
	if t.post != nil {
		ps := t.post.pieces()
		if n := len(ps); n > 1 && !ps[n-1].seq && len(ps[n-1].ids) > 0 {
			return ps[n-1].ids[len(ps[n-1].ids)-1], true
		}
	}
	for _, name := range eosNames {
		if id, ok := t.addedByStr[name]; ok && t.special[id] {
			return id, true
		}
	}
	return 0, false
}
