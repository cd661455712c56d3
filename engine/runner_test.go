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
	"github.com/strata-llm/strata/engine/ortlib"
	"github.com/strata-llm/strata/models/llama"
)

// testDeviceName is the device the resident tests run on: STRATA_TEST_DEVICE
// (cpu, webgpu or cuda), cpu when unset. On a GPU machine
// `STRATA_TEST_DEVICE=webgpu go test ./engine/ -run Resident` runs them there.
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

// logitTol bounds |Δlogit| against the plain-Go reference: ORT's CPU kernels
// agree to float32 rounding; GPU kernels round differently.
func logitTol(t testing.TB) float64 {
	if testDeviceName(t) == "cpu" {
		return 1e-4
	}
	return 2e-3
}

// loadResident loads the test package with device memory discipline (ORT's
// allocator, ids copied in and logits copied out) on testDeviceName's device.
func loadResident(t *testing.T, opts Options) *Model {
	t.Helper()
	dir, _, _ := testPackage(t)
	opts.DeviceResident = true
	opts.Device = testDeviceName(t)
	m, err := Load(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if m.g.onHost() {
		t.Fatal("DeviceResident did not select device memory")
	}
	return m
}

// TestResidentGreedyMatchesReference: on host memory and with device memory
// discipline the runner produces the reference's greedy ids, for full depth
// and uls:2, one row at a time and as a ragged batch of 4, with prompts
// prefilled whole and in chunks of 2 and 3 tokens.
func TestResidentGreedyMatchesReference(t *testing.T) {
	_, cfg, src := testPackage(t)
	const newTokens = 8
	dir, _, _ := testPackage(t)
	for _, chunk := range []int{0, 2, 3} {
		m := loadResident(t, Options{MaxBatch: 4, PrefillChunk: chunk})
		host, err := Load(dir, Options{MaxBatch: 4, PrefillChunk: chunk})
		if err != nil {
			t.Fatal(err)
		}
		defer host.Close()
		for _, m := range []*Model{m, host} {
			for _, spec := range []string{"uls:1", "uls:2"} {
				sched, err := m.ResolveSchedule(spec, 0)
				if err != nil {
					t.Fatal(err)
				}
				var reqs []Request
				for _, p := range testPrompts() {
					reqs = append(reqs, Request{PromptIDs: p, MaxTokens: newTokens, Schedule: spec})
				}
				res, err := m.GenerateBatch(context.Background(), reqs, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, r := range reqs {
					want := referenceGreedy(t, cfg, src, r.PromptIDs, sched.Layers, newTokens)
					if !reflect.DeepEqual(res[i].TokenIDs, want) {
						t.Errorf("chunk %d %s batch 4 row %d: got %v, reference %v", chunk, spec, i, res[i].TokenIDs, want)
					}
					one, err := m.Generate(context.Background(), r)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(one.TokenIDs, want) {
						t.Errorf("chunk %d %s batch 1 prompt %d: got %v, reference %v", chunk, spec, i, one.TokenIDs, want)
					}
				}
				if kv := res[0].Stats.KVBytes; kv != m.KVBytes(4, sched) {
					t.Errorf("%s: reported %d KV bytes, KVBytes says %d", spec, kv, m.KVBytes(4, sched))
				}
			}
		}
	}
}

// TestMultiTokenStepsMatchReference: steps of several tokens on top of an
// existing cache (what chunked prefill and speculative verification run)
// give the reference's logits at every position, on host memory and with
// device discipline, for one row and for rows at different positions.
func TestMultiTokenStepsMatchReference(t *testing.T) {
	dir, cfg, src := testPackage(t)
	tokens := []int{1, 5, 9, 33, 2, 7, 80, 11, 4, 60, 3, 99, 17}
	for _, resident := range []bool{false, true} {
		m, err := Load(dir, Options{DeviceResident: resident})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		for _, sizes := range [][]int{{13}, {1, 1, 1, 10}, {4, 3, 1, 5}, {2, 6, 5}} {
			ref, err := llama.NewReference(cfg, src)
			if err != nil {
				t.Fatal(err)
			}
			f, err := m.NewForward()
			if err != nil {
				t.Fatal(err)
			}
			at := 0
			for _, n := range sizes {
				got, err := f.Step(tokens[at : at+n])
				if err != nil {
					t.Fatal(err)
				}
				want, err := ref.Forward(tokens[at:at+n], nil)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if d := maxAbsDiff(got[i], want[i]); d > logitTol(t) {
						t.Errorf("resident %v sizes %v: position %d: max |Δlogit| %g", resident, sizes, at+i, d)
					}
				}
				at += n
			}
			f.Close()
		}

		// Two rows at different positions step 3 tokens each, twice.
		r, err := m.runnerFor(2, m.allLayers())
		if err != nil {
			t.Fatal(err)
		}
		prompts := [][]int{tokens[:5], tokens[:2]}
		if _, err := r.prefill(prompts, m.allLayers(), DefaultPrefillChunk); err != nil {
			t.Fatal(err)
		}
		refs := make([]*llama.Reference, 2)
		for b := range refs {
			if refs[b], err = llama.NewReference(cfg, src); err != nil {
				t.Fatal(err)
			}
			if _, err := refs[b].Forward(prompts[b], nil); err != nil {
				t.Fatal(err)
			}
		}
		pos := []int{5, 2}
		for step := 0; step < 2; step++ {
			p := part{S: 3, ids: make([]int, 6), pos: append([]int(nil), pos...)}
			next := [][]int{tokens[6+3*step : 9+3*step], tokens[1+3*step : 4+3*step]}
			copy(p.ids, next[0])
			copy(p.ids[3:], next[1])
			logits, err := r.step([]part{p}, m.allLayers(), true)
			if err != nil {
				t.Fatal(err)
			}
			for b := range refs {
				want, err := refs[b].Forward(next[b], nil)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if d := maxAbsDiff(logits.at(b, i), want[i]); d > logitTol(t) {
						t.Errorf("resident %v row %d step %d token %d: max |Δlogit| %g", resident, b, step, i, d)
					}
				}
				pos[b] += 3
			}
		}
		r.close()
		r.close() // idempotent
	}
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	worst := 0.0
	for i := range a {
		d := math.Abs(float64(a[i] - b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = max(worst, d)
	}
	return worst
}

// TestResidentCopiesPerStep: after prefill, a decode step moves exactly the
// token ids to the device and the logits back — one CopyTensors call each,
// B·8 and B·V·4 bytes — and nothing else, whatever the number of layers.
// On host memory nothing is copied at all.
func TestResidentCopiesPerStep(t *testing.T) {
	m := loadResident(t, Options{})
	man := m.Manifest
	prompts := testPrompts()
	B := len(prompts)
	for _, kept := range [][]int{{0, 1, 2, 3, 4, 5}, {0, 5}} {
		r, err := m.runnerFor(B, kept)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.prefill(prompts, m.allLayers(), DefaultPrefillChunk); err != nil {
			t.Fatal(err)
		}
		// Prefill: the prefix ids and the last ids in, logits out.
		if r.copies.toDevice != 2 || r.copies.toHost != 1 {
			t.Errorf("kept %v: prefill made %+v", kept, r.copies)
		}
		p := part{S: 1, ids: make([]int, B), pos: make([]int, B)}
		for step := 0; step < 4; step++ {
			for b, prompt := range prompts {
				p.ids[b], p.pos[b] = 7+step, len(prompt)+step
			}
			before := r.copies
			if _, err := r.step([]part{p}, kept, true); err != nil {
				t.Fatal(err)
			}
			want := transfers{
				toDevice: before.toDevice + 1, toDeviceBytes: before.toDeviceBytes + int64(B*8),
				toHost: before.toHost + 1, toHostBytes: before.toHostBytes + int64(B*man.VocabSize*4),
			}
			if r.copies != want {
				t.Errorf("kept %v step %d: copies %+v, want %+v", kept, step, r.copies, want)
			}
		}
		r.close()
	}
	dir, _, _ := testPackage(t)
	host, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	r, err := host.runnerFor(B, []int{0, 5})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if _, err := r.prefill(prompts, host.allLayers(), DefaultPrefillChunk); err != nil {
		t.Fatal(err)
	}
	if r.copies != (transfers{}) {
		t.Errorf("host memory: copies %+v, want none", r.copies)
	}
}

// TestRunnerErrors: bad steps are errors, not panics.
func TestRunnerErrors(t *testing.T) {
	m := loadResident(t, Options{})
	if _, err := m.runnerFor(0, []int{0}); err == nil {
		t.Error("batch 0 accepted")
	}
	// A batch too large to describe fails in allocation: its cleanup must
	// not panic.
	if _, err := newRunner(m.g, 1<<55, make([]bool, m.Manifest.NumLayers)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("batch 2^55: %v", err)
	}
	r, err := m.runnerFor(2, []int{0, 5})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if _, err := r.prefill([][]int{{1, 2}}, m.allLayers(), 4); err == nil {
		t.Error("one prompt for two rows accepted")
	}
	if _, err := r.prefill([][]int{{1, 2}, {}}, m.allLayers(), 4); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty prompt: %v", err)
	}
	for _, tc := range []struct {
		p    part
		want string
	}{
		{part{S: 1, ids: []int{1}, pos: []int{3, 3}}, "2 rows"},
		{part{S: 1, ids: []int{1, 1}, pos: []int{3, testMaxSeq}}, "outside the KV cache"},
		{part{S: 2, ids: []int{1, 1, 1, 1}, pos: []int{3, testMaxSeq - 1}}, "outside the KV cache"},
		{part{S: 1, ids: []int{1, 1}, pos: []int{-1, 1}}, "outside the KV cache"},
	} {
		if _, err := r.step([]part{tc.p}, []int{0, 5}, true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("step %+v: %v, want %q", tc.p, err, tc.want)
		}
	}
	if _, err := r.step([]part{{S: 1, ids: []int{1, 1}, pos: []int{1, 1}}}, nil, true); !errors.Is(err, errNoLayers) {
		t.Errorf("no layers: %v", err)
	}
	f, err := m.NewForward()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Step([]int{1, 101}); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("token 101: %v", err)
	}
	if _, err := f.Step(make([]int, testMaxSeq+1)); err == nil || !strings.Contains(err.Error(), "max_seq_len") {
		t.Errorf("too many tokens: %v", err)
	}
}

