package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestShardOfCoversEveryIDOnce(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7} {
		counts := make([]int, n)
		for i := 0; i < 300; i++ {
			id := fmt.Sprintf("r%d", i)
			s := shardOf(id, n)
			if s < 0 || s >= n || shardOf(id, n) != s {
				t.Fatalf("n=%d: %s in shard %d", n, id, s)
			}
			counts[s]++
		}
		for s, c := range counts {
			if c == 0 {
				t.Errorf("n=%d: shard %d got no ids of 300: %v", n, s, counts)
			}
		}
	}
}

func TestShardPath(t *testing.T) {
	tests := []struct {
		out  string
		i, n int
		want string
	}{
		{"/data/results.jsonl", 2, 3, "/data/results.shard-2-of-3.jsonl"},
		{"results", 0, 1, "results.shard-0-of-1"},
		{"a.b/out.json", 1, 4, "a.b/out.shard-1-of-4.json"},
	}
	for _, tc := range tests {
		if got := shardPath(tc.out, tc.i, tc.n); got != tc.want {
			t.Errorf("shardPath(%q, %d, %d) = %q, want %q", tc.out, tc.i, tc.n, got, tc.want)
		}
	}
}

func TestShardFlagErrors(t *testing.T) {
	in := writeRequests(t, 3)
	out := filepath.Join(t.TempDir(), "results.jsonl")
	tests := []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--shard", "3/3"}, "", "want I/N"},
		{[]string{"--shard", "x"}, "", "want I/N"},
		{[]string{"--shard", "0/3", "--shards", "2"}, "", "disagrees"},
		{[]string{"--shards", "0"}, "", "at least 1"},
		{[]string{"--shards", "3"}, "", "JOB_COMPLETION_INDEX"},
		{[]string{"--shards", "3"}, "3", "want an index from 0 to 2"},
		{[]string{"--shards", "3"}, "x", "want an index"},
		{[]string{"--merge"}, "", "--merge needs --shards"},
		{[]string{"--merge", "--shard", "0/2"}, "", "not --shard"},
	}
	for _, tc := range tests {
		if tc.env != "" {
			t.Setenv(completionIndexEnv, tc.env)
		} else {
			os.Unsetenv(completionIndexEnv)
		}
		args := append([]string{"batch", "--in", in, "--out", out}, tc.args...)
		code, _, errOut := runCLI(t, args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v (env %q): exit %d, stderr %q; want one line containing %q", tc.args, tc.env, code, errOut, tc.want)
		}
	}
}

