package engine

import (
	"context"
	"math"
	"slices"
	"time"
)

// Lossless decoding: schedule-layer drafts verified through every layer, a
// round at a time (docs/design.md, "Lossless decoding"), as a policy of the
// step loop: a prefill, then rounds of up to K draft steps and one verify
// step.

// losslessRound is one row's state in a round.
type losslessRound struct {
	drafts []int
	q      [][]candidate // draft distributions, per drafted token (sampling only)
	argQ   []int         // the draft logits' argmax per drafted token
}

// lossless is the policy of a lossless batch: its rows' prompts, then
// rounds until every row has stopped.
type lossless struct {
	m          *Model
	seqs       []*sequence
	draft      []int // the layers that draft
	all        []int
	k          int // the most drafts per round
	confidence float64
	onToken    func(Token) error
	spec       LosslessStats
	// agree[i] of agreeN[i] rounds had the draft's argmax at draft
	// position i+1 equal the full model's.
	agree, agreeN []int
	prefilled     bool
	pending       []int // the emitted token each running row feeds next
	rounds        []losslessRound
	// The round in progress: its next draft step's input, the drafts
	// made, the most it may make, whether drafting goes on.
	drafting bool
	step     part
	parts    []part // the steps' parts, kept
	K, room  int
	sure     bool
	// start and prefillDone time the prefill.
	start, prefillDone time.Time
}

// newLossless makes the policy of a lossless batch of seqs, drafting
// through draft with up to k tokens per round.
func newLossless(m *Model, seqs []*sequence, draft []int, k int, confidence float64, onToken func(Token) error) *lossless {
	B := len(seqs)
	return &lossless{m: m, seqs: seqs, draft: draft, all: m.allLayers(), k: k, confidence: confidence, onToken: onToken,
		spec: LosslessStats{Draft: k}, agree: make([]int, k), agreeN: make([]int, k), pending: make([]int, B), rounds: make([]losslessRound, B),
		parts: make([]part, 1)}
}

// next returns the prefill, then each round's draft steps and its verify
// step; it is done when every row has stopped.
func (p *lossless) next(context.Context) (work, bool, error) {
	B := len(p.seqs)
	if !p.prefilled {
		prompts := make([][]int, B)
		for b, s := range p.seqs {
			prompts[b] = s.prompt
		}
		p.start = time.Now()
		return work{kind: stepPrefill, prompts: prompts, layers: p.all}, false, nil
	}
	if !p.drafting {
		running, room := 0, p.k
		for _, s := range p.seqs {
			if !s.done {
				running++
				room = min(room, p.m.Manifest.MaxSeqLen-s.pos())
			}
		}
		if running == 0 {
			return work{}, true, nil
		}
		// Draft up to room tokens per row through the kept layers.
		p.step = part{S: 1, ids: make([]int, B), pos: make([]int, B)}
		for b, s := range p.seqs {
			p.rounds[b] = losslessRound{}
			if !s.done {
				p.step.ids[b], p.step.pos[b] = p.pending[b], s.pos()-1
			}
		}
		p.drafting, p.K, p.room, p.sure = true, 0, room, true
	}
	if p.sure && p.K < p.room {
		p.parts[0] = p.step
		return work{kind: stepDraft, parts: p.parts, layers: p.draft}, false, nil
	}
	// Verify x0, d_1 … d_K through every layer.
	p.drafting = false
	K := p.K
	v := part{S: K + 1, ids: make([]int, B*(K+1)), pos: make([]int, B)}
	for b, s := range p.seqs {
		if s.done {
			continue
		}
		v.pos[b] = s.pos() - 1
		v.ids[b*(K+1)] = p.pending[b]
		copy(v.ids[b*(K+1)+1:], p.rounds[b].drafts)
		for _, id := range p.rounds[b].drafts {
			s.sampler.forget(id)
		}
	}
	p.parts[0] = v
	return work{kind: stepVerify, parts: p.parts, layers: p.all}, false, nil
}

