package engine

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"
)

// TestLosslessGreedyMatchesFullDepth: lossless decoding gives full-depth
// greedy ids for several draft lengths and draft schedules (a poor draft
// that is mostly rejected, the whole stack as a draft that is always
// accepted), one row at a time and in ragged batches, also when max_tokens
// or max_seq_len ends a row inside an accepted run.
func TestLosslessGreedyMatchesFullDepth(t *testing.T) {
	dir, cfg, src := testPackage(t)
	full := []int{0, 1, 2, 3, 4, 5}
	for _, resident := range []bool{false, true} {
		m, err := Load(dir, Options{MaxBatch: 4, DeviceResident: resident})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		acceptedAll, rejected := false, false
		for _, tc := range []struct {
			schedule   string
			draft      int
			maxTokens  int
			confidence float64 // 0: the default; -1: always draft; 1: one draft per round
		}{
			{"uls:2", 1, 10, 0},
			{"uls:2", 4, 10, 0},
			{"uls:2", 4, 10, -1},
			{"uls:2", 4, 10, 1},
			{"uls:3", 2, 9, 0},
			{"layers:0,5", 7, 12, -1},
			{"layers:0,1,2,3,4,5", 4, 10, 0},
			{"uls:2", 4, 5, 0},
		} {
			name := fmt.Sprintf("resident=%v/%s/draft=%d/max=%d/confidence=%g", resident, tc.schedule, tc.draft, tc.maxTokens, tc.confidence)
			var reqs []Request
			for _, p := range testPrompts() {
				reqs = append(reqs, Request{PromptIDs: p, MaxTokens: tc.maxTokens, Schedule: tc.schedule, Lossless: true, Draft: tc.draft,
					DraftConfidence: tc.confidence})
			}
			batch, err := m.GenerateBatch(context.Background(), reqs, nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i, r := range reqs {
				want := referenceGreedy(t, cfg, src, r.PromptIDs, full, tc.maxTokens)
				if !reflect.DeepEqual(batch[i].TokenIDs, want) {
					t.Errorf("%s: batch row %d: got %v, full depth %v", name, i, batch[i].TokenIDs, want)
				}
				one, err := m.Generate(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(one.TokenIDs, want) {
					t.Errorf("%s: prompt %d alone: got %v, full depth %v", name, i, one.TokenIDs, want)
				}
				spec := one.Stats.Group.Lossless
				if spec == nil || spec.Draft != tc.draft || spec.VerifySteps == 0 || len(spec.Agreement) != tc.draft {
					t.Fatalf("%s: lossless stats %+v", name, spec)
				}
				// The confidence rule decides how many drafts a round makes.
				if tc.confidence == -1 && spec.DraftSteps != tc.draft*spec.VerifySteps {
					t.Errorf("%s: %d draft steps in %d rounds, want %d per round", name, spec.DraftSteps, spec.VerifySteps, tc.draft)
				}
				if tc.confidence == 1 && spec.DraftSteps != spec.VerifySteps {
					t.Errorf("%s: %d draft steps in %d rounds, want one per round", name, spec.DraftSteps, spec.VerifySteps)
				}
				acceptedAll = acceptedAll || (spec.Drafted > 0 && spec.Accepted == spec.Drafted)
				rejected = rejected || spec.Accepted < spec.Drafted
				if got := one.Stats.KVBytes; got != m.KVBytes(1, Schedule{Layers: full}) {
					t.Errorf("%s: KV %d bytes, want full depth's %d", name, got, m.KVBytes(1, Schedule{Layers: full}))
				}
			}
		}
		if !acceptedAll || !rejected {
			t.Errorf("resident %v: no request accepted every draft (%v) or none rejected one (%v)", resident, acceptedAll, rejected)
		}
	}

	// Near max_seq_len the draft shrinks; the row still ends with "length".
	m, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompt := make([]int, testMaxSeq-6)
	for i := range prompt {
		prompt[i] = (i*7 + 1) % 101
	}
	want := referenceGreedy(t, cfg, src, prompt, full, 7)
	res, err := m.Generate(context.Background(), Request{PromptIDs: prompt, MaxTokens: 20, Schedule: "uls:2", Lossless: true, Draft: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != StopLength || !reflect.DeepEqual(res.TokenIDs, want) {
		t.Errorf("near max_seq_len: %v (%s), full depth %v", res.TokenIDs, res.StopReason, want)
	}
}

// TestLosslessRequestErrors: draft lengths out of range are refused.
func TestLosslessRequestErrors(t *testing.T) {
	dir, _, _ := testPackage(t)
	m, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, r := range []Request{
		{PromptIDs: []int{1, 2}, Lossless: true, Draft: -1},
		{PromptIDs: []int{1, 2}, Lossless: true, Draft: maxDraftTokens + 1},
		{PromptIDs: []int{1, 2}, Draft: 3},
		{PromptIDs: []int{1, 2}, DraftConfidence: 0.5},
		{PromptIDs: []int{1, 2}, Lossless: true, DraftConfidence: 1.5},
		{PromptIDs: []int{1, 2}, Lossless: true, DraftConfidence: math.NaN()},
	} {
		if err := m.Check(r); err == nil {
			t.Errorf("request %+v accepted", r)
		}
	}
}

// chiSquareCritical is the 0.1 % critical value of the chi-square
// distribution with df degrees of freedom (Wilson–Hilferty).
func chiSquareCritical(df int) float64 {
	const z = 3.09 // the standard normal's 99.9th percentile
	k := float64(df)
	c := 1 - 2/(9*k) + z*math.Sqrt(2/(9*k))
	return k * c * c * c
}

// homogeneity is the chi-square statistic of two samples of categories and
// its degrees of freedom; categories expected fewer than 5 times are pooled.
func homogeneity(a, b map[string]int) (float64, int) {
	na, nb := 0, 0
	for _, c := range a {
		na += c
	}
	for _, c := range b {
		nb += c
	}
	type pair struct{ a, b float64 }
	var cells []pair
	var pool pair
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		p := pair{float64(a[k]), float64(b[k])}
		if (p.a+p.b)*float64(min(na, nb))/float64(na+nb) < 5 {
			pool.a += p.a
			pool.b += p.b
			continue
		}
		cells = append(cells, p)
	}
	if pool.a+pool.b > 0 {
		cells = append(cells, pool)
	}
	chi := 0.0
	for _, c := range cells {
		tot := c.a + c.b
		ea := tot * float64(na) / float64(na+nb)
		eb := tot * float64(nb) / float64(na+nb)
		chi += (c.a-ea)*(c.a-ea)/ea + (c.b-eb)*(c.b-eb)/eb
	}
	return chi, len(cells) - 1
}

// TestSpeculateDistribution: the speculative rule turns draws from q into
// draws from p; a wrong rule (keep every draft) is caught by the same test.
func TestSpeculateDistribution(t *testing.T) {
	p := []candidate{{0, 0.5}, {1, 0.3}, {2, 0.15}, {3, 0.05}}
	q := []candidate{{0, 0.1}, {1, 0.2}, {2, 0.3}, {3, 0.3}, {4, 0.1}}
	const n = 20000
	s := newSampler(SamplingOptions{Temperature: 1, Seed: 3}, nil)
	exact := map[string]int{}
	right := map[string]int{}
	wrong := map[string]int{}
	for range n {
		exact[fmt.Sprint(s.draw(p))]++
		d := s.draw(q)
		tok, _ := s.speculate(p, q, d)
		right[fmt.Sprint(tok)]++
		wrong[fmt.Sprint(d)]++ // every draft kept: distributed as q
	}
	if chi, df := homogeneity(exact, right); chi > chiSquareCritical(df) {
		t.Errorf("speculative sampling: chi-square %.1f > %.1f (df %d): %v vs %v", chi, chiSquareCritical(df), df, right, exact)
	}
	if chi, df := homogeneity(exact, wrong); chi <= chiSquareCritical(df) {
		t.Errorf("keeping every draft passed the test: chi-square %.1f ≤ %.1f (df %d)", chi, chiSquareCritical(df), df)
	}
}

// TestLosslessSamplingDistribution: with temperature and top-k, the first
// tokens of lossless decoding follow full-depth sampling's distribution
// (chi-square over many seeds of the second and third tokens).
func TestLosslessSamplingDistribution(t *testing.T) {
	dir, _, _ := testPackage(t)
	m, err := Load(dir, Options{MaxBatch: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const n = 1200
	sample := func(lossless bool) map[string]int {
		reqs := make([]Request, n)
		for i := range reqs {
			reqs[i] = Request{PromptIDs: []int{1, 5, 9, 33}, MaxTokens: 3, IgnoreEOS: true,
				SamplingOptions: SamplingOptions{Temperature: 1.5, TopK: 4, Seed: uint64(i + 1)}}
			if lossless {
				reqs[i].Lossless, reqs[i].Schedule, reqs[i].Draft = true, "uls:3", 2
			} else {
				reqs[i].Schedule = "uls:1"
			}
		}
		res, err := m.GenerateBatch(context.Background(), reqs, nil)
		if err != nil {
			t.Fatal(err)
		}
		hist := map[string]int{}
		for _, r := range res {
			hist[fmt.Sprint(r.TokenIDs[1:])]++
		}
		return hist
	}
	plain, lossless := sample(false), sample(true)
	chi, df := homogeneity(plain, lossless)
	if df < 3 || chi > chiSquareCritical(df) {
		t.Errorf("chi-square %.1f (df %d, critical %.1f): lossless %v, full depth %v", chi, df, chiSquareCritical(df), lossless, plain)
	}
	t.Logf("chi-square %.1f, df %d, critical %.1f", chi, df, chiSquareCritical(df))
}

// TestConfident: the threshold test of the draft's top probability.
func TestConfident(t *testing.T) {
	for _, tc := range []struct {
		logits []float32
		tau    float64
		want   bool
	}{
		{[]float32{0, 0}, 0.5, true},                          // p = 0.5
		{[]float32{0, 0}, 0.51, false},                        // p = 0.5
		{[]float32{2, 0, 0}, 0.78, true},                      // p = e²/(e²+2) ≈ 0.787
		{[]float32{2, 0, 0}, 0.8, false},                      //
		{[]float32{30, 0, 1, 2}, 0.999999, true},              // the rest below e^-20 of the top
		{[]float32{0, 1, 1, 1, 1, 1, 1, 1, 1, 5}, 0.9, false}, // p ≈ 0.87
	} {
		top, _ := argmax(tc.logits)
		if got := confident(tc.logits, top, tc.tau); got != tc.want {
			t.Errorf("confident(%v, tau %g) = %v, want %v", tc.logits, tc.tau, got, tc.want)
		}
	}
}
