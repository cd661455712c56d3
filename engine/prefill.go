package engine

import (
	"errors"
	"fmt"
)

// DefaultPrefillChunk is the most prompt tokens per row that one part of a
// prefill step holds. Longer prompts run as several parts: the attention
// scratch of a part grows with its length times the cache length, so
// chunking bounds prefill memory for long prompts.
const DefaultPrefillChunk = 512

// prefill runs every row's prompt through all layers, starting at position
// 0, and returns the logits after each row's last prompt token. Rows are
// right-padded to the longest prompt. All but the last token of each prompt
// run as parts of at most chunk tokens; the last tokens run as one part of
// one token per row, so the head reads each row's last position from the
// same [B,1,D] buffers a decode step uses and no per-row gather is needed.
func (r *runner) prefill(prompts [][]int, layers []int, chunk int) (*stepLogits, error) {
	return r.prefillRows(prompts, nil, layers, chunk)
}

// prefillRows is prefill for the rows whose prompts are not nil, while the
// other rows hold sequences that must not be disturbed: their pad tokens go
// to idle[b], the slot their next token will overwrite.
func (r *runner) prefillRows(prompts [][]int, idle []int, layers []int, chunk int) (*stepLogits, error) {
	if len(prompts) != r.batch {
		return nil, fmt.Errorf("%d prompts for a batch of %d", len(prompts), r.batch)
	}
	longest, all := 0, true
	for b, p := range prompts {
		if p == nil {
			all = false
			continue
		}
		if len(p) == 0 {
			return nil, fmt.Errorf("row %d: empty prompt", b)
		}
		longest = max(longest, len(p))
	}
	if longest == 0 {
		return nil, errors.New("no prompt to prefill")
	}
	if r.g.onHost() && r.g.full == nil {
		return r.prefillGather(prompts, idle, layers, chunk, longest, all)
	}
	var parts []part
	for start := 0; start < longest-1; start += chunk {
		S := min(chunk, longest-1-start)
		p := part{S: S, ids: make([]int, r.batch*S), pos: make([]int, r.batch), active: make([]bool, r.batch)}
		for b, prompt := range prompts {
			switch {
			case prompt == nil:
				p.pos[b] = idle[b]
			case start < len(prompt)-1:
				p.pos[b], p.active[b] = start, true
				for i := 0; i < S && start+i < len(prompt)-1; i++ {
					p.ids[b*S+i] = prompt[start+i]
				}
			default:
				p.pos[b] = len(prompt) - 1 // overwritten by the last part
			}
		}
		if all && start == 0 {
			p.active = nil // every row starts here: one run for the batch
		}
		parts = append(parts, p)
	}
	last := part{S: 1, ids: make([]int, r.batch), pos: make([]int, r.batch)}
	for b, prompt := range prompts {
		if prompt == nil {
			last.pos[b] = idle[b]
			continue
		}
		last.ids[b], last.pos[b] = prompt[len(prompt)-1], len(prompt)-1
	}
	return r.step(append(parts, last), layers, true)
}

// prefillGather is prefill on host memory: every prompt token, the last
// included, runs in the chunked parts, and each row's last hidden state is
// copied into the one-token buffers the head reads. That saves the separate
// one-token pass through every layer that device memory needs (it cannot be
// gathered from without another graph).
func (r *runner) prefillGather(prompts [][]int, idle []int, layers []int, chunk, longest int, all bool) (*stepLogits, error) {
	var parts []part
	for start := 0; start < longest; start += chunk {
		S := min(chunk, longest-start)
		p := part{S: S, ids: make([]int, r.batch*S), pos: make([]int, r.batch), active: make([]bool, r.batch)}
		for b, prompt := range prompts {
			switch {
			case prompt == nil:
				p.pos[b] = idle[b]
			case start < len(prompt):
				p.pos[b], p.active[b] = start, true
				for i := 0; i < S && start+i < len(prompt); i++ {
					p.ids[b*S+i] = prompt[start+i]
				}
			default:
				p.pos[b] = len(prompt) // past its end: its next token overwrites it
			}
		}
		if all && start == 0 {
			p.active = nil // every row starts here: one run for the batch
		}
		parts = append(parts, p)
	}
	units, err := r.plan(parts, false)
	if err != nil {
		return nil, err
	}
	if err := r.forward(units, layers); err != nil {
		return nil, err
	}
	final := len(layers) % 2
	last, err := r.buffers(1, 0)
	if err != nil {
		return nil, err
	}
	dst, err := last.hidden[final].Float32s()
	if err != nil {
		return nil, err
	}
	D := r.g.man.HiddenSize
	for _, u := range units {
		src, err := u.b.hidden[final].Float32s()
		if err != nil {
			return nil, err
		}
		for i := range u.pos {
			b := i
			if u.row >= 0 {
				b = u.row
			}
			if prompts[b] == nil {
				continue
			}
			at := len(prompts[b]) - 1 - u.pos[i] // the row's last token within the unit
			if at < 0 || at >= u.b.S {
				continue
			}
			o := (i*u.b.S + at) * D
			copy(dst[b*D:(b+1)*D], src[o:o+D])
		}
	}
	hb, err := last.headBinding(r, final)
	if err != nil {
		return nil, err
	}
	if err := r.g.run(r.g.head, hb, func() string { return "head" }); err != nil {
		return nil, err
	}
	return last.readLogits(r)
}