// took takes in a step's logits according to its kind.
func (p *lossless) took(w work, logits *stepLogits) error {
	switch w.kind {
	case stepPrefill:
		p.prefilled, p.prefillDone = true, time.Now()
		return p.first(logits)
	case stepDraft:
		return p.drafted(logits)
	default:
		return p.verified(logits)
	}
}

// first emits each row's first token from the prefill's logits.
func (p *lossless) first(logits *stepLogits) error {
	for b, s := range p.seqs {
		if s.done {
			continue
		}
		var err error
		if p.pending[b], err = s.sampler.next(logits.at(b, 0)); err != nil {
			return err
		}
		if err := s.accept(p.m, p.pending[b], s.pos(), p.onToken); err != nil {
			return err
		}
	}
	return nil
}

// drafted records a draft step's tokens and decides whether drafting goes
// on: with the confidence rule off, or no room for another step, the bound
// alone ends it.
func (p *lossless) drafted(q *stepLogits) error {
	judge := p.confidence >= 0 && p.K+1 < p.room
	p.sure = !judge
	for b, s := range p.seqs {
		if s.done {
			continue
		}
		raw, err := argmax(q.at(b, 0)) // before dist applies the warpers
		if err != nil {
			return err
		}
		d, err := s.sampler.dist(q.at(b, 0))
		if err != nil {
			return err
		}
		p.sure = p.sure || judge && confident(q.at(b, 0), raw, p.confidence)
		rd := &p.rounds[b]
		rd.argQ = append(rd.argQ, raw)
		id := s.sampler.draw(d) // greedy: d is the argmax alone
		if !s.sampler.greedy() {
			rd.q = append(rd.q, slices.Clone(d))
		}
		s.sampler.record(id)
		rd.drafts = append(rd.drafts, id)
		p.step.ids[b], p.step.pos[b] = id, p.step.pos[b]+1
	}
	p.spec.DraftSteps++
	p.K++
	return nil
}

// verified accepts each row's drafts while the full model agrees, and
// emits them with the full model's next token.
func (p *lossless) verified(full *stepLogits) error {
	K := p.K
	p.spec.VerifySteps++
	for b, s := range p.seqs {
		if s.done {
			continue
		}
		rd := p.rounds[b]
		// Agreement is measured at every drafted position, on the same
		// prefix as the draft saw, whether or not the round got there.
		for i := range K {
			top, err := argmax(full.at(b, i))
			if err != nil {
				return err
			}
			p.agreeN[i]++
			if rd.argQ[i] == top {
				p.agree[i]++
			}
		}
		accepted := 0
		var next int
		for i := 0; i <= K; i++ {
			dist, err := s.sampler.dist(full.at(b, i))
			if err != nil {
				return err
			}
			if i == K {
				next = s.sampler.draw(dist)
				break
			}
			d := rd.drafts[i]
			if s.sampler.greedy() {
				if d != dist[0].id {
					next = dist[0].id
					break
				}
			} else if tok, ok := s.sampler.speculate(dist, rd.q[i], d); !ok {
				next = tok
				break
			}
			s.sampler.record(d)
			accepted++
		}
		s.sampler.record(next)
		p.spec.Drafted += K
		p.spec.Accepted += accepted
		for _, id := range append(rd.drafts[:accepted:accepted], next) {
			if s.done {
				break
			}
			if err := s.accept(p.m, id, s.pos(), p.onToken); err != nil {
				return err
			}
			p.spec.Emitted++
		}
		p.pending[b] = next
	}
	return nil
}

// stats are the batch's drafting figures.
func (p *lossless) stats() LosslessStats {
	spec := p.spec
	spec.Agreement = make([]float64, p.k)
	for i := range p.agree {
		if p.agreeN[i] > 0 {
			spec.Agreement[i] = float64(p.agree[i]) / float64(p.agreeN[i])
		}
	}
	return spec
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