// TestDeviceUnavailable: without a GPU adapter or the CUDA libraries, both
// devices fail at Load with one line: naming the device and carrying ORT's
// error, or naming the CUDA libraries to install.
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
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: error is not one line: %q", dev, msg)
		}
		var missing *ortlib.MissingCUDAError
		if dev == "cuda" && errors.As(err, &missing) {
			// Without the CUDA libraries Load stops before fetching or
			// loading the CUDA build, naming what to install.
			if !strings.Contains(msg, "libcudart.so.13") {
				t.Errorf("cuda: %q does not name the missing library", msg)
			}
		} else {
			var de *DeviceError
			var oe *ortdev.Error
			if !strings.Contains(msg, "device "+dev+": ") || !errors.As(err, &de) || !errors.As(err, &oe) {
				t.Errorf("%s: error does not name the device or carry the ORT error: %v", dev, err)
			}
		}
		t.Logf("%s: %s", dev, msg)
	}
}

// TestResidentConcurrentGenerate: concurrent calls share the sessions and
// allocator but own their runners.
func TestResidentConcurrentGenerate(t *testing.T) {
	_, cfg, src := testPackage(t)
	m := loadResident(t, Options{})
	sched, err := m.ResolveSchedule("uls:2", 0)
	if err != nil {
		t.Fatal(err)
	}
	prompts := testPrompts()
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
	for i, p := range prompts {
		want := referenceGreedy(t, cfg, src, p, sched.Layers, 6)
		if errs[i] != nil {
			t.Errorf("prompt %d: %v", i, errs[i])
		} else if !reflect.DeepEqual(got[i], want) {
			t.Errorf("prompt %d: got %v, reference %v", i, got[i], want)
		}
	}
}
