package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBatchInterrupted stops `strata batch` with SIGINT or SIGTERM at random
// moments, plain and lossless, and checks every time that it exits with
// status 130 and one line saying what is done and what is left, and that
// the same command run again completes the job with every request exactly
// once and the same tokens as an uninterrupted run.
func TestBatchInterrupted(t *testing.T) {
	pkg := testPackage(t)
	bin := strataBinary(t)
	const n = 12
	in := writeRequests(t, n)
	dir := t.TempDir()
	args := func(out string, lossless bool) []string {
		a := []string{"batch", "--model", pkg, "--in", in, "--out", out, "--batch-size", "2"}
		if lossless {
			a = append(a, "--lossless", "--draft", "2")
		}
		return a
	}
	want := map[bool]map[string]resultLine{}
	for _, lossless := range []bool{false, true} {
		out := filepath.Join(dir, fmt.Sprintf("want-%v.jsonl", lossless))
		if code, stderr := runBinary(t, nil, args(out, lossless)...); code != 0 {
			t.Fatalf("uninterrupted run: exit %d, %s", code, stderr)
		}
		want[lossless] = readResults(t, out)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const tries = 20
	stopped := 0
	for i := range tries {
		sig := []os.Signal{os.Interrupt, syscall.SIGTERM}[i%2]
		lossless := i%4 >= 2
		delay := time.Duration(rng.IntN(300)) * time.Millisecond
		out := filepath.Join(dir, fmt.Sprintf("try-%d.jsonl", i))
		name := fmt.Sprintf("try %d (%v, lossless %v, after %v)", i, sig, lossless, delay)

		cmd := exec.Command(bin, args(out, lossless)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// --out exists once the job has started (signals are caught by then).
		for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(time.Millisecond) {
			if _, err := os.Stat(out); err == nil {
				break
			}
		}
		time.Sleep(delay)
		sigErr := cmd.Process.Signal(sig)
		waitErr := cmd.Wait()
		text := stderr.String()
		code := 0
		var exit *exec.ExitError
		if errors.As(waitErr, &exit) {
			code = exit.ExitCode()
		} else if waitErr != nil {
			t.Fatal(waitErr)
		}
		lines := strings.Split(strings.TrimSpace(text), "\n")
		last := lines[len(lines)-1]
		switch {
		case code == 0 && (sigErr != nil || strings.HasPrefix(last, fmt.Sprintf("strata: %d/%d requests done", n, n))):
			// It finished before the signal came (or while it was exiting).
		case code != 130:
			t.Errorf("%s: exit %d, want 130; stderr:\n%s", name, code, text)
		case !strings.HasPrefix(last, "strata: interrupted") || !strings.Contains(last, "requests have a line in "+out) ||
			!(strings.Contains(last, "are left") || strings.Contains(last, "none is left")):
			t.Errorf("%s: last line %q does not say what is done and what is left", name, last)
		default:
			stopped++
		}
		if code == 130 && strings.Contains(text, "requests done") {
			t.Errorf("%s: an interrupted run printed a summary of a finished one:\n%s", name, text)
		}
		if strings.Contains(text, "goroutine ") || strings.Contains(text, "panic") {
			t.Errorf("%s: trace on stderr:\n%s", name, text)
		}
		if code, stderr := runBinary(t, nil, args(out, lossless)...); code != 0 {
			t.Fatalf("%s: rerun: exit %d, %s", name, code, stderr)
		}
		got := readResults(t, out) // fails on an id written twice
		if len(got) != n {
			t.Errorf("%s: rerun left %d results, want %d", name, len(got), n)
		}
		for id, w := range want[lossless] {
			if g := got[id]; !reflect.DeepEqual(g.TokenIDs, w.TokenIDs) || g.Error != "" {
				t.Errorf("%s: %s: %+v after the rerun, want tokens %v", name, id, g, w.TokenIDs)
			}
		}
	}
	t.Logf("%d of %d runs were stopped by the signal", stopped, tries)
	if stopped < tries/2 {
		t.Errorf("only %d of %d runs were still working when the signal came: the test no longer tests interruption", stopped, tries)
	}
}
