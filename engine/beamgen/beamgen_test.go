package beamgen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/local"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/export"
	"github.com/strata-llm/strata/export/synth"
)

var (
	pkgOnce sync.Once
	pkgDir  string
	pkgErr  error
	tmpRoot string
)

func TestMain(m *testing.M) {
	beam.Init()
	var err error
	if tmpRoot, err = os.MkdirTemp("", "strata-beamgen-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// testPackage exports a small synthetic checkpoint (no tokenizer) once.
func testPackage(t *testing.T) string {
	t.Helper()
	pkgOnce.Do(func() {
		spec := synth.MistralLike()
		spec.EOSIDs = nil // every row runs to max tokens
		ckpt := filepath.Join(tmpRoot, "ckpt")
		if pkgErr = synth.Write(ckpt, spec); pkgErr != nil {
			return
		}
		pkgDir = filepath.Join(tmpRoot, "pkg")
		pkgErr = export.Export(context.Background(), export.Options{In: ckpt, Out: pkgDir, DType: "fp32", MaxSeqLen: 64})
	})
	if pkgErr != nil {
		t.Fatal(pkgErr)
	}
	return pkgDir
}

// runPipeline runs Generate on prism over lines and returns the result
// lines and the error lines.
func runPipeline(t *testing.T, lines []string, opts Options) (results, errs []string, err error) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "requests.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resPath, errPath := filepath.Join(dir, "results.jsonl"), filepath.Join(dir, "errors.jsonl")
	p, s := beam.NewPipelineWithRoot()
	res, bad := Generate(s, textio.Read(s, in), opts)
	textio.Write(s, resPath, res)
	textio.Write(s, errPath, bad)
	if _, err := prism.Execute(context.Background(), p); err != nil {
		return nil, nil, err
	}
	return readLines(t, resPath), readLines(t, errPath), nil
}

// readLines reads a JSONL file; a file Beam did not write (no elements) is empty.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// TestGenerateRoutesBadRequests runs good and bad request lines through
// the pipeline: every good one yields the engine's own result (batched
// two at a time across bundles), every bad one an error row with its id,
// and the worker loads the package once.
func TestGenerateRoutesBadRequests(t *testing.T) {
	pkg := testPackage(t)
	m, err := engine.Load(pkg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var lines []string
	want := map[string]engine.Result{}
	for i := 0; i < 7; i++ {
		req := engine.Request{ID: fmt.Sprintf("r%d", i), PromptIDs: []int{1, 2 + i, 3 + 2*i}[:2+i%2], MaxTokens: 3 + i%3}
		b, _ := json.Marshal(req)
		lines = append(lines, string(b))
		req.Speedup = 2 // the Defaults below
		if want[req.ID], err = m.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	bad := map[string]string{
		"oov":     `{"id": "oov", "prompt_ids": [1, 999999]}`,
		"unknown": `{"id": "unknown", "prompt_ids": [1], "colour": "red"}`,
		"empty":   `{"id": "empty"}`,
		"":        `{"prompt_ids": [1, 2]}`,
		"neg":     `{"id": "neg", "prompt_ids": [1], "temperature": -1}`,
		"long":    `{"id": "long", "prompt_ids": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}`,
	}
	wantErr := map[string]string{"oov": "999999", "unknown": "colour", "empty": "neither prompt nor prompt_ids", "": "no id", "neg": "temperature", "long": "64"}
	for _, l := range bad {
		lines = append(lines, l)
	}
	lines = append(lines, "this is not json")

	loads = 0
	results, errs, err := runPipeline(t, lines, Options{Model: pkg, BatchSize: 2, Defaults: engine.Request{Speedup: 2, MaxTokens: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if loads != 1 {
		t.Errorf("the package was loaded %d times by one worker process, want 1", loads)
	}
	got := map[string]engine.Result{}
	for _, l := range results {
		var r engine.Result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("result line %q: %v", l, err)
		}
		if _, dup := got[r.ID]; dup {
			t.Errorf("%s has two results", r.ID)
		}
		got[r.ID] = r
	}
	if len(got) != len(want) {
		t.Errorf("%d results, want %d: %v", len(got), len(want), results)
	}
	for id, w := range want {
		g := got[id]
		if !reflect.DeepEqual(g.TokenIDs, w.TokenIDs) || g.StopReason != w.StopReason || !reflect.DeepEqual(g.KeptLayers, w.KeptLayers) {
			t.Errorf("%s: pipeline %v %s %v, engine %v %s %v", id, g.TokenIDs, g.StopReason, g.KeptLayers, w.TokenIDs, w.StopReason, w.KeptLayers)
		}
	}
	rows := map[string][]string{}
	for _, l := range errs {
		var r ErrorRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("error line %q: %v", l, err)
		}
		rows[r.ID] = append(rows[r.ID], r.Error)
	}
	// The id-less request and the non-JSON line both have id "".
	if len(rows[""]) != 2 {
		t.Errorf("id-less error rows %q, want 2", rows[""])
	}
	for id, substr := range wantErr {
		if len(rows[id]) == 0 {
			t.Errorf("no error row for %q", id)
			continue
		}
		if !strings.Contains(strings.Join(rows[id], " | "), substr) {
			t.Errorf("%q: error %q does not mention %q", id, rows[id], substr)
		}
	}
}

// TestSetupFailsOnMissingPackage checks a package that is not there fails
// the pipeline at Setup, with the path and the cause in the error.
func TestSetupFailsOnMissingPackage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-package")
	_, _, err := runPipeline(t, []string{`{"id": "a", "prompt_ids": [1]}`}, Options{Model: missing})
	if err == nil {
		t.Fatal("the pipeline ran without a model package")
	}
	for _, want := range []string{"strata.Generate setup: ", missing, "no such file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
}

func TestFitBatch(t *testing.T) {
	pkg := testPackage(t)
	m, err := engine.Load(pkg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	weights, err := packageBytes(pkg)
	if err != nil {
		t.Fatal(err)
	}
	full, err := engine.ParseSchedule("uls", 1, m.Manifest.NumLayers)
	if err != nil {
		t.Fatal(err)
	}
	kv := m.KVBytes(1, full)
	tests := []struct {
		name        string
		memory      int64
		concurrency int
		want        int // 0: an error
	}{
		{"no budget", 0, 1, 8},
		{"room for all", weights + 8*kv, 1, 8},
		{"room for three", weights + 3*kv + kv/2, 1, 3},
		{"two batches share it", weights + 6*kv, 2, 3},
		{"weights only", weights, 1, 0},
	}
	for _, tc := range tests {
		o := Options{Model: pkg, BatchSize: 8, Concurrency: tc.concurrency, MemoryBytes: tc.memory}
		got, err := fitBatch(m, o)
		if tc.want == 0 {
			if err == nil || !strings.Contains(err.Error(), "too small") {
				t.Errorf("%s: batch %d, error %v; want a too-small budget error", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: batch %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
}

func TestWorkerThreads(t *testing.T) {
	cores := WorkerThreads(1)
	for _, tc := range []struct{ concurrent, want int }{
		{1, cores}, {0, cores}, {2, max(1, cores/2)}, {cores * 4, 1},
	} {
		if got := WorkerThreads(tc.concurrent); got != tc.want {
			t.Errorf("WorkerThreads(%d) = %d, want %d", tc.concurrent, got, tc.want)
		}
	}
}

// TestAcquireSharesOneModel checks DoFn instances in one process share one
// load of the package, and the last release closes it.
func TestAcquireSharesOneModel(t *testing.T) {
	pkg := testPackage(t)
	o := Options{Model: pkg, Concurrency: 3}.withDefaults()
	loads = 0
	a, _, err := acquire(o)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := acquire(o)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || loads != 1 || cap(a.sem) != 3 {
		t.Errorf("two acquires: same model %v, %d loads, %d slots; want the same model, 1 load, 3 slots", a == b, loads, cap(a.sem))
	}
	if a.model.Manifest == nil {
		t.Fatal("no manifest")
	}
	if err := release(a); err != nil {
		t.Fatal(err)
	}
	if _, err := b.generate(context.Background(), []engine.Request{{PromptIDs: []int{1, 2}, MaxTokens: 2}}); err != nil {
		t.Errorf("the model closed while still in use: %v", err)
	}
	if err := release(b); err != nil {
		t.Fatal(err)
	}
	if _, err := b.generate(context.Background(), []engine.Request{{PromptIDs: []int{1, 2}, MaxTokens: 2}}); err == nil {
		t.Error("the model still runs after its last release")
	}
	c, _, err := acquire(o)
	if err != nil {
		t.Fatal(err)
	}
	defer release(c)
	if loads != 2 {
		t.Errorf("%d loads after the model was closed and acquired again, want 2", loads)
	}
}

// TestBareRuleTakesFineTunedRatio checks that a bare rule name runs the same
// layers through the pipeline (strata-beam --schedule top sets it on every
// request) as through engine.Load's options (strata batch --schedule top):
// on a fine-tuned package both take the package's ratio.
func TestBareRuleTakesFineTunedRatio(t *testing.T) {
	spec := synth.MistralLike()
	spec.EOSIDs = nil
	spec.ULS = map[string]any{"ratios": []float64{2}, "default_schedule": "uls:2"}
	dir := t.TempDir()
	ckpt, pkg := filepath.Join(dir, "ckpt"), filepath.Join(dir, "pkg")
	if err := synth.Write(ckpt, spec); err != nil {
		t.Fatal(err)
	}
	if err := export.Export(context.Background(), export.Options{In: ckpt, Out: pkg, DType: "fp32", MaxSeqLen: 64}); err != nil {
		t.Fatal(err)
	}
	m, err := engine.Load(pkg, engine.Options{Schedule: "top"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	top2, err := engine.ParseSchedule("top:2", 0, m.Manifest.NumLayers)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Schedule().Layers, top2.Layers) {
		t.Fatalf("Load with schedule top keeps %v, want top:2's %v", m.Schedule().Layers, top2.Layers)
	}
	var lines []string
	want := map[string]engine.Result{}
	for i := 0; i < 3; i++ {
		req := engine.Request{ID: fmt.Sprintf("r%d", i), PromptIDs: []int{1, 5 + i, 9 + 2*i}, MaxTokens: 4}
		b, _ := json.Marshal(req)
		lines = append(lines, string(b))
		if want[req.ID], err = m.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	results, errs, err := runPipeline(t, lines, Options{Model: pkg, Defaults: engine.Request{Schedule: "top", MaxTokens: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 0 || len(results) != len(want) {
		t.Fatalf("pipeline wrote %d results and errors %v, want %d results", len(results), errs, len(want))
	}
	for _, l := range results {
		var g engine.Result
		if err := json.Unmarshal([]byte(l), &g); err != nil {
			t.Fatalf("result line %q: %v", l, err)
		}
		w := want[g.ID]
		if !reflect.DeepEqual(g.KeptLayers, top2.Layers) || !reflect.DeepEqual(g.TokenIDs, w.TokenIDs) {
			t.Errorf("%s: pipeline kept %v and generated %v, engine.Load kept %v and generated %v", g.ID, g.KeptLayers, g.TokenIDs, w.KeptLayers, w.TokenIDs)
		}
	}
}
