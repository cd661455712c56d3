package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-llm/strata/export"
	"github.com/strata-llm/strata/export/synth"
)

// The test binary doubles as the command: with this variable set it runs
// main, so the tests run the real CLI without building it separately.
const asCommand = "STRATA_BEAM_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(asCommand) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// strataBeam runs the command with args and returns its exit code, stdout
// and stderr.
func strataBeam(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asCommand+"=1")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// testPackage exports a small synthetic checkpoint (no tokenizer).
func testPackage(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	spec := synth.MistralLike()
	spec.EOSIDs = nil // every row runs to max tokens
	ckpt := filepath.Join(root, "ckpt")
	if err := synth.Write(ckpt, spec); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(root, "pkg")
	if err := export.Export(context.Background(), export.Options{In: ckpt, Out: pkg, DType: "fp32", MaxSeqLen: 64}); err != nil {
		t.Fatal(err)
	}
	return pkg
}

// readByID reads a JSONL file into raw objects keyed by id.
func readByID(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]any{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		if _, header := row["strata_batch"]; header {
			continue // strata batch's line saying what produced the file
		}
		id, _ := row["id"].(string)
		if _, dup := out[id]; dup {
			t.Fatalf("%s: id %q appears twice", path, id)
		}
		out[id] = row
	}
	return out
}

// TestMatchesStrataBatch runs the same requests through `strata batch`
// and through the pipeline on prism: every id gets the same result (the
// stats, which are timings, aside) or the same error, and the pipeline
// routes the errors to their own file.
func TestMatchesStrataBatch(t *testing.T) {
	pkg := testPackage(t)
	dir := t.TempDir()
	strata := filepath.Join(dir, "strata")
	if out, err := exec.Command("go", "build", "-o", strata, "github.com/strata-llm/strata/cmd/strata").CombinedOutput(); err != nil {
		t.Fatalf("build strata: %v\n%s", err, out)
	}
	var lines []string
	for i := 0; i < 12; i++ {
		ids := []int{1, 2 + i, 3 + 2*i, 4 + i%5}[:2+i%3]
		b, _ := json.Marshal(ids)
		lines = append(lines, fmt.Sprintf(`{"id": "r%d", "prompt_ids": %s, "max_tokens": %d}`, i, b, 3+i%4))
	}
	lines = append(lines,
		`{"id": "oov", "prompt_ids": [1, 999999]}`,
		`{"id": "hot", "prompt_ids": [1], "temperature": -1}`,
		`{"id": "defaults", "prompt_ids": [7, 8]}`,
	)
	in := filepath.Join(dir, "requests.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--model", pkg, "--batch-size", "3", "--speedup", "2", "--max-tokens", "5"}
	want := filepath.Join(dir, "batch.jsonl")
	if out, err := exec.Command(strata, append([]string{"batch", "--in", in, "--out", want}, common...)...).CombinedOutput(); err != nil {
		t.Fatalf("strata batch: %v\n%s", err, out)
	}
	results := filepath.Join(dir, "beam.jsonl")
	code, _, errOut := strataBeam(t, append([]string{"--input", in, "--output", results}, common...)...)
	if code != 0 {
		t.Fatalf("strata-beam: exit %d\n%s", code, errOut)
	}
	batch, got, errs := readByID(t, want), readByID(t, results), readByID(t, filepath.Join(dir, "beam.errors.jsonl"))
	if len(batch) != len(lines) {
		t.Fatalf("strata batch wrote %d rows for %d requests", len(batch), len(lines))
	}
	if len(got)+len(errs) != len(lines) {
		t.Errorf("pipeline: %d results and %d errors for %d requests", len(got), len(errs), len(lines))
	}
	for id, w := range batch {
		if msg, isErr := w["error"]; isErr {
			if e, ok := errs[id]; !ok || e["error"] != msg {
				t.Errorf("%s: strata batch error %q, pipeline error row %v (result %v)", id, msg, e, got[id])
			}
			continue
		}
		g, ok := got[id]
		if !ok {
			t.Errorf("%s: no pipeline result (error row %v)", id, errs[id])
			continue
		}
		delete(w, "stats")
		delete(g, "stats")
		if !reflect.DeepEqual(w, g) {
			t.Errorf("%s: strata batch %v, pipeline %v", id, w, g)
		}
	}
	if len(errs) != 2 {
		t.Errorf("error rows %v, want oov and hot", errs)
	}
}

func TestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "requests.jsonl")
	if err := os.WriteFile(in, []byte(`{"id": "a", "prompt_ids": [1]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--input", in, "--output", out}, "--model is required"},
		{[]string{"--model", dir, "--output", out}, "--input is required"},
		{[]string{"--model", dir, "--input", in}, "--output is required"},
		{[]string{"--model", dir, "--input", filepath.Join(dir, "none.jsonl"), "--output", out}, "no such file"},
		{[]string{"--model", filepath.Join(dir, "nopkg"), "--input", in, "--output", out}, "--model: read model package"},
		{[]string{"--model", dir, "--input", in, "--output", out, "--batch-size", "0"}, "--batch-size 0"},
		{[]string{"--model", dir, "--input", in, "--output", out, "--concurrency", "0"}, "--concurrency 0"},
		{[]string{"--model", dir, "--input", in, "--output", out, "--memory", "lots"}, "--memory lots"},
		{[]string{"--model", dir, "--input", in, "--output", out, "--temperature", "-1"}, "temperature"},
		{[]string{"--model", dir, "--input", in, "--output", out, "--errors", out}, "must differ"},
		{[]string{"--model", testPackage(t), "--input", in, "--output", out, "--schedule", "top"}, "--schedule top needs --speedup R"},
	}
	for _, tc := range tests {
		code, _, errOut := strataBeam(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want one line containing %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"6GiB", 6 << 30, true},
		{"512MiB", 512 << 20, true},
		{"1.5G", 3 << 29, true},
		{"2048", 2048, true},
		{"10KB", 10 << 10, true},
		{"lots", 0, false},
		{"-1GiB", 0, false},
	}
	for _, tc := range tests {
		got, err := parseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestErrorsPath(t *testing.T) {
	for in, want := range map[string]string{
		"out.jsonl":           "out.errors.jsonl",
		"/data/results":       "/data/results.errors",
		"gs://b/r.v1/x.jsonl": "gs://b/r.v1/x.errors.jsonl",
		"/a.b/results":        "/a.b/results.errors",
	} {
		if got := errorsPath(in); got != want {
			t.Errorf("errorsPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestInterruptedRunKeepsResults stops a run with SIGINT and checks that it
// exits 130 saying so, and leaves the earlier results and no temporary file.
func TestInterruptedRunKeepsResults(t *testing.T) {
	pkg := testPackage(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "requests.jsonl")
	var lines []string
	for i := range 40 {
		lines = append(lines, fmt.Sprintf(`{"id": "r%d", "prompt_ids": [1, %d], "max_tokens": 40}`, i, 2+i))
	}
	os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	out := filepath.Join(dir, "out.jsonl")
	before := `{"id":"earlier"}` + "\n"
	os.WriteFile(out, []byte(before), 0o644)
	cmd := exec.Command(os.Args[0], "--model", pkg, "--input", in, "--output", out, "--batch-size", "1")
	cmd.Env = append(os.Environ(), asCommand+"=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Stop it once the pipeline is writing its temporary output.
	for start := time.Now(); time.Since(start) < 60*time.Second; time.Sleep(10 * time.Millisecond) {
		if tmp, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(tmp) > 0 {
			break
		}
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code == 0 {
		t.Skipf("the run finished before the signal: %s", stderr.String())
	}
	if code != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("exit %d, stderr %q; want 130 and a line saying it was interrupted", code, stderr.String())
	}
	if after, _ := os.ReadFile(out); string(after) != before {
		t.Errorf("an interrupted run changed the earlier results to %q", after)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}
