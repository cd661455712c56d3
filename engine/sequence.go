package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// sequence is the state of one request while it decodes.
type sequence struct {
	index    int
	req      *Request
	prompt   []int
	schedule Schedule
	draft    int // tokens per lossless round; 0 when not lossless
	// confidence is the resolved Request.DraftConfidence.
	confidence float64
	sampler    *sampler
	decoder    StreamDecoder // nil without a tokenizer

	// enqueued, started and firstToken time the request: when it was
	// queued, when its prefill began, when its first token came.
	enqueued, started, firstToken time.Time

	out     []int
	text    strings.Builder
	emitted int // bytes of text already reported
	done    bool
	reason  string
	stats   Stats
}

// Check reports whether a request is valid for this model without running it.
func (m *Model) Check(req Request) error {
	_, err := m.newSequence(context.Background(), 0, &req)
	return err
}

// newSequence checks a request and makes its state; index is its place
// among the requests of a call.
func (m *Model) newSequence(ctx context.Context, index int, req *Request) (*sequence, error) {
	if err := req.SamplingOptions.Validate(); err != nil {
		return nil, err
	}
	if req.MaxTokens < 0 {
		return nil, fmt.Errorf("max tokens %d: must be ≥ 0", req.MaxTokens)
	}
	sched, err := m.ResolveSchedule(req.Schedule, req.Speedup)
	if err != nil {
		return nil, err
	}
	draft, confidence := 0, 0.0
	if req.Lossless {
		switch confidence = req.DraftConfidence; {
		case confidence == 0:
			confidence = DefaultDraftConfidence
		case math.IsNaN(confidence) || confidence > 1:
			return nil, fmt.Errorf("draft confidence %g: want a probability up to 1 (or negative for none)", confidence)
		}
		if draft = req.Draft; draft == 0 {
			draft = DefaultDraftTokens
		}
		if draft < 1 || draft > maxDraftTokens {
			return nil, fmt.Errorf("draft of %d tokens: want 1..%d", draft, maxDraftTokens)
		}
		if len(sched.Layers) == m.Manifest.NumLayers && req.Schedule == "" && req.Speedup == 0 {
			if sched, err = ParseSchedule("uls:2", 0, m.Manifest.NumLayers); err != nil {
				return nil, fmt.Errorf("lossless draft schedule: %w", err)
			}
		}
	} else if req.Draft != 0 || req.DraftConfidence != 0 {
		return nil, errors.New("a draft length or confidence is only meaningful for lossless decoding")
	}
	prompt := req.PromptIDs
	if prompt == nil {
		if m.Tokenizer == nil {
			return nil, errors.New("the model package has no tokenizer: give prompt ids instead of text")
		}
		ids, err := encode(ctx, m.Tokenizer, req.Prompt)
		if err != nil {
			return nil, fmt.Errorf("encode prompt: %w", err)
		}
		prompt = ids
	}
	man := m.Manifest
	if len(prompt) == 0 {
		return nil, errors.New("the prompt is empty")
	}
	if len(prompt) >= man.MaxSeqLen {
		return nil, fmt.Errorf("the prompt has %d tokens but the model's max_seq_len is %d (room is needed for at least one new token)", len(prompt), man.MaxSeqLen)
	}
	for _, id := range prompt {
		if id < 0 || id >= man.VocabSize {
			return nil, fmt.Errorf("prompt token id %d is outside the vocabulary (0..%d)", id, man.VocabSize-1)
		}
	}
	s := &sequence{index: index, req: req, prompt: slices.Clone(prompt), schedule: sched, draft: draft, confidence: confidence, out: []int{},
		sampler: newSampler(req.SamplingOptions, prompt)}
	if m.Tokenizer != nil {
		s.decoder = m.Tokenizer.NewStreamDecoder()
	}
	return s, nil
}

// groupKey names what requests must share to decode in one batch.
func (s *sequence) groupKey() string {
	if s.draft > 0 {
		return fmt.Sprintf("lossless %s draft %d confidence %g", s.schedule, s.draft, s.confidence)
	}
	return s.schedule.String()
}

// pos is the position the sequence's next token will occupy.
func (s *sequence) pos() int { return len(s.prompt) + len(s.out) }

func (s *sequence) maxTokens() int {
	if s.req.MaxTokens == 0 {
		return DefaultMaxTokens
	}
	return s.req.MaxTokens
}

func (s *sequence) result() Result {
	return Result{ID: s.req.ID, TokenIDs: s.out, Text: s.text.String()[:s.emittedLimit()], StopReason: s.reason,
		KeptLayers: s.schedule.Layers, Stats: s.stats}
}

// emittedLimit is how much of the text belongs to the result: all of it,
// unless a stop string cut it.
func (s *sequence) emittedLimit() int {
	if s.done {
		return s.emitted
	}
	return s.text.Len()
}

// encode encodes a text prompt, stopping when ctx ends if the tokenizer can.
func encode(ctx context.Context, t Tokenizer, text string) ([]int, error) {
	if ce, ok := t.(ContextEncoder); ok {
		return ce.EncodeContext(ctx, text, true)
	}
	return t.Encode(text, true)
}
