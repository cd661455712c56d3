package engine

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SamplingOptions choose the next token from logits. The zero value is greedy.
type SamplingOptions struct {
	// Temperature scales logits; 0 means greedy (argmax).
	Temperature float64 `json:"temperature,omitempty"`
	// TopK keeps the K most likely tokens (0: off).
	TopK int `json:"top_k,omitempty"`
	// TopP keeps the smallest set of tokens whose probability reaches P (0 or 1: off).
	TopP float64 `json:"top_p,omitempty"`
	// MinP drops tokens less likely than MinP × the most likely one (0: off).
	MinP float64 `json:"min_p,omitempty"`
	// RepetitionPenalty divides positive (multiplies negative) logits of tokens
	// already in the prompt or output, as in Hugging Face (1 or 0: off).
	RepetitionPenalty float64 `json:"repetition_penalty,omitempty"`
	// Seed makes sampling reproducible; the same seed gives the same tokens.
	Seed uint64 `json:"seed,omitempty"`
}

// Validate reports the first invalid option.
func (o SamplingOptions) Validate() error {
	switch {
	case math.IsNaN(o.Temperature) || o.Temperature < 0:
		return fmt.Errorf("temperature %g: must be ≥ 0", o.Temperature)
	case o.TopK < 0:
		return fmt.Errorf("top-k %d: must be ≥ 0", o.TopK)
	case math.IsNaN(o.TopP) || o.TopP < 0 || o.TopP > 1:
		return fmt.Errorf("top-p %g: must be in (0, 1]", o.TopP)
	case math.IsNaN(o.MinP) || o.MinP < 0 || o.MinP > 1:
		return fmt.Errorf("min-p %g: must be in [0, 1]", o.MinP)
	case math.IsNaN(o.RepetitionPenalty) || o.RepetitionPenalty < 0:
		return fmt.Errorf("repetition penalty %g: must be > 0", o.RepetitionPenalty)
	}
	return nil
}

// sampler picks tokens for one sequence. It keeps its scratch space so that
// sampling a token allocates nothing.
type sampler struct {
	opts SamplingOptions
	rng  *rand.Rand
	seen map[int]int // tokens subject to the repetition penalty, with counts
	cand []candidate
	// dense is scratch indexed by token id, zero between uses.
	dense []float64
}

type candidate struct {
	id int
	p  float64
}

func newSampler(opts SamplingOptions, history []int) *sampler {
	s := &sampler{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))}
	if opts.RepetitionPenalty > 0 && opts.RepetitionPenalty != 1 {
		s.seen = make(map[int]int, len(history))
		for _, id := range history {
			s.seen[id]++
		}
	}
	return s
}

// errNoCandidate means every logit was NaN or −Inf.
var errNoCandidate = fmt.Errorf("sampling: no finite logit: %w", ErrNonFiniteLogits)

// ErrNonFiniteLogits is wrapped by the error of a step whose logits are all
// NaN or ±Inf: the package's weights hold non-finite values (a corrupt or
// damaged file), which comparing the package with its reference shows.
var ErrNonFiniteLogits = errors.New("the model's logits are not finite: its weights hold NaN or Inf (a corrupt file?)")

// next returns the chosen token id and records it. logits may be modified.
func (s *sampler) next(logits []float32) (int, error) {
	var id int
	var err error
	if s.opts.Temperature == 0 {
		s.penalize(logits)
		id, err = argmax(logits)
	} else {
		var d []candidate
		if d, err = s.dist(logits); err == nil {
			id = s.draw(d)
		}
	}
	if err == nil {
		s.record(id)
	}
	return id, err
}

// greedy reports whether the sampler takes the argmax.
func (s *sampler) greedy() bool { return s.opts.Temperature == 0 }

// record adds a chosen token to the repetition penalty's history; forget
// takes it out again (a rejected draft).
func (s *sampler) record(id int) {
	if s.seen != nil {
		s.seen[id]++
	}
}

