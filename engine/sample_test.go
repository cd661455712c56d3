package engine

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSamplerGreedyAndPenalty(t *testing.T) {
	tests := []struct {
		name    string
		opts    SamplingOptions
		history []int
		logits  []float32
		want    int
	}{
		{"greedy", SamplingOptions{}, nil, []float32{0.1, 3, 2}, 1},
		{"greedy skips NaN", SamplingOptions{}, nil, []float32{float32(math.NaN()), 1, 2}, 2},
		{"penalty demotes a seen token", SamplingOptions{RepetitionPenalty: 2}, []int{1}, []float32{0, 3, 2}, 2},
		{"penalty on negative logits", SamplingOptions{RepetitionPenalty: 2}, []int{0}, []float32{-1, -1.5, -3}, 1},
		{"top-k 1 is greedy", SamplingOptions{Temperature: 5, TopK: 1}, nil, []float32{0, 1, 4, 2}, 2},
		{"tiny top-p is greedy", SamplingOptions{Temperature: 1, TopP: 1e-9}, nil, []float32{0, 1, 4, 2}, 2},
		{"min-p 1 is greedy", SamplingOptions{Temperature: 1, MinP: 1}, nil, []float32{0, 1, 4, 2}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(0); seed < 20; seed++ {
				tc.opts.Seed = seed
				got, err := newSampler(tc.opts, tc.history).next(append([]float32(nil), tc.logits...))
				if err != nil || got != tc.want {
					t.Fatalf("seed %d: next = %d, %v; want %d", seed, got, err, tc.want)
				}
			}
		})
	}
}

func TestSamplerDistribution(t *testing.T) {
	logits := []float32{0, float32(math.Log(3)), float32(math.Inf(-1))}
	s := newSampler(SamplingOptions{Temperature: 1, Seed: 7}, nil)
	counts := make([]int, 3)
	const n = 20000
	for i := 0; i < n; i++ {
		id, err := s.next(append([]float32(nil), logits...))
		if err != nil {
			t.Fatal(err)
		}
		counts[id]++
	}
	if counts[2] != 0 {
		t.Errorf("sampled a −Inf token %d times", counts[2])
	}
	if frac := float64(counts[1]) / n; math.Abs(frac-0.75) > 0.02 {
		t.Errorf("token 1 frequency %.3f, want 0.75", frac)
	}
}

func TestSamplerSeedReproducible(t *testing.T) {
	logits := []float32{1, 1.1, 0.9, 1.05, 0.3}
	draw := func(seed uint64) []int {
		s := newSampler(SamplingOptions{Temperature: 1, TopP: 0.9, Seed: seed}, nil)
		var ids []int
		for i := 0; i < 50; i++ {
			id, _ := s.next(append([]float32(nil), logits...))
			ids = append(ids, id)
		}
		return ids
	}
	a, b, c := draw(1), draw(1), draw(2)
	same := func(x, y []int) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("the same seed gave different tokens")
	}
	if same(a, c) {
		t.Error("different seeds gave the same 50 tokens")
	}
}

func TestSamplingOptionsValidate(t *testing.T) {
	bad := []SamplingOptions{
		{Temperature: -1}, {TopK: -1}, {TopP: 1.5}, {TopP: -0.1}, {MinP: 2}, {RepetitionPenalty: -1},
		{Temperature: math.NaN()},
	}
	for _, o := range bad {
		if o.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", o)
		}
	}
	if err := (SamplingOptions{Temperature: 0.7, TopK: 40, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1}).Validate(); err != nil {
		t.Errorf("valid options rejected: %v", err)
	}
}

func TestTopKMatchesSort(t *testing.T) {
	rng := newSampler(SamplingOptions{Seed: 5}, nil).rng
	for trial := 0; trial < 50; trial++ {
		n := 1 + rng.IntN(200)
		c := make([]candidate, n)
		for i := range c {
			c[i] = candidate{i, float64(rng.IntN(20))} // many ties
		}
		k := 1 + rng.IntN(n)
		want := append([]candidate(nil), c...)
		slices.SortFunc(want, byProbability)
		got := topK(append([]candidate(nil), c...), k)
		if !slices.Equal(got, want[:k]) {
			t.Fatalf("n %d k %d: topK %v, sorted %v", n, k, got, want[:k])
		}
	}
}

func TestSamplerTopKAndMinPDistribution(t *testing.T) {
	// p ∝ 1, 2, 3, 4: top-k 2 keeps 3 and 4 (3:4); min-p 0.6 keeps the same two.
	logits := []float32{0, float32(math.Log(2)), float32(math.Log(3)), float32(math.Log(4))}
	for _, opts := range []SamplingOptions{{Temperature: 1, TopK: 2, Seed: 9}, {Temperature: 1, MinP: 0.6, Seed: 9}, {Temperature: 1, TopP: 0.7, Seed: 9}} {
		s := newSampler(opts, nil)
		counts := make([]int, 4)
		const n = 20000
		for i := 0; i < n; i++ {
			id, _ := s.next(append([]float32(nil), logits...))
			counts[id]++
		}
		if counts[0]+counts[1] != 0 {
			t.Errorf("%+v: sampled dropped tokens %v", opts, counts)
		}
		if frac := float64(counts[3]) / n; math.Abs(frac-4.0/7) > 0.02 {
			t.Errorf("%+v: token 3 frequency %.3f, want %.3f", opts, frac, 4.0/7)
		}
	}
}

// TestNonFiniteLogitsError checks that all-NaN logits give an error that
// says the weights are non-finite.
func TestNonFiniteLogitsError(t *testing.T) {
	if !errors.Is(errNoCandidate, ErrNonFiniteLogits) || !strings.Contains(errNoCandidate.Error(), "NaN or Inf") {
		t.Errorf("errNoCandidate = %v", errNoCandidate)
	}
}
