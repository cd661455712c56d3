package engine

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
)

// BenchmarkDecodeStep measures one decode step of the whole schedule (the
// embedding, every kept layer, the head, logits back) with the KV already
// holding a prompt, through the runner on host memory and on ORT-allocated
// memory with copies in and out as on a GPU, same model, same run: their
// difference is what the device discipline costs on a CPU.
// Besides ns/op and allocs/op (per step) it reports allocs/token and
// B/token: a step must allocate a small constant amount whatever the
// position, and never anything of the KV cache's size (kv-B/layer-row is
// what copying one layer's KV per token would cost).
func BenchmarkDecodeStep(b *testing.B) {
	dir, _, _ := testPackage(b)
	prompt := []int{1, 5, 9, 33, 2, 7, 80, 11}
	for _, path := range []string{"host", "resident"} {
		m, err := Load(dir, Options{Threads: 1, DeviceResident: path == "resident"})
		if err != nil {
			b.Fatal(err)
		}
		for _, ratio := range []float64{1, 2} {
			for _, batch := range []int{1, 4} {
				b.Run(fmt.Sprintf("%s/r=%g/batch=%d", path, ratio, batch), func(b *testing.B) {
					benchDecodeStep(b, m, prompt, ratio, batch)
				})
			}
		}
		m.Close()
	}
}

func benchDecodeStep(b *testing.B, m *Model, prompt []int, ratio float64, batch int) {
	man := m.Manifest
	sched, err := m.ResolveSchedule("uls", ratio)
	if err != nil {
		b.Fatal(err)
	}
	r, err := m.runnerFor(batch, sched.Layers)
	if err != nil {
		b.Fatal(err)
	}
	defer r.close()
	prompts := make([][]int, batch)
	for row := range prompts {
		prompts[row] = prompt
	}
	if _, err := r.prefill(prompts, m.allLayers(), DefaultPrefillChunk); err != nil {
		b.Fatal(err)
	}
	step := part{S: 1, ids: make([]int, batch), pos: make([]int, batch)}
	steps := []part{step}
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Positions run from the prompt's end to max_seq_len and start
		// over, so any b.N fits the KV buffers.
		pos := len(prompt) + i%(man.MaxSeqLen-len(prompt))
		for row := range step.ids {
			step.ids[row], step.pos[row] = (i+row)%man.VocabSize, pos
		}
		if _, err := r.step(steps, sched.Layers, true); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	tokens := float64(b.N * batch)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/tokens, "allocs/token")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/tokens, "B/token")
	b.ReportMetric(float64(2*4*man.NumKVHeads*man.MaxSeqLen*man.HeadDim), "kv-B/layer-row")
}

// BenchmarkVerifyStep measures one full-depth step of S tokens on a cache
// at batch 1, as lossless decoding verifies S−1 drafts: set against S=1 it
// is what a verify step costs over a plain decode step. STRATA_BENCH_MODEL
// names a package to measure instead of the small test model.
func BenchmarkVerifyStep(b *testing.B) {
	dir := os.Getenv("STRATA_BENCH_MODEL")
	if dir == "" {
		dir, _, _ = testPackage(b)
	}
	m, err := Load(dir, Options{NoTokenizer: true})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	prompt := []int{1, 5, 9, 33, 2, 7, 80, 11}
	for _, S := range []int{1, 2, 3, 5} {
		b.Run(fmt.Sprintf("S=%d", S), func(b *testing.B) {
			r, err := m.runnerFor(1, m.allLayers())
			if err != nil {
				b.Fatal(err)
			}
			defer r.close()
			if _, err := r.prefill([][]int{prompt}, m.allLayers(), DefaultPrefillChunk); err != nil {
				b.Fatal(err)
			}
			// The same positions every time: each step overwrites them.
			step := part{S: S, ids: make([]int, S), pos: []int{len(prompt)}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := r.step([]part{step}, m.allLayers(), true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSample measures choosing one token from a 32000-entry vocabulary
// (a LLaMA-2 sized one). Each iteration restores the logits first (next may
// modify them); restoring alone is the "copy" case.
func BenchmarkSample(b *testing.B) {
	const vocab = 32000
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, vocab)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	work := make([]float32, vocab)
	history := []int{1, 5, 9, 33}
	for _, c := range []struct {
		name string
		opts *SamplingOptions
	}{
		{"copy", nil},
		{"greedy", &SamplingOptions{}},
		{"temperature", &SamplingOptions{Temperature: 0.8, Seed: 1}},
		{"top-k=40", &SamplingOptions{Temperature: 0.8, TopK: 40, Seed: 1}},
		{"top-p=0.9", &SamplingOptions{Temperature: 0.8, TopP: 0.9, Seed: 1}},
		{"repetition-penalty", &SamplingOptions{RepetitionPenalty: 1.1}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var s *sampler
			if c.opts != nil {
				s = newSampler(*c.opts, history)
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				copy(work, logits)
				if s == nil {
					continue
				}
				if _, err := s.next(work); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
