package engine

import (
	"context"
	"time"
)

// Static batches: a fixed set of rows prefills together and decodes until
// the last of them stops. Options.StaticBatching decodes every request so
// (for comparison with continuous batching); lossless requests always do
// (docs/design.md, "Batching").

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

// decodeBatch runs one static batch through the step loop: plain decoding
// without refills, or lossless rounds; every sequence's stats are the
// batch's.
func (m *Model) decodeBatch(ctx context.Context, seqs []*sequence, onToken func(Token) error) error {
	if seqs[0].draft > 0 {
		r, err := m.runnerFor(len(seqs), m.allLayers()) // the verify step writes every layer's KV
		if err != nil {
			return err
		}
		defer m.doneWith(r)
		p := newLossless(m, seqs, seqs[0].schedule.Layers, seqs[0].draft, seqs[0].confidence, onToken)
		if err := runSteps(ctx, r, m.opts.PrefillChunk, p); err != nil {
			return err
		}
		spec := p.stats()
		finishStats(seqs, r, p.start, p.prefillDone, p.prefillDone, time.Now(), spec.Emitted, spec.VerifySteps, &spec)
		return nil
	}
	r, err := m.runnerFor(len(seqs), seqs[0].schedule.Layers)
	if err != nil {
		return err
	}
	defer m.doneWith(r)
	var count BatchingStats
	d := newDecodeRows(m, len(seqs), seqs[0].schedule.Layers, &fixedRows{seqs: seqs}, false, &count, onToken)
	if err := runSteps(ctx, r, m.opts.PrefillChunk, d); err != nil {
		return err
	}
	finishStats(seqs, r, d.start, d.prefillDone, d.firstToken, time.Now(), count.BusyRows, count.DecodeSteps, nil)
	return nil
}