// TestMergeChecksIDs merges hand-written shard files: a complete set is
// joined in request order, and a missing, repeated or unknown id fails the
// merge without writing anything.
func TestMergeChecksIDs(t *testing.T) {
	const n = 3
	in := writeRequests(t, 9)
	line := func(id string) string {
		return fmt.Sprintf(`{"id":%q,"token_ids":[1],"text":"","stop_reason":"max_tokens"}`, id)
	}
	complete := func() [n][]string {
		var shards [n][]string
		for i := 8; i >= 0; i-- { // reverse order: the merge restores it
			id := fmt.Sprintf("r%d", i)
			s := shardOf(id, n)
			shards[s] = append(shards[s], line(id))
		}
		return shards
	}
	tests := []struct {
		name string
		edit func(*[n][]string) string // returns text appended to shard 0's file
		want string                    // "" means the merge succeeds
	}{
		{"complete", func(*[n][]string) string { return "" }, ""},
		{"missing", func(s *[n][]string) string {
			for i := range s {
				if len(s[i]) > 0 {
					s[i] = s[i][1:]
					break
				}
			}
			return ""
		}, "1 ids missing"},
		{"torn last line", func(*[n][]string) string { return `{"id":"r` }, ""},
		{"repeated", func(s *[n][]string) string {
			for i := range s {
				if len(s[i]) > 0 {
					s[(i+1)%n] = append(s[(i+1)%n], s[i][0])
					break
				}
			}
			return ""
		}, "1 ids repeated"},
		{"unknown", func(s *[n][]string) string { return line("zz") + "\n" }, "1 ids not in the requests: zz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "results.jsonl")
			shards := complete()
			extra := tc.edit(&shards)
			for i, lines := range shards {
				text := strings.Join(lines, "\n")
				if text != "" {
					text += "\n"
				}
				if i == 0 {
					text += extra
				}
				if text == "" {
					continue // a shard with no requests writes no file
				}
				if err := os.WriteFile(shardPath(out, i, n), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, _, errOut := runCLI(t, "batch", "--in", in, "--out", out, "--merge", "--shards", fmt.Sprint(n))
			if tc.want != "" {
				if code == 0 || !strings.Contains(errOut, tc.want) {
					t.Errorf("exit %d, stderr %q; want an error containing %q", code, errOut, tc.want)
				}
				if _, err := os.Stat(out); err == nil {
					t.Error("a failed merge wrote the output")
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := 0; i < 9; i++ {
				want = append(want, line(fmt.Sprintf("r%d", i)))
			}
			if got := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"); !reflect.DeepEqual(got, want) {
				t.Errorf("merged:\n%s\nwant request order:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestShardsKilledAndMerged runs a batch as three shards, one through
// JOB_COMPLETION_INDEX, kills one shard with SIGKILL while it works and
// reruns it, then merges: the merge must equal the unsharded run id by id,
// in request order, with no id lost or repeated.
func TestShardsKilledAndMerged(t *testing.T) {
	pkg := testPackage(t)
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const n = 30
	in := writeRequests(t, n)
	dir := t.TempDir()
	run := func(env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"batch", "--model", pkg, "--in", in, "--batch-size", "2"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	want := filepath.Join(dir, "unsharded.jsonl")
	run(nil, "--out", want)

	out := filepath.Join(dir, "results.jsonl")
	run(nil, "--out", out, "--shard", "0/3")
	run([]string{completionIndexEnv + "=2"}, "--out", out, "--shards", "3")

	// Shard 1: killed once some results are on disk, then rerun.
	victim := shardPath(out, 1, 3)
	cmd := exec.Command(bin, "batch", "--model", pkg, "--in", in, "--batch-size", "2", "--out", out, "--shard", "1/3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(victim); err == nil && st.Size() > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	mine := 0
	for i := 0; i < n; i++ {
		if shardOf(fmt.Sprintf("r%d", i), 3) == 1 {
			mine++
		}
	}
	if partial := readResults(t, victim); len(partial) == mine {
		t.Log("shard 1 finished before it was killed; the resume path is still checked below")
	} else {
		// Until shard 1 is rerun, the merge names what is missing.
		o, err := exec.Command(bin, "batch", "--in", in, "--out", out, "--merge", "--shards", "3").CombinedOutput()
		if err == nil || !strings.Contains(string(o), fmt.Sprintf("%d ids missing", mine-len(partial))) {
			t.Errorf("merge of an unfinished shard: %v, %s", err, o)
		}
	}
	run(nil, "--out", out, "--shard", "1/3")
	run(nil, "--out", out, "--merge", "--shards", "3")

	a, b := readResults(t, want), readResults(t, out)
	if len(a) != n || len(b) != n {
		t.Fatalf("unsharded %d results, merged %d, want %d", len(a), len(b), n)
	}
	for id, r := range a {
		if !reflect.DeepEqual(r.TokenIDs, b[id].TokenIDs) || r.StopReason != b[id].StopReason {
			t.Errorf("%s: unsharded %v %s, merged %v %s", id, r.TokenIDs, r.StopReason, b[id].TokenIDs, b[id].StopReason)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if want := fmt.Sprintf(`{"id":"r%d",`, i); !strings.HasPrefix(l, want) {
			t.Errorf("merged line %d is %.30s…, want it to start %s", i+1, l, want)
		}
	}
}
