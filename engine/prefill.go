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
// right-padded to the longest prompt and run in parts of at most chunk
// tokens; the head reads each row's last position from the same [B,1,D]
// buffers a decode step uses (docs/design.md, "The runner").
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
	some, all := false, true
	for b, p := range prompts {
		if p == nil {
			all = false
			continue
		}
		if len(p) == 0 {
			return nil, fmt.Errorf("row %d: empty prompt", b)
		}
		some = true
	}
	if !some {
		return nil, errors.New("no prompt to prefill")
	}
	if r.g.onHost() && r.g.full == nil {
		return r.prefillGather(prompts, idle, layers, chunk, all)
	}
	// All but each prompt's last token run in chunks; the last tokens run
	// as one part of one token per row below.
	parts := r.chunkParts(prompts, idle, chunk, 1, all)
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
func (r *runner) prefillGather(prompts [][]int, idle []int, layers []int, chunk int, all bool) (*stepLogits, error) {
	parts := r.chunkParts(prompts, idle, chunk, 0, all)
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
	dst, err := last.hidden[final].Bytes()
	if err != nil {
		return nil, err
	}
	D := r.g.man.HiddenSize * r.g.act().Size() // bytes per hidden state
	for _, u := range units {
		src, err := u.b.hidden[final].Bytes()
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

// chunkParts splits the prompts, less their last `hold` tokens, into parts
// of at most chunk tokens per row starting at position 0. A row whose
// tokens ended before a part is inactive there, its pads aimed at the slot
// after them (which a later token overwrites); rows without a prompt pad at
// idle[b]. When every row has a prompt, the first part runs the batch as a
// whole.
func (r *runner) chunkParts(prompts [][]int, idle []int, chunk, hold int, all bool) []part {
	longest := 0
	for _, p := range prompts {
		if p != nil {
			longest = max(longest, len(p)-hold)
		}
	}
	var parts []part
	for start := 0; start < longest; start += chunk {
		S := min(chunk, longest-start)
		p := part{S: S, ids: make([]int, r.batch*S), pos: make([]int, r.batch), active: make([]bool, r.batch)}
		for b, prompt := range prompts {
			n := len(prompt) - hold
			switch {
			case prompt == nil:
				p.pos[b] = idle[b]
			case start < n:
				p.pos[b], p.active[b] = start, true
				for i := 0; i < S && start+i < n; i++ {
					p.ids[b*S+i] = prompt[start+i]
				}
			default:
				p.pos[b] = n
			}
		}
		if all && start == 0 {
			p.active = nil
		}
		parts = append(parts, p)
	}
	return parts
}
