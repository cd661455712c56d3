package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"
)

// residentBytes returns the process's resident set size from /proc/self/statm.
func residentBytes(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatalf("read RSS: %v", err)
	}
	fields := bytes.Fields(data)
	if len(fields) < 2 {
		t.Fatalf("/proc/self/statm: unexpected content %q", data)
	}
	pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil {
		t.Fatalf("/proc/self/statm: %v", err)
	}
	return pages * int64(os.Getpagesize())
}

// settledRSS returns the RSS after the Go heap is collected and returned to the OS.
func settledRSS(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	return residentBytes(t)
}

// TestLoadCloseDoesNotLeak loads, uses and closes the test package many
// times and checks the resident memory stops growing after a warm-up. A
// leaked session (one per graph) or KV buffer per cycle would add far more
// than the bound over the measured cycles.
func TestLoadCloseDoesNotLeak(t *testing.T) {
	if _, err := os.Stat("/proc/self/statm"); err != nil {
		t.Fatalf("this test reads the RSS from /proc (Linux): %v", err)
	}
	dir, _, _ := testPackage(t)
	cycle := func() {
		m, err := Load(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Generate(context.Background(), Request{PromptIDs: []int{1, 2, 3}, MaxTokens: 3, Speedup: 2}); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	const warmup, cycles = 20, 100
	for i := 0; i < warmup; i++ {
		cycle()
	}
	before := settledRSS(t)
	for i := 0; i < cycles; i++ {
		cycle()
	}
	after := settledRSS(t)
	// One leaked copy of the package's sessions is several MiB; 100 of them
	// would be hundreds. Allow allocator noise only.
	const bound = 32 << 20
	growth := after - before
	t.Logf("RSS %d MiB before, %d MiB after %d load/generate/close cycles (growth %+d KiB)", before>>20, after>>20, cycles, growth>>10)
	if growth > bound {
		t.Errorf("RSS grew by %d MiB over %d load/close cycles (bound %d MiB)", growth>>20, cycles, bound>>20)
	}
}

// waitGoroutines waits up to a few seconds for the goroutine count to fall
// back to at most want, and returns the last count.
func waitGoroutines(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCancelEndsGoroutines cancels GenerateBatch in several ways and checks
// that every call returns the context's error and that no goroutine
// outlives it.
func TestCancelEndsGoroutines(t *testing.T) {
	dir, _, _ := testPackage(t)
	m, err := Load(dir, Options{MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	reqs := func() []Request {
		var out []Request
		for _, p := range testPrompts() {
			out = append(out, Request{PromptIDs: p, MaxTokens: 30, Speedup: 2})
		}
		return out
	}
	// Warm up once so that lazily started runtime goroutines exist before the baseline.
	if _, err := m.GenerateBatch(context.Background(), reqs()[:1], nil); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		run  func() error
	}{
		{"cancelled before the call", func() error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := m.GenerateBatch(ctx, reqs(), nil)
			return err
		}},
		{"cancelled from a token callback", func() error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n := 0
			_, err := m.GenerateBatch(ctx, reqs(), func(Token) error {
				if n++; n == 5 {
					cancel()
				}
				return nil
			})
			return err
		}},
		{"cancelled from another goroutine", func() error {
			ctx, cancel := context.WithCancel(context.Background())
			started := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				<-started
				cancel()
			}()
			first := true
			_, err := m.GenerateBatch(ctx, reqs(), func(Token) error {
				if first {
					first = false
					close(started)
					<-done // the cancel has happened before decoding goes on
				}
				return nil
			})
			return err
		}},
		{"deadline passes", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
			defer cancel()
			time.Sleep(time.Millisecond)
			_, err := m.GenerateBatch(ctx, reqs(), nil)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			err := tc.run()
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error = %v, want the context's error", err)
			}
			if n := waitGoroutines(base); n > base {
				buf := make([]byte, 1<<16)
				t.Errorf("%d goroutines after the call, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
			}
		})
	}
	// The model still works after cancelled calls.
	res, err := m.Generate(context.Background(), Request{PromptIDs: []int{1, 2}, MaxTokens: 4})
	if err != nil || len(res.TokenIDs) != 4 {
		t.Errorf("generate after cancels: %v, %v", res.TokenIDs, err)
	}
}
