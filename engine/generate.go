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

// generateStatic decodes fixed batches: up to MaxBatch requests of one
// schedule prefill together and decode until the last of them stops.
func (m *Model) generateStatic(ctx context.Context, seqs []*sequence, onToken func(Token) error) error {
	groups := map[string][]*sequence{}
	var order []string
	for _, s := range seqs {
		key := s.groupKey()
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], s)
	}
	for _, key := range order {
		group := groups[key]
		for start := 0; start < len(group); start += m.opts.MaxBatch {
			chunk := group[start:min(start+m.opts.MaxBatch, len(group))]
			if err := m.decodeBatch(ctx, chunk, onToken); err != nil {
				return err
			}
		}
	}
	return nil
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

// decodeBatch prefills every sequence of a batch at full depth, then decodes
// them together through the schedule's layers until each one stops.
func (m *Model) decodeBatch(ctx context.Context, seqs []*sequence, onToken func(Token) error) error {
	sched := seqs[0].schedule
	lossless := seqs[0].draft > 0
	keep := sched.Layers
	if lossless {
		keep = m.allLayers() // the verify step writes every layer's KV
	}
	r, err := m.runnerFor(len(seqs), keep)
	if err != nil {
		return err
	}
	defer r.close()
	if err := ctx.Err(); err != nil {
		return err
	}

	start := time.Now()
	prompts := make([][]int, len(seqs))
	for b, s := range seqs {
		prompts[b] = s.prompt
	}
	logits, err := r.prefill(prompts, m.allLayers(), m.opts.PrefillChunk)
	if err != nil {
		return err
	}
	prefillDone := time.Now()
	if lossless {
		spec, err := m.decodeLossless(ctx, r, seqs, logits, sched.Layers, seqs[0].draft, seqs[0].confidence, onToken)
		if err != nil {
			return err
		}
		end := time.Now()
		m.finishStats(seqs, r, start, prefillDone, prefillDone, end, spec.Emitted, spec.VerifySteps, &spec)
		return nil
	}
	step := part{S: 1, ids: make([]int, len(seqs)), pos: make([]int, len(seqs))}
	sampleAll := func(logits *stepLogits) error {
		for b, s := range seqs {
			if s.done {
				continue
			}
			if err := s.sampleInto(m, logits.at(b, 0), &step, b, onToken); err != nil {
				return err
			}
		}
		return nil
	}
	if err := sampleAll(logits); err != nil {
		return err
	}
	firstToken := time.Now()
	decodeTokens, steps := 0, 0
	for {
		active := 0
		for _, s := range seqs {
			if !s.done {
				active++
			}
		}
		if active == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Finished rows keep feeding their last token at their last position;
		// rows are independent, so this changes nothing for the others.
		if logits, err = r.step([]part{step}, sched.Layers, true); err != nil {
			return err
		}
		decodeTokens += active
		steps++
		if err := sampleAll(logits); err != nil {
			return err
		}
	}
	m.finishStats(seqs, r, start, prefillDone, firstToken, time.Now(), decodeTokens, steps, nil)
	return nil
}

// finishStats files the batch's figures in every sequence.
func (m *Model) finishStats(seqs []*sequence, r *runner, start, prefillDone, firstToken, end time.Time, decodeTokens, steps int, spec *SpecStats) {
	group := GroupStats{
		BatchSize:     len(seqs),
		PrefillMillis: millis(prefillDone.Sub(start)),
		DecodeSteps:   steps,
		DecodeTokens:  decodeTokens,
		KVBytes:       r.kvBytes(),
		PrefillTPS:    rate(totalPrompt(seqs), prefillDone.Sub(start)),
		DecodeTPS:     rate(decodeTokens, end.Sub(firstToken)),
		DecodeMillis:  millis(end.Sub(firstToken)),
		TTFTMillis:    millis(firstToken.Sub(start)),
		Lossless:      spec,
	}
	for _, s := range seqs {
		s.stats = Stats{PromptTokens: len(s.prompt), GeneratedTokens: len(s.out), TTFTMillis: group.TTFTMillis,
			PrefillTPS: group.PrefillTPS, DecodeTPS: group.DecodeTPS, BatchSize: len(seqs), KVBytes: group.KVBytes, Group: group}
	}
}

func totalPrompt(seqs []*sequence) int {
	n := 0
	for _, s := range seqs {
		n += len(s.prompt)
	}
	return n
}

// rate is n per second over d, 0 when d is not positive.
func rate(n int, d time.Duration) float64 {
	if d <= 0 || n == 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// allLayers lists every layer of the model, in order.
func (m *Model) allLayers() []int { return allLayers(m.Manifest.NumLayers) }

// runnerFor makes a runner for a batch decoding through kept, after
// checking that its KV cache fits in memory.
func (m *Model) runnerFor(batch int, kept []int) (*runner, error) {
	if err := m.checkKVMemory(batch, Schedule{Layers: kept}); err != nil {
		return nil, err
	}
	keep := make([]bool, m.Manifest.NumLayers)
	for _, l := range kept {
		keep[l] = true
	}
	return newRunner(m.g, batch, keep)
}
