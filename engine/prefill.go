package engine

import "fmt"

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
	if len(prompts) != r.batch {
		return nil, fmt.Errorf("%d prompts for a batch of %d", len(prompts), r.batch)
	}
	longest := 0
	for b, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("row %d: empty prompt", b)
		}
		longest = max(longest, len(p))
	}
	prefix := longest - 1
	var parts []part
	for start := 0; start < prefix; start += chunk {
		S := min(chunk, prefix-start)
		p := part{S: S, ids: make([]int, r.batch*S), pos: make([]int, r.batch)}
		for b, prompt := range prompts {
			p.pos[b] = start
			for i := 0; i < S && start+i < len(prompt)-1; i++ {
				p.ids[b*S+i] = prompt[start+i]
			}
		}
		parts = append(parts, p)
	}
	last := part{S: 1, ids: make([]int, r.batch), pos: make([]int, r.batch)}
	for b, prompt := range prompts {
		last.ids[b], last.pos[b] = prompt[len(prompt)-1], len(prompt)-1
	}
	return r.step(append(parts, last), layers, true)
}
