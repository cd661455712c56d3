package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/bench"
)

// TestMergeRefusesRequestsFile checks that `batch --merge` with --out
// naming the requests file — by the same path, a symbolic link or a
// relative path — is refused and leaves the requests as they were.
func TestMergeRefusesRequestsFile(t *testing.T) {
	pkg := testPackage(t)
	dir := t.TempDir()
	in := writeRequests(t, 4)
	reqs := filepath.Join(dir, "requests.jsonl")
	data, _ := os.ReadFile(in)
	os.WriteFile(reqs, data, 0o644)
	for i := range 3 { // the shards of --out requests.jsonl: complete, so a merge could replace the requests
		if code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", reqs, "--out", reqs, "--shard", fmt.Sprintf("%d/3", i)); code != 0 {
			t.Fatalf("shard %d: %s", i, errOut)
		}
	}
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(reqs, link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, tc := range []struct{ in, out string }{{reqs, reqs}, {reqs, link}, {"requests.jsonl", reqs}, {reqs, "./requests.jsonl"}} {
		code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", tc.in, "--out", tc.out, "--shards", "3", "--merge")
		if code == 0 || !strings.Contains(errOut, "is the requests file") {
			t.Errorf("--in %s --out %s --merge: exit %d, %q", tc.in, tc.out, code, errOut)
		}
	}
	if now, _ := os.ReadFile(reqs); !bytes.Equal(now, data) {
		t.Errorf("the requests file changed:\n%s", now)
	}
}

// failingFile writes half of what it is given, then fails as a full disk does.
type failingFile struct{ *os.File }

func (f failingFile) Write(b []byte) (int, error) {
	n, _ := f.File.Write(b[:len(b)/2])
	return n, syscall.ENOSPC
}

// TestResultsWriteFailure checks that a write failing mid-line leaves the
// results file ending at a complete line, and that writing goes on there.
func TestResultsWriteFailure(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", `{"id": "a", "prompt_ids": [1]}`+"\n")
	out := filepath.Join(dir, "out.jsonl")
	r, err := openResults(in, out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.write("a", resultLine{ID: "a", TokenIDs: []int{1, 2}}); err != nil {
		t.Fatal(err)
	}
	r.w = failingFile{r.f}
	err = r.write("b", resultLine{ID: "b", TokenIDs: []int{3, 4, 5, 6, 7}})
	if err == nil || !strings.Contains(err.Error(), out) || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("failed write: %v, want an error naming %s", err, out)
	}
	data, _ := os.ReadFile(out)
	if !bytes.HasSuffix(data, []byte("\n")) || bytes.Count(data, []byte("\n")) != 1 {
		t.Fatalf("after a failed write the file holds %q, want the one complete line", data)
	}
	r.w = r.f // the disk has room again
	if err := r.write("b", resultLine{ID: "b", TokenIDs: []int{3}}); err != nil {
		t.Fatal(err)
	}
	if got := readResults(t, out); len(got) != 2 || len(got["b"].TokenIDs) != 1 {
		t.Errorf("results %+v", got)
	}
}

// TestReadRequestsErrors checks that every request line is read as one
// whole request or refused with an error naming the file and the line.
func TestReadRequestsErrors(t *testing.T) {
	defer func(n int) { maxRequestLine = n }(maxRequestLine)
	maxRequestLine = 4096
	dir := t.TempDir()
	okLine := `{"id": "a", "prompt_ids": [1]}`
	for _, tc := range []struct {
		name, data, want string
		n                int // requests read when want is ""
	}{
		{"two objects on one line", okLine + ` {"id": "b", "prompt_ids": [2]}` + "\n", "line 1: text after the request object", 0},
		{"two objects on line 2", okLine + "\n" + `{"id": "b", "prompt_ids": [2]}{"id": "c", "prompt_ids": [3]}` + "\n", "line 2: text after the request object", 0},
		{"trailing text", okLine + " # comment\n", "line 1: text after the request object", 0},
		{"byte order mark", "\xef\xbb\xbf" + okLine + "\n", "", 1},
		{"byte order mark on line 2", okLine + "\n\xef\xbb\xbf" + `{"id": "b", "prompt_ids": [2]}` + "\n", "line 2: starts with a UTF-8 byte order mark", 0},
		{"line over the limit", okLine + "\n" + `{"id": "b", "prompt": "` + strings.Repeat("x", 5000) + `"}` + "\n", "line 2 is longer than", 0},
		{"empty file", "", "holds no requests", 0},
		{"blank lines only", "\n  \n", "holds no requests", 0},
		{"max_tokens 0", `{"id": "a", "prompt_ids": [1], "max_tokens": 0}` + "\n", "line 1: max_tokens 0: must be at least 1", 0},
		{"top_p 0", `{"id": "a", "prompt_ids": [1], "top_p": 0}` + "\n", "line 1: top_p 0", 0},
	} {
		path := writeFile(t, dir, "in.jsonl", tc.data)
		reqs, err := readRequests(path, resultDefaults())
		switch {
		case tc.want == "" && (err != nil || len(reqs) != tc.n):
			t.Errorf("%s: %d requests, %v; want %d", tc.name, len(reqs), err, tc.n)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path)):
			t.Errorf("%s: %v; want an error naming %s and containing %q", tc.name, err, path, tc.want)
		}
	}
	if _, err := readRequests(dir, resultDefaults()); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("--in a directory: %v", err)
	}
}

// TestBatchEmptyInput checks that an empty requests file fails instead of
// reporting that all of its 0 requests are done.
func TestBatchEmptyInput(t *testing.T) {
	pkg := testPackage(t)
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", "")
	code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", filepath.Join(dir, "out.jsonl"))
	if code == 0 || !strings.Contains(errOut, "holds no requests") {
		t.Errorf("exit %d, %q", code, errOut)
	}
}

