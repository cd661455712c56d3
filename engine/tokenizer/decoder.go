package tokenizer

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decoder turns a list of token strings into a list of text pieces, like
// Hugging Face's Decoder::decode_chain.
type decoder interface {
	decodeChain(tokens []string) []string
}

func newDecoder(raw json.RawMessage) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	switch t.Type {
	case "Sequence":
		var cfg struct {
			Decoders []json.RawMessage `json:"decoders"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("decoder Sequence: %w", err)
		}
		var seq seqDecoder
		for _, r := range cfg.Decoders {
			d, err := newDecoder(r)
			if err != nil {
				return nil, err
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return seq, nil
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	case "Metaspace":
		m, err := parseMetaspace(raw)
		if err != nil {
			return nil, fmt.Errorf("decoder Metaspace: %w", err)
		}
		return metaspaceDecoder(m), nil
	case "ByteFallback":
		return byteFallbackDecoder{}, nil
	case "Fuse":
		return fuseDecoder{}, nil
	case "Strip":
		var cfg struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("decoder Strip: %w", err)
		}
		if utf8.RuneCountInString(cfg.Content) != 1 || cfg.Start < 0 || cfg.Stop < 0 {
			return nil, fmt.Errorf("decoder Strip: want one content character and non-negative start/stop")
		}
		r, _ := utf8.DecodeRuneInString(cfg.Content)
		return stripDecoder{content: r, start: cfg.Start, stop: cfg.Stop}, nil
	case "Replace":
		var cfg struct {
			Pattern json.RawMessage `json:"pattern"`
			Content string          `json:"content"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("decoder Replace: %w", err)
		}
		m, err := newPattern(cfg.Pattern)
		if err != nil {
			return nil, fmt.Errorf("decoder Replace: %w", err)
		}
		return replaceDecoder{m: m, content: cfg.Content}, nil
	case "BPEDecoder":
		var cfg struct {
			Suffix *string `json:"suffix"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("decoder BPEDecoder: %w", err)
		}
		suffix := "</w>"
		if cfg.Suffix != nil {
			suffix = *cfg.Suffix
		}
		return bpeDecoder{suffix: suffix}, nil
	case "":
		return nil, fmt.Errorf("decoder: missing type in %s", truncate(string(raw), 60))
	}
	return nil, fmt.Errorf("decoder %q is not supported", t.Type)
}

type seqDecoder []decoder

func (s seqDecoder) decodeChain(tokens []string) []string {
	for _, d := range s {
		tokens = d.decodeChain(tokens)
	}
	return tokens
}

// byteLevelDecoder maps GPT-2 byte characters back to bytes over the whole
// sequence and converts the result to text, replacing invalid UTF-8.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decodeChain(tokens []string) []string {
	var buf []byte
	for _, t := range tokens {
		buf = appendByteLevel(buf, t)
	}
	return []string{strings.ToValidUTF8(string(buf), "\uFFFD")}
}

// appendByteLevel appends the bytes a byte-level token stands for; a token
// with a character outside the table is taken as its own UTF-8 bytes.
func appendByteLevel(buf []byte, t string) []byte {
	n := len(buf)
	for _, r := range t {
		b, ok := charToByte[r]
		if !ok {
			return append(buf[:n], t...)
		}
		buf = append(buf, b)
	}
	return buf
}

type metaspaceDecoder metaspace

func (m metaspaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		var sb strings.Builder
		for _, r := range t {
			if string(r) == m.replacement {
				if i == 0 && m.scheme != prependNever {
					continue
				}
				sb.WriteByte(' ')
				continue
			}
			sb.WriteRune(r)
		}
		out[i] = sb.String()
	}
	return out
}

// byteFallbackDecoder turns runs of <0xXX> tokens into text; bytes that are
// not valid UTF-8 become one U+FFFD each.
type byteFallbackDecoder struct{}

func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(t[3:5], 16, 8)
	return byte(v), err == nil
}

func (byteFallbackDecoder) decodeChain(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

type fuseDecoder struct{}

func (fuseDecoder) decodeChain(tokens []string) []string {
	return []string{strings.Join(tokens, "")}
}

// stripDecoder removes up to start leading and stop trailing content
// characters from every token.
type stripDecoder struct {
	content     rune
	start, stop int
}

func (s stripDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		for k := 0; k < s.start && t != ""; k++ {
			r, size := utf8.DecodeRuneInString(t)
			if r != s.content {
				break
			}
			t = t[size:]
		}
		for k := 0; k < s.stop && t != ""; k++ {
			r, size := utf8.DecodeLastRuneInString(t)
			if r != s.content {
				break
			}
			t = t[:len(t)-size]
		}
		out[i] = t
	}
	return out
}

type replaceDecoder struct {
	m       matcher
	content string
}

func (r replaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = r.replace(t)
	}
	return out
}

// replace applies the replacement to one token. Decoding cannot fail: a
// pattern that runs past its time limit leaves the token as it is.
func (r replaceDecoder) replace(t string) (out string) {
	defer func() {
		if v := recover(); v != nil {
			abort, ok := v.(matchAbort)
			if !ok {
				panic(v)
			}
			slog.Warn("tokenizer: Replace decoder skipped", "err", abort.err)
			out = t
		}
	}()
	return replaceNormalizer(r).normalize(newNstr(t, 0)).s
}

type bpeDecoder struct{ suffix string }

func (b bpeDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		rep := " "
		if i == len(tokens)-1 {
			rep = ""
		}
		out[i] = strings.ReplaceAll(t, b.suffix, rep)
	}
	return out
}
