package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// testConfig is a small GQA model: 6 layers so that uls:2 keeps 0,3,5,
// uls:3 keeps 0,5 and balanced:1.5 keeps 0,2,3,5.
func testConfig() llama.Config {
	return llama.Config{
		ModelType: "llama", NumLayers: 6, HiddenSize: 64, NumHeads: 4, NumKVHeads: 2, HeadDim: 16,
		IntermediateSize: 96, VocabSize: 101, MaxPositionEmbeddings: 64, RopeTheta: 10000,
		RMSNormEps: 1e-5, BOSID: 1,
	}
}

const testMaxSeq = 48

var (
	pkgOnce sync.Once
	pkgDir  string
	pkgErr  error
)

// testPackage exports testConfig with random weights once per test binary.
func testPackage(t testing.TB) (string, llama.Config, llama.WeightSource) {
	t.Helper()
	cfg := testConfig()
	src := llama.RandomWeights(cfg, 42)
	pkgOnce.Do(func() {
		pkgDir, pkgErr = os.MkdirTemp("", "strata-engine-test-")
		if pkgErr == nil {
			pkgErr = writePackage(pkgDir, cfg, src, testMaxSeq)
		}
	})
	if pkgErr != nil {
		t.Fatal(pkgErr)
	}
	return pkgDir, cfg, src
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pkgDir != "" {
		os.RemoveAll(pkgDir)
	}
	os.Exit(code)
}

// writePackage writes a strata/v1 package of fp32 weights and compute with
// the llama graph writers.
func writePackage(dir string, cfg llama.Config, src llama.WeightSource, maxSeq int) error {
	return writePackageAs(dir, cfg, src, llama.GraphOptions{DType: "fp32", MaxSeqLen: maxSeq})
}

// writePackageAs writes a strata/v1 package with the llama graph writers
// and opts (weight and compute types, max_seq_len).
func writePackageAs(dir string, cfg llama.Config, src llama.WeightSource, opts llama.GraphOptions) error {
	man := cfg.Manifest()
	man.DType, man.ComputeType, man.MaxSeqLen, man.PadID = opts.DType, opts.Compute, opts.MaxSeqLen, 0
	var err error
	if man.Files.Embed, err = llama.WriteEmbed(dir, cfg, src, opts); err != nil {
		return err
	}
	for i := 0; i < cfg.NumLayers; i++ {
		f, err := llama.WriteLayer(dir, cfg, i, src, opts)
		if err != nil {
			return err
		}
		man.Files.Layers = append(man.Files.Layers, f)
	}
	if man.Files.Head, err = llama.WriteHead(dir, cfg, src, opts); err != nil {
		return err
	}
	for i, f := range man.Files.Layers {
		man.Files.Layers[i] = filepath.Base(f)
	}
	man.Files.Embed, man.Files.Head = filepath.Base(man.Files.Embed), filepath.Base(man.Files.Head)
	return man.Save(dir)
}

