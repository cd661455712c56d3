package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/models/manifest"
)

// TestBatchTwoWriters checks that a second batch on an --out another run
// holds is refused and writes nothing.
func TestBatchTwoWriters(t *testing.T) {
	pkg := testPackage(t)
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", `{"id": "a", "prompt_ids": [1, 2], "max_tokens": 2}`+"\n")
	out := filepath.Join(dir, "out.jsonl")
	held, err := openResults(in, out)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", out)
	if code == 0 || !strings.Contains(errOut, "in use by another strata batch") {
		t.Errorf("second writer: exit %d, %q", code, errOut)
	}
	held.Close() // created by the first, which wrote nothing: removed
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("an unused results file is left behind (%v)", err)
	}
	if code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", out); code != 0 {
		t.Fatalf("after the first writer closed: exit %d, %s", code, errOut)
	}
	if r := readResults(t, out); len(r["a"].TokenIDs) != 2 {
		t.Errorf("results %+v", r)
	}
}

// TestBatchInIsOut checks that --out naming the requests file, directly or
// through a symbolic or hard link, is refused and leaves it untouched.
func TestBatchInIsOut(t *testing.T) {
	pkg := testPackage(t)
	dir := t.TempDir()
	content := `{"id": "a", "prompt_ids": [1, 2], "max_tokens": 2}` + "\n"
	in := writeFile(t, dir, "in.jsonl", content)
	sym, hard := filepath.Join(dir, "sym.jsonl"), filepath.Join(dir, "hard.jsonl")
	if err := os.Symlink(in, sym); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(in, hard); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{in, sym, hard} {
		code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", out)
		if code == 0 || !strings.Contains(errOut, "is the requests file") {
			t.Errorf("--out %s: exit %d, %q", filepath.Base(out), code, errOut)
		}
	}
	if data, _ := os.ReadFile(in); string(data) != content {
		t.Errorf("requests file changed: %q", data)
	}
}

// TestBatchMismatchedResume checks that resuming with other settings or
// another package is refused, naming what differs, unless --allow-mismatch.
func TestBatchMismatchedResume(t *testing.T) {
	pkg := testPackage(t)
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", `{"id": "a", "prompt_ids": [1, 2], "max_tokens": 2}`+"\n")
	out := filepath.Join(dir, "out.jsonl")
	if code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", out); code != 0 {
		t.Fatal(errOut)
	}
	writeFile(t, dir, "in.jsonl", `{"id": "a", "prompt_ids": [1, 2], "max_tokens": 2}`+"\n"+`{"id": "b", "prompt_ids": [3], "max_tokens": 2}`+"\n")
	other := clonePackage(t, pkg, filepath.Join(dir, "other-pkg"))
	editJSON(t, filepath.Join(other, manifest.FileName), func(v map[string]any) { v["eos_ids"] = []int{5} })
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--model", pkg, "--temperature", "0.5"}, "temperature unset → 0.5"},
		{[]string{"--model", pkg, "--speedup", "2"}, "speedup unset → 2"},
		{[]string{"--model", pkg, "--max-tokens", "7"}, "max_tokens 128 → 7"},
		{[]string{"--model", other}, "model package"},
	}
	for _, tc := range tests {
		code, _, errOut := runCLI(t, append([]string{"batch", "--in", in, "--out", out}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, "produced with other settings") || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want a refusal naming %q", tc.args, code, errOut, tc.want)
		}
	}
	if r := readResults(t, out); len(r) != 1 {
		t.Fatalf("a refused resume wrote results: %+v", r)
	}
	code, _, errOut := runCLI(t, "batch", "--model", other, "--in", in, "--out", out, "--allow-mismatch")
	if code != 0 {
		t.Fatalf("--allow-mismatch: exit %d, %s", code, errOut)
	}
	if r := readResults(t, out); len(r) != 2 {
		t.Errorf("results after --allow-mismatch: %+v", r)
	}
}