func (s *sampler) forget(id int) {
	if s.seen != nil {
		if s.seen[id]--; s.seen[id] <= 0 {
			delete(s.seen, id)
		}
	}
}

// penalize applies the repetition penalty to logits in place.
func (s *sampler) penalize(logits []float32) {
	if s.seen == nil {
		return
	}
	pen := float32(s.opts.RepetitionPenalty)
	for id := range s.seen {
		if id >= 0 && id < len(logits) {
			if logits[id] > 0 {
				logits[id] /= pen
			} else {
				logits[id] *= pen
			}
		}
	}
}

func argmax(logits []float32) (int, error) {
	best, bestID := float32(math.Inf(-1)), -1
	for i, v := range logits {
		if v > best {
			best, bestID = v, i
		}
	}
	if bestID < 0 {
		return 0, errNoCandidate
	}
	return bestID, nil
}

// dist returns the distribution the sampler draws from, after the
// repetition penalty, softmax(logits/T), top-k, top-p and min-p, applied in
// that order as Hugging Face's warpers are: the candidates left, with
// probabilities summing to 1. Greedy is the argmax with probability 1.
// Sorting is needed only for top-p; top-k keeps a partial order, and plain
// or min-p sampling none. The result aliases the sampler's scratch space
// until the next call; logits may be modified.
func (s *sampler) dist(logits []float32) ([]candidate, error) {
	s.penalize(logits)
	maxLogit, err := argmax(logits)
	if err != nil {
		return nil, err
	}
	s.cand = s.cand[:0]
	if s.opts.Temperature == 0 {
		s.cand = append(s.cand, candidate{maxLogit, 1})
		return s.cand, nil
	}
	top := float64(logits[maxLogit])
	invT := 1 / s.opts.Temperature
	for i, v := range logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), -1) {
			continue
		}
		s.cand = append(s.cand, candidate{i, math.Exp((float64(v) - top) * invT)})
	}
	cand := s.cand
	if k := s.opts.TopK; k > 0 && k < len(cand) {
		cand = topK(cand, k)
	}
	if tp := s.opts.TopP; tp > 0 && tp < 1 {
		slices.SortFunc(cand, byProbability)
		total := 0.0
		for _, c := range cand {
			total += c.p
		}
		acc := 0.0
		for i, c := range cand {
			acc += c.p
			if acc >= tp*total {
				cand = cand[:i+1]
				break
			}
		}
	}
	if mp := s.opts.MinP; mp > 0 {
		// The most likely token has p = 1 after the shift by the max logit.
		kept := cand[:0]
		for _, c := range cand {
			if c.p >= mp {
				kept = append(kept, c)
			}
		}
		cand = kept
	}
	total := 0.0
	for _, c := range cand {
		total += c.p
	}
	for i := range cand {
		cand[i].p /= total
	}
	return cand, nil
}

// draw picks a token from a distribution.
func (s *sampler) draw(d []candidate) int {
	r := s.rng.Float64()
	for _, c := range d {
		r -= c.p
		if r <= 0 {
			return c.id
		}
	}
	return d[len(d)-1].id
}

// byProbability orders candidates most likely first, ties by id.
func byProbability(a, b candidate) int {
	if a.p != b.p {
		if a.p > b.p {
			return -1
		}
		return 1
	}
	return a.id - b.id
}

// topK moves the k most likely candidates to the front (most likely first)
// and returns them, in O(n log k).
func topK(c []candidate, k int) []candidate {
	// A min-heap of the best k seen so far lives in c[:k].
	h := c[:k]
	less := func(i, j int) bool { return byProbability(h[i], h[j]) > 0 } // worse first
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= k {
				return
			}
			m := l
			if r := l + 1; r < k && less(r, l) {
				m = r
			}
			if !less(m, i) {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, x := range c[k:] {
		if byProbability(x, h[0]) < 0 {
			h[0] = x
			down(0)
		}
	}
	slices.SortFunc(h, byProbability)
	return h
}