// referenceGreedy decodes greedily with the plain-Go reference: the prompt
// at full depth, then every new token through `kept`.
func referenceGreedy(t *testing.T, cfg llama.Config, src llama.WeightSource, prompt, kept []int, n int) []int {
	t.Helper()
	ref, err := llama.NewReference(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := ref.Forward(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for {
		id, _ := argmax(logits[len(logits)-1])
		out = append(out, id)
		if len(out) == n {
			return out
		}
		if logits, err = ref.Forward([]int{id}, kept); err != nil {
			t.Fatal(err)
		}
	}
}

func testPrompts() [][]int {
	return [][]int{{1, 5, 9, 33, 2, 7, 80}, {1, 42}, {1, 3, 3, 3, 100, 64, 12, 17, 19, 23, 29}, {1, 77, 8, 60}}
}

func TestGreedyMatchesReference(t *testing.T) {
	dir, cfg, src := testPackage(t)
	m, err := Load(dir, Options{MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const newTokens = 10
	full := map[int][]int{}
	for _, spec := range []string{"uls:1", "uls:2", "uls:3", "balanced:1.5"} {
		sched, err := m.ResolveSchedule(spec, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := make([][]int, len(testPrompts()))
		for i, p := range testPrompts() {
			want[i] = referenceGreedy(t, cfg, src, p, sched.Layers, newTokens)
		}
		// The schedules must matter, or this test could not tell them apart.
		differs := false
		for i := range want {
			if spec == "uls:1" {
				full[i] = want[i]
			} else if !reflect.DeepEqual(want[i], full[i]) {
				differs = true
			}
		}
		if spec != "uls:1" && !differs {
			t.Errorf("%s: reference ids equal full depth for every prompt", spec)
		}
		t.Run(spec+"/batch1", func(t *testing.T) {
			for i, p := range testPrompts() {
				res, err := m.Generate(context.Background(), Request{PromptIDs: p, MaxTokens: newTokens, Schedule: spec})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(res.TokenIDs, want[i]) {
					t.Errorf("prompt %d: got %v, reference %v", i, res.TokenIDs, want[i])
				}
				if res.StopReason != StopMaxTokens || !reflect.DeepEqual(res.KeptLayers, sched.Layers) {
					t.Errorf("prompt %d: stop %q kept %v", i, res.StopReason, res.KeptLayers)
				}
			}
		})
		t.Run(spec+"/batch4", func(t *testing.T) {
			var reqs []Request
			for _, p := range testPrompts() {
				reqs = append(reqs, Request{PromptIDs: p, MaxTokens: newTokens, Schedule: spec})
			}
			res, err := m.GenerateBatch(context.Background(), reqs, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range res {
				if !reflect.DeepEqual(res[i].TokenIDs, want[i]) {
					t.Errorf("row %d: got %v, reference %v", i, res[i].TokenIDs, want[i])
				}
				if res[i].Stats.BatchSize != 4 {
					t.Errorf("row %d decoded in a batch of %d", i, res[i].Stats.BatchSize)
				}
			}
		})
	}
}

func TestBatchRowsStopIndependently(t *testing.T) {
	dir, _, _ := testPackage(t)
	m, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var reqs []Request
	var alone [][]int
	for i, p := range testPrompts() {
		r := Request{PromptIDs: p, MaxTokens: 2 + 3*i, Speedup: 2}
		reqs = append(reqs, r)
		res, err := m.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		alone = append(alone, res.TokenIDs)
	}
	res, err := m.GenerateBatch(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range res {
		if !reflect.DeepEqual(res[i].TokenIDs, alone[i]) || len(res[i].TokenIDs) != reqs[i].MaxTokens {
			t.Errorf("row %d: batch %v, alone %v (max %d)", i, res[i].TokenIDs, alone[i], reqs[i].MaxTokens)
		}
	}
}

func TestKVBytesShrinkWithSpeedup(t *testing.T) {
	dir, _, _ := testPackage(t)
	m, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var last int64
	for _, r := range []float64{1, 2, 3} {
		res, err := m.Generate(context.Background(), Request{PromptIDs: []int{1, 2, 3}, MaxTokens: 2, Speedup: r})
		if err != nil {
			t.Fatal(err)
		}
		sched, _ := m.ResolveSchedule("", r)
		if res.Stats.KVBytes != m.KVBytes(1, sched) {
			t.Errorf("speedup %g: reported %d KV bytes, KVBytes says %d", r, res.Stats.KVBytes, m.KVBytes(1, sched))
		}
		if last != 0 && res.Stats.KVBytes >= last {
			t.Errorf("speedup %g: KV %d bytes did not shrink from %d", r, res.Stats.KVBytes, last)
		}
		last = res.Stats.KVBytes
	}
}

func TestConcurrentGenerate(t *testing.T) {
	dir, _, _ := testPackage(t)
	m, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompts := testPrompts()
	want := make([][]int, len(prompts))
	for i, p := range prompts {
		res, err := m.Generate(context.Background(), Request{PromptIDs: p, MaxTokens: 6, Speedup: 2})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res.TokenIDs
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(prompts))
	for rep := 0; rep < 4; rep++ {
		for i, p := range prompts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := m.Generate(context.Background(), Request{PromptIDs: p, MaxTokens: 6, Speedup: 2})
				if err == nil && !reflect.DeepEqual(res.TokenIDs, want[i]) {
					err = fmt.Errorf("prompt %d: concurrent %v, sequential %v", i, res.TokenIDs, want[i])
				}
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestStreamingAndCancel(t *testing.T) {
	dir, _, _ := testPackage(t)
	m, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var streamed []int
	res, err := m.GenerateStream(context.Background(), Request{PromptIDs: []int{1, 9, 4}, MaxTokens: 5},
		func(tok Token) error { streamed = append(streamed, tok.ID); return nil })
	if err != nil || !reflect.DeepEqual(streamed, res.TokenIDs) {
		t.Fatalf("streamed %v, result %v, err %v", streamed, res.TokenIDs, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	res, err = m.GenerateStream(ctx, Request{PromptIDs: []int{1, 9, 4}, MaxTokens: 30}, func(Token) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: err = %v", err)
	}
	if len(res.TokenIDs) != 3 {
		t.Errorf("cancel after 3 tokens left %d tokens", len(res.TokenIDs))
	}

	stop := errors.New("enough")
	_, err = m.GenerateStream(context.Background(), Request{PromptIDs: []int{1, 2}, MaxTokens: 30}, func(Token) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("callback error not returned: %v", err)
	}
}

func TestGenerateErrors(t *testing.T) {
	dir, _, _ := testPackage(t)
	m, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := make([]int, testMaxSeq)
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"empty prompt", Request{PromptIDs: []int{}}, "empty"},
		{"prompt too long", Request{PromptIDs: long}, "max_seq_len is 48"},
		{"id outside vocab", Request{PromptIDs: []int{1, 101}}, "outside the vocabulary"},
		{"text without tokenizer", Request{Prompt: "hello"}, "no tokenizer"},
		{"negative temperature", Request{PromptIDs: []int{1}, SamplingOptions: SamplingOptions{Temperature: -1}}, "temperature"},
		{"speedup below 1", Request{PromptIDs: []int{1}, Speedup: 0.5}, "at least 1"},
		{"too few layers", Request{PromptIDs: []int{1}, Speedup: 4}, "at least 2 must remain"},
	}
	for _, tc := range tests {
		_, err := m.Generate(context.Background(), tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want %q", tc.name, err, tc.want)
		}
	}
	m.Close()
	if _, err := m.Generate(context.Background(), Request{PromptIDs: []int{1}}); !errors.Is(err, ErrClosed) {
		t.Errorf("generate after close: %v", err)
	}
}

func TestGenerationReachesMaxSeqLen(t *testing.T) {
	dir, _, _ := testPackage(t)
	m, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompt := make([]int, testMaxSeq-4)
	for i := range prompt {
		prompt[i] = 1 + i%50
	}
	res, err := m.Generate(context.Background(), Request{PromptIDs: prompt, MaxTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != StopLength || len(prompt)+len(res.TokenIDs) != testMaxSeq+1 {
		t.Errorf("stop %q after %d tokens (prompt %d, max_seq_len %d)", res.StopReason, len(res.TokenIDs), len(prompt), testMaxSeq)
	}
}

func TestLoadRejectsEscapingPaths(t *testing.T) {
	dir, _, _ := testPackage(t)
	bad := t.TempDir()
	man, err := manifest.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	man.Files.Head = "../../etc/passwd"
	data, _ := os.ReadFile(filepath.Join(dir, manifest.FileName))
	_ = data
	if err := man.Save(bad); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, Options{}); err == nil || !strings.Contains(err.Error(), "leaves the package") {
		t.Errorf("Load with an escaping path: %v", err)
	}
}

func TestManifestMustMatchGraphs(t *testing.T) {
	dir, _, _ := testPackage(t)
	tests := []struct {
		name   string
		edit   func(*manifest.Manifest)
		want   string
		atLoad bool
	}{
		{"kv heads", func(m *manifest.Manifest) { m.NumKVHeads, m.NumHeads = 4, 4 }, "past_key", true},
		{"hidden size", func(m *manifest.Manifest) { m.HiddenSize = 128 }, "hidden", true},
		{"huge max_seq_len", func(m *manifest.Manifest) { m.MaxSeqLen = 1 << 22 }, "manifest.json max_seq_len is 4194304", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := t.TempDir()
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
				os.WriteFile(filepath.Join(bad, e.Name()), data, 0o644)
			}
			man, err := manifest.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(man)
			man.Save(bad)
			m, err := Load(bad, Options{})
			if !tc.atLoad && err == nil {
				var reqs []Request
				for i := 0; i < 8; i++ {
					reqs = append(reqs, Request{PromptIDs: []int{1, 2}, MaxTokens: 1})
				}
				_, err = m.GenerateBatch(context.Background(), reqs, nil)
				m.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
