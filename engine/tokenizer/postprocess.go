package tokenizer

import (
	"encoding/json"
	"fmt"
)

// postProcessor adds special tokens around an encoding.
type postProcessor interface {
	// process returns the pieces to emit for a single sequence; a piece with
	// seq true stands for the encoded sequence itself.
	pieces() []templatePiece
}

// templatePiece is either the sequence or a run of special tokens.
type templatePiece struct {
	seq    bool
	ids    []int
	tokens []string
}

type templateProcessor []templatePiece

func (t templateProcessor) pieces() []templatePiece { return t }

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
		// Only adjusts offsets (trim_offsets); ids are unchanged.
		return nil, nil
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
				out = nestTemplates(out, p)
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
func nestTemplates(inner, outer postProcessor) postProcessor {
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