// TestMergeChecksHeaders checks that shards produced with other settings
// are not merged without a word.
func TestMergeChecksHeaders(t *testing.T) {
	pkg := testPackage(t)
	in := writeRequests(t, 6)
	out := filepath.Join(t.TempDir(), "results.jsonl")
	for i := range 3 {
		args := []string{"batch", "--model", pkg, "--in", in, "--out", out, "--shard", fmt.Sprintf("%d/3", i)}
		if i == 1 {
			args = append(args, "--speedup", "2")
		}
		if code, _, errOut := runCLI(t, args...); code != 0 {
			t.Fatalf("shard %d: %s", i, errOut)
		}
	}
	code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", out, "--shards", "3", "--merge")
	if code == 0 || !strings.Contains(errOut, "produced with other settings") || !strings.Contains(errOut, "speedup") {
		t.Errorf("merge of mixed shards: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused merge wrote %s (%v)", out, err)
	}
	if code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", out, "--shards", "3", "--merge", "--allow-mismatch"); code != 0 {
		t.Errorf("--allow-mismatch: exit %d, %s", code, errOut)
	}
}

// TestBatchResumeKeepsSettings checks that a resumed --out records what
// changes its output: the ratio a --deadline picked stays the ratio of the
// whole file, and --lossless must agree.
func TestBatchResumeKeepsSettings(t *testing.T) {
	pkg := clonePackage(t, testPackage(t), filepath.Join(t.TempDir(), "pkg"))
	// Full depth is fast enough for a few requests, too slow for many.
	cal := bench.Calibration{Device: "cpu", Points: []bench.CalibrationPoint{
		{Ratio: 1, Batch: 8, PrefillTPS: 1e6, DecodeTPS: 1},
		{Ratio: 2, Batch: 8, PrefillTPS: 1e6, DecodeTPS: 1e6},
	}}
	if err := cal.Save(pkg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	all := writeRequests(t, 12)
	data, _ := os.ReadFile(all)
	lines := strings.SplitAfter(string(data), "\n")
	first := writeFile(t, dir, "first.jsonl", lines[0])
	out := filepath.Join(dir, "out.jsonl")
	code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", first, "--out", out, "--deadline", "1m")
	if code != 0 || !strings.Contains(errOut, "running at ratio 1") {
		t.Fatalf("first part: exit %d, %s", code, errOut)
	}
	code, _, errOut = runCLI(t, "batch", "--model", pkg, "--in", all, "--out", out, "--deadline", "1m", "--lossless")
	if code == 0 || !strings.Contains(errOut, "lossless unset → true") {
		t.Errorf("resume with --lossless: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "batch", "--model", pkg, "--in", all, "--out", out, "--deadline", "1m")
	if code != 0 || !strings.Contains(errOut, "resuming at ratio 1") {
		t.Fatalf("resume: exit %d, %s", code, errOut)
	}
	kept := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, out)), "\n")[1:] {
		var r struct {
			KeptLayers []int `json:"kept_layers"`
		}
		json.Unmarshal([]byte(line), &r)
		kept[fmt.Sprint(r.KeptLayers)] = true
	}
	if len(kept) != 1 {
		t.Errorf("one results file decoded with the layers %v", kept)
	}
}

// resultDefaults are request defaults as the flags give them.
func resultDefaults() engine.Request { return engine.Request{MaxTokens: 16} }

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestBatchSummaryCountsFailures checks that the closing line of a batch
// does not count failed requests as done.
func TestBatchSummaryCountsFailures(t *testing.T) {
	pkg := testPackage(t)
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", `{"id": "ok", "prompt_ids": [1, 2], "max_tokens": 2}`+"\n"+`{"id": "bad", "prompt_ids": [1, 99999]}`+"\n")
	code, _, errOut := runCLI(t, "batch", "--model", pkg, "--in", in, "--out", filepath.Join(dir, "out.jsonl"))
	if code != 0 || !strings.Contains(errOut, "1/2 requests done, 1 failed") {
		t.Errorf("exit %d, %q; want a summary of 1 done and 1 failed", code, errOut)
	}
}

// TestInterruptedMessage checks that a command stopped by a signal says so
// instead of "context canceled".
func TestInterruptedMessage(t *testing.T) {
	for _, err := range []error{context.Canceled, interrupted(context.Canceled), fmt.Errorf("step 3: %w", context.Canceled)} {
		if msg := userMessage(err); !strings.Contains(msg, "interrupted") || exitCode(err) != exitInterrupted {
			t.Errorf("%v: message %q, exit %d", err, msg, exitCode(err))
		}
	}
}

// TestMergeLongLine checks that a shard line over the limit is named with
// its file, line and the limit, not "token too long".
func TestMergeLongLine(t *testing.T) {
	defer func(n int) { maxResultLine = n }(maxResultLine)
	maxResultLine = 1024
	dir := t.TempDir()
	in := writeFile(t, dir, "in.jsonl", `{"id": "a", "prompt_ids": [1]}`+"\n")
	out := filepath.Join(dir, "out.jsonl")
	shard := writeFile(t, dir, "out.shard-0-of-1.jsonl", `{"id": "x"}`+"\n"+`{"id": "a", "text": "`+strings.Repeat("y", 2000)+`"}`+"\n")
	code, _, errOut := runCLI(t, "batch", "--in", in, "--out", out, "--shards", "1", "--merge")
	if code == 0 || !strings.Contains(errOut, shard+" line 2 is longer than 1024 bytes") {
		t.Errorf("exit %d, %q", code, errOut)
	}
}
