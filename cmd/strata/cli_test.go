package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-llm/strata/engine/ortlib"
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
	var err error
	if tmpRoot, err = os.MkdirTemp("", "strata-cli-test-"); err != nil {
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

// runCLI runs the CLI in-process and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &stdout, &stderr
	code := 0
	if err := app.Run(append([]string{"strata"}, args...)); err != nil {
		fmt.Fprintln(&stderr, "strata:", strings.Join(strings.Fields(userMessage(err)), " "))
		code = exitCode(err)
	}
	return code, stdout.String(), stderr.String()
}

type generateJSON struct {
	TokenIDs   []int  `json:"token_ids"`
	Text       string `json:"text"`
	KeptLayers []int  `json:"kept_layers"`
	StopReason string `json:"stop_reason"`
	Stats      struct {
		DecodeTPS  float64 `json:"decode_tokens_per_s"`
		TTFTMillis float64 `json:"time_to_first_token_ms"`
	} `json:"stats"`
}

func TestGenerateJSON(t *testing.T) {
	pkg := testPackage(t)
	code, out, errOut := runCLI(t, "generate", "--model", pkg, "--prompt-ids", "1,5,9,13", "--max-tokens", "6", "--speedup", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res generateJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if len(res.TokenIDs) != 6 || res.StopReason != "max_tokens" || len(res.KeptLayers) == 0 {
		t.Errorf("result %+v", res)
	}
}

func TestCLIErrors(t *testing.T) {
	pkg := testPackage(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--model", pkg, "--prompt-ids", "1,x"}, "not an integer"},
		{[]string{"generate", "--model", pkg, "--prompt-ids", "1", "--temperature", "-1"}, "temperature"},
		{[]string{"generate", "--model", pkg, "--prompt-ids", "1", "--top-p", "1.5"}, "top-p"},
		{[]string{"generate", "--model", pkg, "--prompt-ids", "1", "--speedup", "0.5"}, "at least 1"},
		{[]string{"generate", "--model", pkg, "--prompt-ids", "1", "--speedup", "100"}, "at least 2 must remain"},
		{[]string{"generate", "--model", pkg, "--prompt-ids", "1", "--device", "tpu"}, "unknown device"},
		{[]string{"generate", "--model", pkg, "--prompt-ids", "1", "--schedule", "zigzag"}, "unknown schedule"},
		{[]string{"generate", "--model", pkg}, "no prompt"},
		{[]string{"generate", "--model", "/nonexistent", "--prompt-ids", "1"}, "no such file"},
		{[]string{"batch", "--model", pkg, "--in", "/nonexistent.jsonl", "--out", filepath.Join(t.TempDir(), "o")}, "open requests"},
	}
	for _, tc := range tests {
		code, _, errOut := runCLI(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want one line containing %q", tc.args, code, errOut, tc.want)
		}
	}
}

func writeRequests(t *testing.T, n int) string {
	t.Helper()
	var buf bytes.Buffer
	for i := 0; i < n; i++ {
		ids := []int{1, 2 + i, 3 + 2*i, 4 + i%5}[:2+i%3]
		fmt.Fprintf(&buf, `{"id": "r%d", "prompt_ids": %s, "max_tokens": %d}`+"\n", i, mustJSON(ids), 4+i%4)
	}
	path := filepath.Join(t.TempDir(), "requests.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type resultLine struct {
	ID         string `json:"id"`
	TokenIDs   []int  `json:"token_ids"`
	StopReason string `json:"stop_reason"`
	Error      string `json:"error"`
}

func readResults(t *testing.T, path string) map[string]resultLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]resultLine{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if bytes.HasPrefix(sc.Bytes(), []byte(`{"strata_batch":`)) {
			continue
		}
		var r resultLine
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("torn or invalid line %q: %v", sc.Text(), err)
		}
		if _, dup := out[r.ID]; dup {
			t.Fatalf("id %s appears twice", r.ID)
		}
		out[r.ID] = r
	}
	return out
}

func TestBatchMatchesGenerate(t *testing.T) {
	pkg := testPackage(t)
	in := writeRequests(t, 5)
	outPath := filepath.Join(t.TempDir(), "results.jsonl")
	if code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", outPath, "--batch-size", "3", "--speedup", "2"); code != 0 {
		t.Fatalf("batch: %s", errOut)
	}
	results := readResults(t, outPath)
	if len(results) != 5 {
		t.Fatalf("%d results, want 5", len(results))
	}
	for i := 0; i < 5; i++ {
		ids := []int{1, 2 + i, 3 + 2*i, 4 + i%5}[:2+i%3]
		code, out, errOut := runCLI(t, "generate", "--model", pkg, "--prompt-ids", strings.Trim(mustJSON(ids), "[]"),
			"--max-tokens", fmt.Sprint(4+i%4), "--speedup", "2", "--json")
		if code != 0 {
			t.Fatal(errOut)
		}
		var g generateJSON
		json.Unmarshal([]byte(out), &g)
		if r := results[fmt.Sprintf("r%d", i)]; !reflect.DeepEqual(r.TokenIDs, g.TokenIDs) {
			t.Errorf("r%d: batch %v, generate %v", i, r.TokenIDs, g.TokenIDs)
		}
	}
	// A rerun has nothing left to do and adds nothing.
	if code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", outPath); code != 0 || !strings.Contains(errOut, "already") {
		t.Errorf("rerun: exit %d, %q", code, errOut)
	}
	if len(readResults(t, outPath)) != 5 {
		t.Error("rerun changed the results")
	}
}

