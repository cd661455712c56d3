package engine

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// mixedRequests are requests of different prompt lengths and budgets.
func mixedRequests(n int, schedule string) []Request {
	var reqs []Request
	for i := range n {
		prompt := make([]int, 1+(i*5)%11)
		for j := range prompt {
			prompt[j] = (i*31 + j*7 + 1) % 101
		}
		reqs = append(reqs, Request{PromptIDs: prompt, MaxTokens: 2 + (i*7)%13, Schedule: schedule, IgnoreEOS: true})
	}
	return reqs
}

// TestContinuousMatchesAlone: continuous batching of a mixed workload gives
// every request exactly the ids it gets alone (and the reference's), refills
// rows as they free up, keeps them busier than static batches would, on host
// memory and with device discipline.
func TestContinuousMatchesAlone(t *testing.T) {
	dir, cfg, src := testPackage(t)
	for _, resident := range []bool{false, true} {
		for _, schedule := range []string{"uls:1", "uls:2"} {
			name := fmt.Sprintf("resident=%v/%s", resident, schedule)
			m, err := Load(dir, Options{MaxBatch: 3, DeviceResident: resident, PrefillChunk: 4})
			if err != nil {
				t.Fatal(err)
			}
			sched, err := m.ResolveSchedule(schedule, 0)
			if err != nil {
				t.Fatal(err)
			}
			reqs := mixedRequests(10, schedule)
			res, err := m.GenerateBatch(context.Background(), reqs, nil)
			if err != nil {
				t.Fatal(err)
			}
			var last *BatchingStats
			for i, r := range reqs {
				want := referenceGreedy(t, cfg, src, r.PromptIDs, sched.Layers, r.MaxTokens)
				if !reflect.DeepEqual(res[i].TokenIDs, want) {
					t.Errorf("%s: request %d: %v, alone %v", name, i, res[i].TokenIDs, want)
				}
				if b := res[i].Stats.Batching; b != nil && (last == nil || b.DecodeSteps > last.DecodeSteps) {
					last = b
				}
			}
			// Static batches of 3 in request order: each runs until its
			// longest request ends.
			busy, slots := 0, 0
			for start := 0; start < len(reqs); start += 3 {
				longest := 0
				for _, r := range reqs[start:min(start+3, len(reqs))] {
					busy += r.MaxTokens - 1
					longest = max(longest, r.MaxTokens-1)
				}
				slots += 3 * longest
			}
			static := float64(busy) / float64(slots)
			if last == nil || last.Refills != len(reqs) || last.Utilization <= static || last.BusyRows != busy {
				t.Errorf("%s: batching %+v, want %d refills, %d busy rows and utilisation above static's %.2f", name, last, len(reqs), busy, static)
			}
			m.Close()
		}
	}
}

// TestStream: requests sent over time complete as they finish, equal to
// their results alone; a cancelled stream closes its channel and leaves no
// goroutine behind.
func TestStream(t *testing.T) {
	dir, _, _ := testPackage(t)
	m, err := Load(dir, Options{MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	reqs := mixedRequests(7, "uls:2")
	reqs = append(reqs, Request{PromptIDs: []int{1, 500}}) // a bad request completes with its own error
	in := make(chan Request)
	out := m.Stream(context.Background(), in, nil)
	go func() {
		for _, r := range reqs {
			in <- r
			time.Sleep(time.Millisecond)
		}
		close(in)
	}()
	got := map[int]Completion{}
	for c := range out {
		got[c.Index] = c
	}
	if len(got) != len(reqs) {
		t.Fatalf("%d completions for %d requests", len(got), len(reqs))
	}
	for i, r := range reqs[:7] {
		alone, err := m.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if got[i].Err != nil || !reflect.DeepEqual(got[i].Result.TokenIDs, alone.TokenIDs) {
			t.Errorf("request %d: %v (%v), alone %v", i, got[i].Result.TokenIDs, got[i].Err, alone.TokenIDs)
		}
	}
	if got[7].Err == nil {
		t.Error("the bad request completed without error")
	}

	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	in = make(chan Request, len(reqs))
	for _, r := range reqs[:7] {
		in <- r
	}
	out = m.Stream(ctx, in, nil)
	<-out // one completion, then cancel with requests still queued
	cancel()
	for range out {
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the cancelled stream, %d before", n, before)
	}
}

// TestStaticBatchingMatches: the static batching kept for comparison gives
// the same ids as continuous batching.
func TestStaticBatchingMatches(t *testing.T) {
	dir, _, _ := testPackage(t)
	reqs := mixedRequests(7, "uls:2")
	var got [2][]Result
	for i, static := range []bool{false, true} {
		m, err := Load(dir, Options{MaxBatch: 3, StaticBatching: static})
		if err != nil {
			t.Fatal(err)
		}
		if got[i], err = m.GenerateBatch(context.Background(), reqs, nil); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	for i := range reqs {
		if !reflect.DeepEqual(got[0][i].TokenIDs, got[1][i].TokenIDs) || len(got[0][i].TokenIDs) != reqs[i].MaxTokens {
			t.Errorf("request %d: continuous %v, static %v", i, got[0][i].TokenIDs, got[1][i].TokenIDs)
		}
	}
}
