package engine

import (
	"context"
	"math"
	"slices"
)

// DefaultDraftTokens is how many tokens a lossless round drafts at most
// when a request does not say.
const DefaultDraftTokens = 4

// DefaultDraftConfidence is the draft probability below which a lossless
// round stops drafting when a request does not say (Request.DraftConfidence).
const DefaultDraftConfidence = 0.8

// Lossless decoding: schedule-layer drafts verified through every layer, a
// round at a time (docs/design.md, "Lossless decoding").

// specRound is one row's state in a round.
type specRound struct {
	drafts []int
	q      [][]candidate // draft distributions, per drafted token (sampling only)
	argQ   []int         // the draft logits' argmax per drafted token
}

// decodeLossless decodes a prefilled batch losslessly; logits are the
// prefill's. draft lists the layers that draft.
func (m *Model) decodeLossless(ctx context.Context, r *runner, seqs []*sequence, logits *stepLogits, draft []int, k int, confidence float64, onToken func(Token) error) (spec SpecStats, err error) {
	all := m.allLayers()
	B := len(seqs)
	spec.Draft = k
	agree, agreeN := make([]int, k), make([]int, k)
	defer func() {
		spec.Agreement = make([]float64, k)
		for i := range agree {
			if agreeN[i] > 0 {
				spec.Agreement[i] = float64(agree[i]) / float64(agreeN[i])
			}
		}
	}()
	pending := make([]int, B) // the emitted token each running row feeds next
	for b, s := range seqs {
		if s.done {
			continue
		}
		if pending[b], err = s.sampler.next(logits.at(b, 0)); err != nil {
			return spec, err
		}
		if err := s.accept(m, pending[b], s.pos(), onToken); err != nil {
			return spec, err
		}
	}
	rounds := make([]specRound, B)
	for {
		running := 0
		room := k
		for _, s := range seqs {
			if !s.done {
				running++
				room = min(room, m.Manifest.MaxSeqLen-s.pos())
			}
		}
		if running == 0 {
			return spec, nil
		}
		if err := ctx.Err(); err != nil {
			return spec, err
		}
		// Draft up to room tokens per row through the kept layers.
		step := part{S: 1, ids: make([]int, B), pos: make([]int, B)}
		for b, s := range seqs {
			rounds[b] = specRound{}
			if !s.done {
				step.ids[b], step.pos[b] = pending[b], s.pos()-1
			}
		}
		K := 0
		for sure := true; sure && K < room; K++ {
			q, err := r.step([]part{step}, draft, true)
			if err != nil {
				return spec, err
			}
			// With the rule off, or no room for another step, the bound
			// alone ends drafting.
			judge := confidence >= 0 && K+1 < room
			sure = !judge
			for b, s := range seqs {
				if s.done {
					continue
				}
				raw, err := argmax(q.at(b, 0)) // before dist applies the warpers
				if err != nil {
					return spec, err
				}
				d, err := s.sampler.dist(q.at(b, 0))
				if err != nil {
					return spec, err
				}
				sure = sure || judge && confident(q.at(b, 0), raw, confidence)
				rd := &rounds[b]
				rd.argQ = append(rd.argQ, raw)
				id := s.sampler.draw(d) // greedy: d is the argmax alone
				if !s.sampler.greedy() {
					rd.q = append(rd.q, slices.Clone(d))
				}
				s.sampler.record(id)
				rd.drafts = append(rd.drafts, id)
				step.ids[b], step.pos[b] = id, step.pos[b]+1
			}
			spec.DraftSteps++
		}
		// Verify x0, d_1 … d_K through every layer.
		v := part{S: K + 1, ids: make([]int, B*(K+1)), pos: make([]int, B)}
		for b, s := range seqs {
			if s.done {
				continue
			}
			v.pos[b] = s.pos() - 1
			v.ids[b*(K+1)] = pending[b]
			copy(v.ids[b*(K+1)+1:], rounds[b].drafts)
			for _, id := range rounds[b].drafts {
				s.sampler.forget(id)
			}
		}
		full, err := r.step([]part{v}, all, true)
		if err != nil {
			return spec, err
		}
		spec.VerifySteps++
		for b, s := range seqs {
			if s.done {
				continue
			}
			rd := rounds[b]
			// Agreement is measured at every drafted position, on the same
			// prefix as the draft saw, whether or not the round got there.
			for i := range K {
				top, err := argmax(full.at(b, i))
				if err != nil {
					return spec, err
				}
				agreeN[i]++
				if rd.argQ[i] == top {
					agree[i]++
				}
			}
			accepted := 0
			var next int
			for i := 0; i <= K; i++ {
				p, err := s.sampler.dist(full.at(b, i))
				if err != nil {
					return spec, err
				}
				if i == K {
					next = s.sampler.draw(p)
					break
				}
				d := rd.drafts[i]
				if s.sampler.greedy() {
					if d != p[0].id {
						next = p[0].id
						break
					}
				} else if tok, ok := s.sampler.speculate(p, rd.q[i], d); !ok {
					next = tok
					break
				}
				s.sampler.record(d)
				accepted++
			}
			s.sampler.record(next)
			spec.Drafted += K
			spec.Accepted += accepted
			for _, id := range append(rd.drafts[:accepted:accepted], next) {
				if s.done {
					break
				}
				if err := s.accept(m, id, s.pos(), onToken); err != nil {
					return spec, err
				}
				spec.Emitted++
			}
			pending[b] = next
		}
	}
}

