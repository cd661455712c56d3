package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine/bench"
)

// reliabilityInputs are the bad inputs of batch jobs, bench and eval that
// used to be accepted with a silent substitution, dropped a request, or
// ended without a clear line. TestBadInput runs them with the others.
func reliabilityInputs(t *testing.T, root string) []badInput {
	pkg := testPackage(t)
	ok := writeFile(t, root, "rel-ok.jsonl", `{"id": "a", "prompt_ids": [1, 2], "max_tokens": 2}`+"\n")
	out := func(name string) string { return filepath.Join(root, "rel-out-"+name+".jsonl") }
	batch := func(in, name string, more ...string) []string {
		return append([]string{"batch", "--model", pkg, "--in", in, "--out", out(name)}, more...)
	}
	two := writeFile(t, root, "two-per-line.jsonl", `{"id": "a", "prompt_ids": [1]} {"id": "b", "prompt_ids": [2]}`+"\n")
	trailing := writeFile(t, root, "trailing.jsonl", `{"id": "a", "prompt_ids": [1]} extra`+"\n")
	zeroMax := writeFile(t, root, "max-tokens-0.jsonl", `{"id": "a", "prompt_ids": [1], "max_tokens": 0}`+"\n")
	zeroTopP := writeFile(t, root, "top-p-0.jsonl", `{"id": "a", "prompt_ids": [1], "top_p": 0}`+"\n")
	bomLate := writeFile(t, root, "bom-line-2.jsonl", `{"id": "a", "prompt_ids": [1]}`+"\n\xef\xbb\xbf"+`{"id": "b", "prompt_ids": [1]}`+"\n")
	empty := writeFile(t, root, "empty.jsonl", "")
	same := writeFile(t, root, "merge-same.jsonl", `{"id": "a", "prompt_ids": [1]}`+"\n")

	// Packages whose calibration.json cannot be used.
	calibrated := func(name, file string) string {
		dir := clonePackage(t, pkg, filepath.Join(root, name))
		writeFile(t, dir, bench.CalibrationFile, file)
		return dir
	}
	badRatio := calibrated("pkg-cal-ratio", `{"points":[{"ratio":100,"batch":8,"prefill_tps":100,"decode_tps":10}]}`)
	overflow := calibrated("pkg-cal-overflow", `{"points":[{"ratio":1,"batch":8,"prefill_tps":1e-300,"decode_tps":1e-300}]}`)
	truncated := calibrated("pkg-cal-truncated", `{"points":[{"ratio":1,`)

	invalidUTF8 := writeFile(t, root, "latin1.jsonl", "{\"prompt\": \"caf\xe9\", \"reference\": \"b\"}\n")
	evalData := writeFile(t, root, "eval-ok.jsonl", `{"prompt": "a", "reference": "b"}`+"\n")
	benchArgs := func(more ...string) []string { return append([]string{"bench", "--model", pkg}, more...) }
	longPrompt := strings.Repeat("a", 20000)

	return []badInput{
		{name: "batch line with two requests", args: batch(two, "two"), want: "two-per-line.jsonl line 1: text after the request object"},
		{name: "batch line with text after the request", args: batch(trailing, "trailing"), want: "trailing.jsonl line 1: text after the request object"},
		{name: `batch request "max_tokens": 0`, args: batch(zeroMax, "max0"), want: "line 1: max_tokens 0: must be at least 1"},
		{name: `batch request "top_p": 0`, args: batch(zeroTopP, "topp0"), want: "line 1: top_p 0"},
		{name: "batch byte order mark on line 2", args: batch(bomLate, "bom"), want: "line 2: starts with a UTF-8 byte order mark"},
		{name: "batch empty --in", args: batch(empty, "empty"), want: "holds no requests"},
		{name: "batch --in is a directory", args: batch(root, "dir"), want: "is a directory"},
		{name: "batch --merge onto the --in file", args: []string{"batch", "--model", pkg, "--in", same, "--out", same, "--shards", "3", "--merge"}, want: "is the requests file"},
		{name: `batch --shard ""`, args: batch(ok, "shard-empty", "--shard", ""), want: `--shard "": want I/N`},
		{name: "batch --deadline -5m", args: batch(ok, "deadline-neg", "--deadline", "-5m"), want: "--deadline -5m: must be a positive duration"},
		{name: "batch --deadline 5 (no unit)", args: batch(ok, "deadline-unit", "--deadline", "5"), want: "--deadline 5: want a duration such as 30m"},
		{name: "batch --deadline, calibrated ratio the package cannot run", args: []string{"batch", "--model", badRatio, "--in", ok, "--out", out("cal-ratio"), "--deadline", "1m"}, want: "ratio 100 cannot run on this package"},
		{name: "batch --deadline, calibrated rates that overflow the estimate", args: []string{"batch", "--model", overflow, "--in", ok, "--out", out("cal-overflow"), "--deadline", "1m"}, want: "invalid point"},
		{name: "batch --deadline, calibration.json cut short", args: []string{"batch", "--model", truncated, "--in", ok, "--out", out("cal-trunc"), "--deadline", "1m"}, want: "calibration.json: unexpected end of JSON input; measure it again with strata bench"},
		{name: "generate with a text prompt far longer than max_seq_len", args: []string{"generate", "--model", pkg, longPrompt}, want: "the prompt has 20000 bytes, more than fit in the model's max_seq_len of 64 tokens"},
		{name: "bench --workload mixed --threads 100000", args: benchArgs("--workload", "mixed", "--threads", "100000"), want: "--threads 100000 is out of range"},
		{name: "bench --workload mixed --calibrate", args: benchArgs("--workload", "mixed", "--calibrate"), want: "--calibrate applies to --workload ratios only"},
		{name: "bench --workload mixed --lossless", args: benchArgs("--workload", "mixed", "--lossless"), want: "--lossless applies to --workload ratios only"},
		{name: "bench --workload mixed --ratios 1,2", args: benchArgs("--workload", "mixed", "--ratios", "1,2"), want: "--ratios applies to --workload ratios only"},
		{name: "bench --workload mixed --markdown", args: benchArgs("--workload", "mixed", "--markdown", out("md")), want: "--markdown applies to --workload ratios only"},
		{name: "bench --workload mixed --plot", args: benchArgs("--workload", "mixed", "--plot", out("png")), want: "--plot applies to --workload ratios only"},
		{name: "bench --requests with the ratios workload", args: benchArgs("--requests", "8"), want: "--requests applies to --workload mixed only"},
		{name: "bench --workload mixed --requests 0", args: benchArgs("--workload", "mixed", "--requests", "0"), want: "--requests 0: must be at least 1"},
		{name: "bench --gen 0", args: benchArgs("--gen", "0"), want: "--gen 0: must be at least 1"},
		{name: "bench --prompt-len 0", args: benchArgs("--prompt-len", "0"), want: "--prompt-len 0: must be at least 1"},
		{name: "bench --reps 0", args: benchArgs("--reps", "0"), want: "--reps 0: must be at least 1"},
		{name: "bench --batch 0", args: benchArgs("--batch", "0"), want: "--batch 0: must be at least 1"},
		{name: "eval --data with invalid UTF-8", args: []string{"eval", "--model", pkg, "--data", invalidUTF8}, want: "line 1 is not valid UTF-8"},
		{name: "eval --schedules uls,,top", args: []string{"eval", "--model", pkg, "--data", evalData, "--schedules", "uls,,top"}, want: "--schedules: an empty item"},
		{name: "eval --schedules uls,top,uls", args: []string{"eval", "--model", pkg, "--data", evalData, "--schedules", "uls,top,uls"}, want: "--schedules: uls is listed twice"},
	}
}

// The requests file of the merge row must survive it.
func TestMergeRowLeavesRequests(t *testing.T) {
	root := t.TempDir()
	for _, tc := range reliabilityInputs(t, root) {
		if !strings.Contains(tc.name, "--merge") {
			continue
		}
		before, _ := os.ReadFile(tc.args[4])
		runInProcess(t, tc.args...)
		if after, _ := os.ReadFile(tc.args[4]); string(after) != string(before) {
			t.Errorf("%s: the requests file now holds %q", tc.name, after)
		}
	}
}
