package engine

import (
	"fmt"
	"slices"
)

// Forward runs one sequence through every layer, a step of any number of
// tokens at a time, and returns the logits after each token: what `strata
// verify` compares with a reference forward pass. It uses the same runner
// as generation.
type Forward struct {
	m   *Model
	r   *runner
	pos int
}

// NewForward starts an empty sequence. Close it when done.
func (m *Model) NewForward() (*Forward, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	r, err := m.runnerFor(1, m.allLayers())
	if err != nil {
		return nil, err
	}
	return &Forward{m: m, r: r}, nil
}

// Step appends tokens to the sequence, runs them at full depth and returns
// the next-token logits after each of them.
func (f *Forward) Step(tokens []int) ([][]float32, error) {
	m := f.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	if len(tokens) == 0 {
		return nil, nil
	}
	if f.pos+len(tokens) > m.Manifest.MaxSeqLen {
		return nil, fmt.Errorf("%d tokens after %d exceed max_seq_len %d", len(tokens), f.pos, m.Manifest.MaxSeqLen)
	}
	for _, id := range tokens {
		if id < 0 || id >= m.Manifest.VocabSize {
			return nil, fmt.Errorf("token id %d is outside the vocabulary (0..%d)", id, m.Manifest.VocabSize-1)
		}
	}
	p := part{S: len(tokens), ids: slices.Clone(tokens), pos: []int{f.pos}}
	logits, err := f.r.step([]part{p}, m.allLayers(), true)
	if err != nil {
		return nil, err
	}
	f.pos += len(tokens)
	out := make([][]float32, len(tokens))
	for i := range out {
		out[i] = slices.Clone(logits.at(0, i))
	}
	return out, nil
}

// Close releases the sequence's KV cache.
func (f *Forward) Close() { f.r.close() }