// TestBatchSurvivesKill kills a `strata batch` child with SIGKILL while it
// works, reruns it, and checks every request is in the output exactly once
// with the same ids as an uninterrupted run.
func TestBatchSurvivesKill(t *testing.T) {
	pkg := testPackage(t)
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const n = 40
	in := writeRequests(t, n)
	dir := t.TempDir()
	want := filepath.Join(dir, "uninterrupted.jsonl")
	if out, err := exec.Command(bin, "batch", "--model", pkg, "--in", in, "--out", want, "--batch-size", "2").CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	got := filepath.Join(dir, "resumed.jsonl")
	cmd := exec.Command(bin, "batch", "--model", pkg, "--in", in, "--out", got, "--batch-size", "2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once some results are on disk.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(got); err == nil && st.Size() > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	partial := readResults(t, got)
	if len(partial) == n {
		t.Log("the child finished before it was killed; the resume path is still checked below")
	}
	if out, err := exec.Command(bin, "batch", "--model", pkg, "--in", in, "--out", got, "--batch-size", "2").CombinedOutput(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out)
	}
	a, b := readResults(t, want), readResults(t, got)
	if len(a) != n || len(b) != n {
		t.Fatalf("uninterrupted %d results, resumed %d, want %d", len(a), len(b), n)
	}
	for id, r := range a {
		if !reflect.DeepEqual(r.TokenIDs, b[id].TokenIDs) {
			t.Errorf("%s: uninterrupted %v, resumed %v", id, r.TokenIDs, b[id].TokenIDs)
		}
	}
}

// TestDefaultModelFirstUse runs README command one on an empty model cache:
// the built-in checkpoint is exported into the cache, then reused.
func TestDefaultModelFirstUse(t *testing.T) {
	lib, err := ortlib.Resolve("", nil) // the ORT library stays where it is
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(ortlib.EnvLibrary, lib.Path)
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	const prompt = "In the beginning God created the heaven and the earth."
	code, out, errOut := runCLI(t, "generate", "--json", prompt)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "first use of the built-in model") {
		t.Errorf("no first-use line on stderr: %q", errOut)
	}
	var res generateJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(res.Text) == "" || len(res.TokenIDs) == 0 {
		t.Errorf("empty translation: %+v", res)
	}
	code, out2, errOut := runCLI(t, "generate", "--json", prompt)
	var res2 generateJSON
	json.Unmarshal([]byte(out2), &res2)
	if code != 0 || strings.Contains(errOut, "first use") || !reflect.DeepEqual(res2.TokenIDs, res.TokenIDs) {
		t.Errorf("second run: exit %d, stderr %q, ids %v (first %v)", code, errOut, res2.TokenIDs, res.TokenIDs)
	}
	dirs, _ := filepath.Glob(filepath.Join(cache, "strata", "models", "strata-default-*"))
	if len(dirs) != 1 {
		t.Errorf("model cache holds %v", dirs)
	}
}

func TestEvalDataErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"prompt":"a"}`+"\n"), 0o644)
	good := filepath.Join(dir, "good.jsonl")
	os.WriteFile(good, []byte(`{"prompt":"a","reference":"b"}`+"\n"), 0o644)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--data", filepath.Join(dir, "none.jsonl")}, "open test set"},
		{[]string{"eval", "--data", bad}, "bad.jsonl: examples line 1"},
		{[]string{"eval", "--data", good, "--task", "bible-en-es"}, "not both"},
		{[]string{"eval", "--task", "nope"}, "unknown task"},
		{[]string{"eval", "--data", good, "extra"}, "no arguments"},
		{[]string{"eval", "--data", good, "--draft", "3"}, "--draft needs --lossless"},
		{[]string{"eval", "--data", good, "--draft-confidence", "0.5"}, "--draft-confidence needs --lossless"},
		{[]string{"eval", "--data", good, "--lossless", "--draft-confidence", "1.5"}, "--draft-confidence 1.5: want a probability"},
		{[]string{"generate", "--model", dir, "--lossless", "--draft-confidence", "NaN", "hi"}, "--draft-confidence NaN"},
		{[]string{"bench", "--model", dir, "--draft-confidence", "0.5"}, "--draft-confidence needs --lossless"},
	}
	for _, tc := range tests {
		code, _, errOut := runCLI(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want one line containing %q", tc.args, code, errOut, tc.want)
		}
	}
}
