package tokenizer

import (
	"encoding/json"
	"fmt"
)

// postProcessor adds special tokens around an encoding.
type postProcessor interface {
	// pieces returns the pieces to emit for a single sequence; a piece with
	// seq true stands for the encoded sequence itself.
	pieces() []templatePiece
	// trimOffsets reports whether a ByteLevel processor trims the offsets
	// of tokens to exclude leading and trailing spaces, and whether it keeps
	// the prefix space of the first token (add_prefix_space).
	trimOffsets() (trim, keepPrefix bool)
}

// templatePiece is either the sequence or a run of special tokens.
type templatePiece struct {
	seq    bool
	ids    []int
	tokens []string
}

type templateProcessor []templatePiece

func (t templateProcessor) pieces() []templatePiece { return t }

func (t templateProcessor) trimOffsets() (bool, bool) { return false, false }

// byteLevelProcessor only trims offsets; ids are left unchanged.
type byteLevelProcessor struct{ addPrefixSpace bool }

func (byteLevelProcessor) pieces() []templatePiece { return []templatePiece{{seq: true}} }

func (b byteLevelProcessor) trimOffsets() (bool, bool) { return true, b.addPrefixSpace }

// seqProcessor is a Sequence of processors, folded into one template.
type seqProcessor struct {
	templateProcessor
	trim, keepPrefix bool
}

func (s seqProcessor) trimOffsets() (bool, bool) { return s.trim, s.keepPrefix }

func newPostProcessor(raw json.RawMessage) (postProcessor, error) {
	if isNull(raw) {
		return nil, nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	switch t.Type {
	case "ByteLevel":
		var cfg struct {
			TrimOffsets    bool `json:"trim_offsets"`
			AddPrefixSpace bool `json:"add_prefix_space"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("post_processor ByteLevel: %w", err)
		}
		if !cfg.TrimOffsets {
			return nil, nil
		}
		return byteLevelProcessor{addPrefixSpace: cfg.AddPrefixSpace}, nil
	case "Sequence":
		var cfg struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("post_processor Sequence: %w", err)
		}
		var out postProcessor
		for _, r := range cfg.Processors {
			p, err := newPostProcessor(r)
			if err != nil {
				return nil, err
			}
			if p == nil {
				continue
			}
			if out != nil {
				t1, k1 := out.trimOffsets()
				t2, k2 := p.trimOffsets()
				out = seqProcessor{nestTemplates(out, p), t1 || t2, (t1 && k1) || (t2 && k2)}
			} else {
				out = p
			}
		}
		return out, nil
	case "TemplateProcessing":
		return parseTemplate(raw)
	case "BertProcessing", "RobertaProcessing":
		var cfg struct {
			Sep [2]json.RawMessage `json:"sep"`
			Cls [2]json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("post_processor %s: %w", t.Type, err)
		}
		special := func(p [2]json.RawMessage) (templatePiece, error) {
			var tok string
			var id int
			if err := json.Unmarshal(p[0], &tok); err != nil {
				return templatePiece{}, err
			}
			if err := json.Unmarshal(p[1], &id); err != nil {
				return templatePiece{}, err
			}
			return templatePiece{ids: []int{id}, tokens: []string{tok}}, nil
		}
		cls, err := special(cfg.Cls)
		if err != nil {
			return nil, fmt.Errorf("post_processor %s: cls: %w", t.Type, err)
		}
		sep, err := special(cfg.Sep)
		if err != nil {
			return nil, fmt.Errorf("post_processor %s: sep: %w", t.Type, err)
		}
		return templateProcessor{cls, {seq: true}, sep}, nil
	case "":
		return nil, fmt.Errorf("post_processor: missing type in %s", truncate(string(raw), 60))
	}
	return nil, fmt.Errorf("post_processor %q is not supported", t.Type)
}

// nestTemplates applies inner first, then outer (a Sequence of processors).
func nestTemplates(inner, outer postProcessor) templateProcessor {
	var out templateProcessor
	for _, p := range outer.pieces() {
		if p.seq {
			out = append(out, inner.pieces()...)
		} else {
			out = append(out, p)
		}
	}
	return out
}

func parseTemplate(raw json.RawMessage) (postProcessor, error) {
	var cfg struct {
		Single []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
			Sequence *struct {
				ID string `json:"id"`
			} `json:"Sequence"`
		} `json:"single"`
		SpecialTokens map[string]struct {
			ID     string   `json:"id"`
			IDs    []int    `json:"ids"`
			Tokens []string `json:"tokens"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("post_processor TemplateProcessing: %w", err)
	}
	var out templateProcessor
	for _, p := range cfg.Single {
		switch {
		case p.Sequence != nil:
			out = append(out, templatePiece{seq: true})
		case p.SpecialToken != nil:
			st, ok := cfg.SpecialTokens[p.SpecialToken.ID]
			if !ok {
				return nil, fmt.Errorf("post_processor TemplateProcessing: special token %q is not in special_tokens", p.SpecialToken.ID)
			}
			if len(st.IDs) != len(st.Tokens) {
				return nil, fmt.Errorf("post_processor TemplateProcessing: special token %q has %d ids and %d tokens", p.SpecialToken.ID, len(st.IDs), len(st.Tokens))
			}
			out = append(out, templatePiece{ids: st.IDs, tokens: st.Tokens})
		default:
			return nil, fmt.Errorf("post_processor TemplateProcessing: a template piece must be SpecialToken or Sequence")
		}
	}
	return out, nil
}