// confident reports whether softmax(logits)[top], the probability of the
// most likely token top, is at least tau: whether Σ exp(l − l_top) ≤ 1/tau.
// It stops summing once the sum exceeds that, and skips terms below e^-20
// (all of them together cannot move a threshold that matters).
func confident(logits []float32, top int, tau float64) bool {
	limit, max := 1/tau, logits[top]
	var sum float64
	for _, v := range logits {
		d := v - max
		if d < -20 {
			continue
		}
		if sum += math.Exp(float64(d)); sum > limit {
			return false
		}
	}
	return true
}

// SpecStats describe a lossless batch: how much of the draft the full
// model accepted.
type SpecStats struct {
	Draft       int `json:"draft"`
	DraftSteps  int `json:"draft_steps"`
	VerifySteps int `json:"verify_steps"`
	// Drafted and Accepted count drafted tokens of running rows; Emitted
	// the tokens the rounds produced.
	Drafted  int `json:"drafted"`
	Accepted int `json:"accepted"`
	Emitted  int `json:"emitted"`
	// Agreement[i] is the share of rounds in which the draft's most likely
	// token at draft position i+1 equals the full model's on the same prefix
	// (raw logits, before any sampling warper), counted in every round
	// whether or not earlier drafts were accepted.
	Agreement []float64 `json:"draft_agreement"`
}

// speculate applies the speculative sampling rule to draft token d, drawn
// from q: it is kept with probability min(1, p(d)/q(d)); otherwise the
// result is drawn from the residual max(0, p − q), normalised. The token
// returned is then distributed as p.
func (s *sampler) speculate(p, q []candidate, d int) (int, bool) {
	pd, qd := probOf(p, d), probOf(q, d)
	if qd > 0 && s.rng.Float64()*qd < pd {
		return d, true
	}
	return s.residual(p, q), false
}

// residual draws from max(0, p − q), normalised (from p when that is empty).
func (s *sampler) residual(p, q []candidate) int {
	for _, c := range q {
		if c.id >= len(s.dense) {
			s.dense = append(s.dense, make([]float64, c.id+1-len(s.dense))...)
		}
		s.dense[c.id] = c.p
	}
	total := 0.0
	for _, c := range p {
		if c.id < len(s.dense) {
			total += max(0, c.p-s.dense[c.id])
		} else {
			total += c.p
		}
	}
	r := s.rng.Float64() * total
	id := -1
	for _, c := range p {
		w := c.p
		if c.id < len(s.dense) {
			w = max(0, c.p-s.dense[c.id])
		}
		if w > 0 {
			id = c.id
			if r -= w; r <= 0 {
				break
			}
		}
	}
	for _, c := range q {
		s.dense[c.id] = 0
	}
	if id < 0 || total <= 0 {
		return s.draw(p)
	}
	return id
}

// probOf is id's probability in d.
func probOf(d []candidate, id int) float64 {
	for _, c := range d {
		if c.id == id {
			return c.p
		}
	}
	return 0
}

// maxDraftTokens bounds a request's draft length.
const maxDraftTokens = 64
