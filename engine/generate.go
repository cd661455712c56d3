package engine

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Generate runs one request.
func (m *Model) Generate(ctx context.Context, req Request) (Result, error) {
	return m.GenerateStream(ctx, req, nil)
}

// GenerateStream runs one request and calls onToken for every new token.
// An error from onToken stops generation and is returned.
func (m *Model) GenerateStream(ctx context.Context, req Request, onToken func(Token) error) (Result, error) {
	res, err := m.GenerateBatch(ctx, []Request{req}, onToken)
	if len(res) == 1 {
		return res[0], err
	}
	return Result{}, err
}

// GenerateBatch runs many requests, decoding up to Options.MaxBatch of them
// together. Requests with different schedules are decoded in separate
// batches. Results come back in request order. onToken (may be nil) sees
// every token; Token.Index is the request's index in reqs.
func (m *Model) GenerateBatch(ctx context.Context, reqs []Request, onToken func(Token) error) ([]Result, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	seqs := make([]*sequence, len(reqs))
	for i := range reqs {
		s, err := m.newSequence(ctx, i, &reqs[i])
		if err != nil {
			if len(reqs) > 1 {
				err = fmt.Errorf("request %d: %w", i, err)
			}
			return nil, err
		}
		seqs[i] = s
	}
	if m.opts.StaticBatching {
		err := m.generateStatic(ctx, seqs, onToken)
		return results(seqs), err
	}
	var first error
	now := time.Now()
	for _, s := range seqs {
		s.enqueued = now
	}
	sc := &scheduler{m: m, queue: slices.Clone(seqs), arrived: len(seqs), onToken: onToken, done: func(c Completion) {
		if c.Err != nil && first == nil {
			first = c.Err
		}
	}}
	sc.run(ctx)
	return results(seqs), first
}

func results(seqs []*sequence) []Result {
	out := make([]Result, len(seqs))
	for i, s := range seqs {
		if s != nil {
			out[i] = s.result()
		}
	}
	return out
}