// TestBatchRetriesFailed checks that a rerun retries requests whose result
// is an error (leaving one line per id), and that --skip-failed does not.
func TestBatchRetriesFailed(t *testing.T) {
	pkg := testPackage(t)
	dir := t.TempDir()
	long := strings.TrimSuffix(strings.Repeat("1,", 64), ",")
	in := writeFile(t, dir, "in.jsonl", `{"id": "a", "prompt_ids": [`+long+`]}`+"\n"+`{"id": "b", "prompt_ids": [3], "max_tokens": 2}`+"\n")
	out := filepath.Join(dir, "out.jsonl")
	if code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", out); code != 0 {
		t.Fatal(errOut)
	}
	if r := readResults(t, out); r["a"].Error == "" {
		t.Fatalf("a: %+v, want an error", r["a"])
	}
	// The request is fixed; --skip-failed leaves it, a plain rerun retries it.
	writeFile(t, dir, "in.jsonl", `{"id": "a", "prompt_ids": [1, 2], "max_tokens": 3}`+"\n"+`{"id": "b", "prompt_ids": [3], "max_tokens": 2}`+"\n")
	if code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", out, "--skip-failed"); code != 0 || !strings.Contains(errOut, "already") {
		t.Fatalf("--skip-failed: exit %d, %s", code, errOut)
	}
	if r := readResults(t, out); r["a"].Error == "" {
		t.Fatalf("--skip-failed retried a: %+v", r["a"])
	}
	code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", out)
	if code != 0 || !strings.Contains(errOut, "retrying 1 requests") {
		t.Fatalf("rerun: exit %d, %s", code, errOut)
	}
	r := readResults(t, out) // fails on an id that appears twice
	if r["a"].Error != "" || len(r["a"].TokenIDs) != 3 || len(r["b"].TokenIDs) != 2 {
		t.Errorf("after the retry: %+v", r)
	}
}

// TestBatchProgressLines checks that with stderr not a terminal, progress
// lines appear while the batch runs, not only at the end.
func TestBatchProgressLines(t *testing.T) {
	pkg := testPackage(t)
	defer func(d time.Duration) { progressInterval = d }(progressInterval)
	progressInterval = 0
	in := writeRequests(t, 3)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", out, "--batch-size", "1")
	if code != 0 {
		t.Fatal(errOut)
	}
	for _, want := range []string{"strata: 1/3 requests", "strata: 2/3 requests", "strata: 3/3 requests done"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

// TestUserMessage checks the CLI's advice on non-finite logits.
func TestUserMessage(t *testing.T) {
	err := fmt.Errorf("generate: %w", engine.ErrNonFiniteLogits)
	if msg := userMessage(err); !strings.Contains(msg, "NaN or Inf") || !strings.Contains(msg, "strata verify") {
		t.Errorf("userMessage = %q", msg)
	}
}

// TestNoORTTelemetryFiles checks that running a model leaves no ONNX
// Runtime telemetry database under $XDG_CACHE_HOME/Microsoft.
func TestNoORTTelemetryFiles(t *testing.T) {
	pkg := testPackage(t)
	cache := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + cache} // the CLI sets ORT_DISABLE_TELEMETRY itself
	if code, stderr := runBinary(t, env, "generate", "--model", pkg, "--prompt-ids", "1,2", "-n", "2"); code != 0 {
		t.Fatalf("generate: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(cache, "Microsoft")); !os.IsNotExist(err) {
		t.Errorf("%s/Microsoft exists (%v)", cache, err)
	}
}

// TestProgressWithoutTokens checks that a progress that does not count
// tokens (eval, export) never prints "0 tokens, 0.0 tok/s", and that lines
// are rate-limited by progressInterval.
func TestProgressWithoutTokens(t *testing.T) {
	defer func(d time.Duration) { progressInterval = d }(progressInterval)
	var buf bytes.Buffer
	progressInterval = time.Hour
	p := newProgress(&buf, "translations", 4, 0)
	p.tokens = -1
	p.set(1, 4)
	p.set(2, 4)
	if buf.Len() != 0 {
		t.Errorf("printed within the interval: %q", buf.String())
	}
	progressInterval = 0
	p.set(3, 4)
	p.finish()
	out := buf.String()
	if strings.Contains(out, "tok") || !strings.Contains(out, "strata: 3/4 translations") || !strings.Contains(out, "strata: 3/4 translations done") {
		t.Errorf("progress output %q", out)
	}
}
