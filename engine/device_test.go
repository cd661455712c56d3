package engine

import (
	"context"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/strata-llm/strata/engine/ortdev"
)

// testDeviceName is the device the device-resident tests run on:
// STRATA_TEST_DEVICE (cpu, webgpu or cuda), cpu when unset. On a GPU machine
// `STRATA_TEST_DEVICE=webgpu go test ./engine/ -run Device` runs them there.
func testDeviceName(t testing.TB) string {
	t.Helper()
	s := os.Getenv("STRATA_TEST_DEVICE")
	if s == "" {
		return "cpu"
	}
	if _, err := ortdev.ParseDevice(s); err != nil {
		t.Fatalf("STRATA_TEST_DEVICE: %v", err)
	}
	return s
}

// logitTol is the largest |Δlogit| allowed between the host path and the
// device path: both run ORT's CPU kernels on cpu; GPU kernels round
// differently.
func logitTol(t testing.TB) float64 {
	if testDeviceName(t) == "cpu" {
		return 1e-4
	}
	return 2e-3
}

// loadDevice loads the test package on the device-resident path, on
// testDeviceName's device (CPU memory by default).
func loadDevice(t *testing.T, opts Options) *Model {
	t.Helper()
	dir, _, _ := testPackage(t)
	opts.DeviceResident = true
	opts.Device = testDeviceName(t)
	m, err := Load(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if m.dev == nil || m.embed != nil {
		t.Fatal("DeviceResident did not select the device-resident path")
	}
	return m
}

// TestDeviceGreedyMatchesHost: the device-resident executor produces the
// host executor's greedy ids, which are the reference's, for full depth and
// uls:2, one row at a time and as a ragged batch of 4.
func TestDeviceGreedyMatchesHost(t *testing.T) {
	dir, cfg, src := testPackage(t)
	host, err := Load(dir, Options{MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	dev := loadDevice(t, Options{MaxBatch: 4})
	const newTokens = 10
	for _, spec := range []string{"uls:1", "uls:2"} {
		sched, err := dev.ResolveSchedule(spec, 0)
		if err != nil {
			t.Fatal(err)
		}
		var reqs []Request
		for _, p := range testPrompts() {
			reqs = append(reqs, Request{PromptIDs: p, MaxTokens: newTokens, Schedule: spec})
		}
		t.Run(spec+"/batch1", func(t *testing.T) {
			for i, r := range reqs {
				want := referenceGreedy(t, cfg, src, r.PromptIDs, sched.Layers, newTokens)
				hr, err := host.Generate(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				dr, err := dev.Generate(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(dr.TokenIDs, want) || !reflect.DeepEqual(hr.TokenIDs, want) {
					t.Errorf("prompt %d: device %v, host %v, reference %v", i, dr.TokenIDs, hr.TokenIDs, want)
				}
				if !reflect.DeepEqual(dr.KeptLayers, sched.Layers) || dr.StopReason != StopMaxTokens {
					t.Errorf("prompt %d: kept %v stop %q", i, dr.KeptLayers, dr.StopReason)
				}
				// One row: the device path holds the host path's KV memory.
				if dr.Stats.KVBytes != hr.Stats.KVBytes || dr.Stats.KVBytes != dev.KVBytes(1, sched) {
					t.Errorf("prompt %d: device KV %d bytes, host %d, KVBytes %d", i, dr.Stats.KVBytes, hr.Stats.KVBytes, dev.KVBytes(1, sched))
				}
			}
		})
		t.Run(spec+"/batch4", func(t *testing.T) {
			hr, err := host.GenerateBatch(context.Background(), reqs, nil)
			if err != nil {
				t.Fatal(err)
			}
			dr, err := dev.GenerateBatch(context.Background(), reqs, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range reqs {
				want := referenceGreedy(t, cfg, src, reqs[i].PromptIDs, sched.Layers, newTokens)
				if !reflect.DeepEqual(dr[i].TokenIDs, want) || !reflect.DeepEqual(hr[i].TokenIDs, want) {
					t.Errorf("row %d: device %v, host %v, reference %v", i, dr[i].TokenIDs, hr[i].TokenIDs, want)
				}
				if dr[i].Stats.BatchSize != 4 {
					t.Errorf("row %d decoded in a batch of %d", i, dr[i].Stats.BatchSize)
				}
			}
			// The kept layers' KV equals the host path's; skipping layers
			// adds a scratch pair for all 4 rows (they prefill together)
			// where the host path keeps one row.
			man := dev.Manifest
			pair := int64(2 * 4 * man.NumKVHeads * man.MaxSeqLen * man.HeadDim)
			want := hr[0].Stats.KVBytes
			if len(sched.Layers) < cfg.NumLayers {
				want += 3 * pair
			}
			if dr[0].Stats.KVBytes != want || dr[0].Stats.KVBytes != dev.KVBytes(4, sched) {
				t.Errorf("device KV %d bytes, want %d (host %d, KVBytes %d)", dr[0].Stats.KVBytes, want, hr[0].Stats.KVBytes, dev.KVBytes(4, sched))
			}
		})
	}
}

// TestDeviceLogitsMatchHost drives both executors step by step over a
// ragged batch (prompts of 1 to 11 tokens) and compares every row of logits.
func TestDeviceLogitsMatchHost(t *testing.T) {
	dir, _, _ := testPackage(t)
	host, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	dev := loadDevice(t, Options{})
	for _, tc := range []struct {
		prompts [][]int
		kept    []int
	}{
		{append(testPrompts(), []int{9}), []int{0, 1, 2, 3, 4, 5}},
		{append(testPrompts(), []int{9}), []int{0, 3, 5}},
		// Every prompt one token long: prefill is the decode-shaped step alone.
		{[][]int{{9}, {4}}, []int{0, 3, 5}},
	} {
		prompts, kept := tc.prompts, tc.kept
		hx, err := host.newExecutor(len(prompts), kept)
		if err != nil {
			t.Fatal(err)
		}
		dx, err := dev.newExecutor(len(prompts), kept)
		if err != nil {
			t.Fatal(err)
		}
		for b, p := range prompts {
			if err := hx.prefill(b, p); err != nil {
				t.Fatal(err)
			}
			if err := dx.prefill(b, p); err != nil {
				t.Fatal(err)
			}
		}
		hl, err := hx.logits()
		if err != nil {
			t.Fatal(err)
		}
		dl, err := dx.logits()
		if err != nil {
			t.Fatal(err)
		}
		compareLogits(t, kept, -1, hl, dl)
		ids := make([]int, len(prompts))
		pos := make([]int, len(prompts))
		for step := 0; step < 6; step++ {
			for b, p := range prompts {
				ids[b], _ = argmax(hl[b])
				pos[b] = len(p) + step
			}
			if hl, err = hx.decode(ids, pos); err != nil {
				t.Fatal(err)
			}
			if dl, err = dx.decode(ids, pos); err != nil {
				t.Fatal(err)
			}
			compareLogits(t, kept, step, hl, dl)
		}
		hx.close()
		dx.close()
		dx.close() // idempotent
	}
}

func compareLogits(t *testing.T, kept []int, step int, host, dev [][]float32) {
	t.Helper()
	if len(host) != len(dev) {
		t.Fatalf("kept %v step %d: %d host rows, %d device rows", kept, step, len(host), len(dev))
	}
	for b := range host {
		worst := 0.0
		for i := range host[b] {
			worst = max(worst, math.Abs(float64(host[b][i]-dev[b][i])))
		}
		if worst > logitTol(t) || len(host[b]) != len(dev[b]) {
			t.Errorf("kept %v step %d row %d: max |Δlogit| %g", kept, step, b, worst)
		}
	}
}

// TestDeviceCopiesPerStep: after prefill, a decode step moves exactly the
// token ids to the device and the logits back — one CopyTensors call each,
// B·8 and B·V·4 bytes — and nothing else, whatever the number of layers.
func TestDeviceCopiesPerStep(t *testing.T) {
	m := loadDevice(t, Options{})
	man := m.Manifest
	prompts := testPrompts()
	B := len(prompts)
	for _, kept := range [][]int{{0, 1, 2, 3, 4, 5}, {0, 5}} {
		x, err := m.newExecutor(B, kept)
		if err != nil {
			t.Fatal(err)
		}
		ex := x.(*deviceExecutor)
		for b, p := range prompts {
			if err := ex.prefill(b, p); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ex.logits(); err != nil {
			t.Fatal(err)
		}
		// Prefill: prefix ids and last ids in, logits out.
		if ex.copies.toDevice != 2 || ex.copies.toHost != 1 {
			t.Errorf("kept %v: prefill made %+v", kept, ex.copies)
		}
		ids, pos := make([]int, B), make([]int, B)
		for step := 0; step < 4; step++ {
			for b, p := range prompts {
				ids[b], pos[b] = 7+step, len(p)+step
			}
			before := ex.copies
			if _, err := ex.decode(ids, pos); err != nil {
				t.Fatal(err)
			}
			got := ex.copies
			want := transfers{
				toDevice: before.toDevice + 1, toDeviceBytes: before.toDeviceBytes + int64(B*8),
				toHost: before.toHost + 1, toHostBytes: before.toHostBytes + int64(B*man.VocabSize*4),
			}
			if got != want {
				t.Errorf("kept %v step %d: copies %+v, want %+v", kept, step, got, want)
			}
		}
		ex.close()
	}
}

// TestDeviceExecutorErrors: bad input to the executor is an error, not a
// panic, and prefill happens once per batch.
func TestDeviceExecutorErrors(t *testing.T) {
	m := loadDevice(t, Options{})
	if _, err := m.dev.newExecutor(0, []int{0}); err == nil {
		t.Error("batch 0 accepted")
	}
	if _, err := m.dev.newExecutor(1, []int{0, 6}); err == nil {
		t.Error("layer 6 of 6 accepted")
	}
	if _, err := m.dev.newExecutor(1, nil); err == nil {
		t.Error("no kept layers accepted")
	}
	// A batch too large to describe fails in allocation, after the
	// executor started: its cleanup must not panic.
	if _, err := m.dev.newExecutor(1<<55, []int{0, 5}); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("batch 2^55: %v", err)
	}
	ex, err := m.dev.newExecutor(2, []int{0, 5})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.close()
	for _, tc := range []struct {
		row    int
		prompt []int
		want   string
	}{
		{2, []int{1}, "row 2"},
		{-1, []int{1}, "row -1"},
		{0, nil, "empty"},
		{0, []int{1, 101}, "outside the vocabulary"},
		{0, make([]int, testMaxSeq), "max_seq_len"},
	} {
		if err := ex.prefill(tc.row, tc.prompt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("prefill(%d, %v): %v, want %q", tc.row, tc.prompt, err, tc.want)
		}
	}
	if _, err := ex.decode([]int{1, 1}, []int{1, 1}); err == nil {
		t.Error("decode before prefill accepted")
	}
	if err := ex.prefill(0, []int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.logits(); err == nil || !strings.Contains(err.Error(), "row 1") {
		t.Errorf("logits with row 1 missing: %v", err)
	}
	if err := ex.prefill(1, []int{4}); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.logits(); err != nil {
		t.Fatal(err)
	}
	if err := ex.prefill(0, []int{1}); err == nil {
		t.Error("prefill after the batch ran accepted")
	}
	for _, tc := range []struct {
		ids, pos []int
		want     string
	}{
		{[]int{1}, []int{3}, "batch of 2"},
		{[]int{1, 101}, []int{3, 1}, "outside the vocabulary"},
		{[]int{1, 1}, []int{3, testMaxSeq}, "position"},
		{[]int{1, 1}, []int{-1, 1}, "position"},
	} {
		if _, err := ex.decode(tc.ids, tc.pos); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decode(%v, %v): %v, want %q", tc.ids, tc.pos, err, tc.want)
		}
	}
}

// TestDeviceUnavailable: this machine has no GPU adapter and the ORT library
// has no CUDA provider, so both devices fail at Load with one line naming
// the device.
func TestDeviceUnavailable(t *testing.T) {
	dir, _, _ := testPackage(t)
	for _, dev := range []string{"webgpu", "cuda"} {
		m, err := Load(dir, Options{Device: dev})
		if err == nil {
			m.Close()
			t.Logf("%s is available on this machine", dev)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "device "+dev+": ") || strings.Contains(msg, "\n") {
			t.Errorf("%s: error is not one line naming the device: %q", dev, msg)
		}
		var de *deviceError
		var oe *ortdev.Error
		if !errors.As(err, &de) || !errors.As(err, &oe) {
			t.Errorf("%s: error does not carry the ORT error: %v", dev, err)
		}
		t.Logf("%s: %s", dev, msg)
	}
}

// TestDeviceConcurrentGenerate: concurrent calls on the device path share
// the sessions and allocator but own their executors.
func TestDeviceConcurrentGenerate(t *testing.T) {
	_, cfg, src := testPackage(t)
	m := loadDevice(t, Options{})
	sched, err := m.ResolveSchedule("uls:2", 0)
	if err != nil {
		t.Fatal(err)
	}
	prompts := testPrompts()
	want := make([][]int, len(prompts))
	for i, p := range prompts {
		want[i] = referenceGreedy(t, cfg, src, p, sched.Layers, 6)
	}
	got := make([][]int, len(prompts))
	errs := make([]error, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := m.Generate(context.Background(), Request{PromptIDs: p, MaxTokens: 6, Schedule: "uls:2"})
			got[i], errs[i] = res.TokenIDs, err
		}()
	}
	wg.Wait()
	for i := range prompts {
		if errs[i] != nil {
			t.Errorf("prompt %d: %v", i, errs[i])
		} else if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("prompt %d: got %v, reference %v", i, got[i], want[i])
		}
	}
}
