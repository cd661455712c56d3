package ortdev

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/strata-llm/strata/engine/ortlib"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// The pinned CUDA build (ONNX Runtime 1.29) is a complete ORT with the CPU
// provider: these tests load it next to the 1.30 library in the same
// process and check that ortdev negotiates its API, that it runs the graphs
// strata exports exactly as 1.30 does, and that loading the CUDA provider on
// a machine without CUDA fails with one line.

var (
	cudaOnce sync.Once
	cudaAPI  *API
	cudaErr  error
)

// openCUDABuild opens the pinned CUDA build, fetching it into the user cache
// the first time on a machine (about 330 MB; later runs find it cached).
func openCUDABuild(t *testing.T) *API {
	t.Helper()
	cudaOnce.Do(func() {
		var lib ortlib.Library
		if lib, cudaErr = ortlib.FetchCUDA(ortlib.Progress); cudaErr == nil {
			cudaAPI, cudaErr = Open(lib.Path)
		}
	})
	if errors.Is(cudaErr, ortlib.ErrNoPinnedBuild) {
		t.Skip(cudaErr) // strata pins a CUDA build for linux/amd64 only
	}
	if cudaErr != nil {
		t.Fatalf("the pinned CUDA build: %v", cudaErr)
	}
	return cudaAPI
}

func TestLibraryAPIVersion(t *testing.T) {
	tests := []struct {
		version string
		api     int
		known   bool
	}{
		{"1.29.0", 29, true}, {"1.30.0", 30, true}, {"1.23.2", 23, true}, {"1.31", 31, true},
		{"2.0.0", 0, false}, {"", 0, false}, {"1.x.0", 0, false}, {"1.0.0", 0, false},
	}
	for _, tc := range tests {
		api, known := libraryAPIVersion(tc.version)
		if api != tc.api || known != tc.known {
			t.Errorf("libraryAPIVersion(%q) = %d, %v; want %d, %v", tc.version, api, known, tc.api, tc.known)
		}
	}
}

func TestOpenNegotiatesAPIVersion(t *testing.T) {
	for _, a := range []*API{openAPI(t), openCUDABuild(t)} {
		served, _ := libraryAPIVersion(a.Version())
		if a.LibraryAPIVersion() != served || a.APIVersion() != min(APIVersion, served) || a.APIVersion() < MinAPIVersion {
			t.Errorf("%s: ORT %s serves API %d, ortdev uses %d (ortdev knows %d..%d)",
				a.Path(), a.Version(), a.LibraryAPIVersion(), a.APIVersion(), MinAPIVersion, APIVersion)
		}
	}
	if v := openCUDABuild(t).Version(); v != ortlib.CUDAVersion {
		t.Errorf("the pinned CUDA build reports ONNX Runtime %s, want %s", v, ortlib.CUDAVersion)
	}
}

// TestCUDABuildRunsOnCPU runs the tiny model through the 1.29 build's CPU
// provider with the same binding code as on 1.30.
func TestCUDABuildRunsOnCPU(t *testing.T) {
	a := openCUDABuild(t)
	env, err := a.NewEnv(LogWarning, "ortdev-cuda-build")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	sess, err := env.NewSession(writeTestModel(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	in := []float32{1, -2, 0.5, 3}
	hidden := hostFloats(t, a, in, 1, modelDim)
	state := hostFloats(t, a, []float32{1, 1, 1, 1}, 1, modelDim)
	out := hostFloats(t, a, make([]float32, modelDim), 1, modelDim)
	b, err := sess.NewIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, e := range []error{b.BindInput("hidden", hidden), b.BindInput("state", state),
		b.BindOutput("hidden_out", out), b.BindOutput("state_out", state)} {
		if e != nil {
			t.Fatal(e)
		}
	}
	if err := sess.RunWithBinding(b, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := out.Float32s()
	assertClose(t, "hidden_out on ORT "+a.Version(), got, refMatVec(in))
	st, _ := state.Float32s()
	assertClose(t, "state accumulated in place", st, []float32{2, -1, 1.5, 4})
}

// TestRegisterCUDAProvider registers the pinned build's CUDA provider
// library with the environment — the way that works with its core library,
// which is built without CUDA (the CUDA_V2 options entry point answers "not
// enabled in this build", checked too). Without the CUDA 13 libraries it
// fails with one line naming the missing one; with them the provider offers
// a device and a session opens on it.
func TestRegisterCUDAProvider(t *testing.T) {
	a := openCUDABuild(t)
	env, err := a.NewEnv(LogFatal, "ortdev-cuda-provider")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	names, err := env.ProviderDevices()
	if err != nil || !slices.Contains(names, "CPUExecutionProvider") {
		t.Fatalf("provider devices %v, %v; want CPUExecutionProvider among them", names, err)
	}
	opts, err := a.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Close()
	if err := opts.AppendCUDA(nil); err == nil || !strings.Contains(err.Error(), "not enabled in this build") {
		t.Errorf("CUDA_V2 append on the CPU-built core: %v", err)
	}
	if err := opts.AppendProvider(env, CUDAProviderName, nil); err == nil || !strings.Contains(err.Error(), "no CUDAExecutionProvider device") {
		t.Errorf("append before registering: %v", err)
	}

	var missing []string
	for _, d := range ortlib.FindCUDADependencies() {
		if !d.Found() {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) == 0 {
		// pip-installed CUDA libraries lie off the loader path.
		if err := ortlib.LoadCUDALibraries(); err != nil {
			t.Fatal(err)
		}
	}
	provider := filepath.Join(filepath.Dir(a.Path()), ortlib.CUDAProviderFile)
	err = env.RegisterProviderLibrary("CUDA", provider)
	if len(missing) > 0 {
		if err == nil {
			t.Fatalf("registering the CUDA provider succeeded although %v are missing", missing)
		}
		msg := err.Error()
		named := slices.ContainsFunc(missing, func(m string) bool { return strings.Contains(msg, m) })
		if strings.Contains(msg, "\n") || !named {
			t.Errorf("error %q: want one line naming one of %v", msg, missing)
		}
		t.Logf("without %v: %s", missing, msg)
		return
	}
	if err != nil {
		t.Fatalf("every CUDA library is present, but registering the CUDA provider failed: %v", err)
	}
	defer env.UnregisterProviderLibrary("CUDA")
	if err := opts.AppendProvider(env, CUDAProviderName, map[string]string{"device_id": "0"}); err != nil {
		t.Fatal(err)
	}
	sess, err := env.NewSession(writeTestModel(t), opts)
	if err != nil {
		t.Fatalf("session on the CUDA provider: %v", err)
	}
	sess.Close()
}

// compatConfig is a small GQA model: two KV heads shared by four query heads.
func compatConfig() llama.Config {
	return llama.Config{ModelType: "mistral", NumLayers: 2, HiddenSize: 64, NumHeads: 4, NumKVHeads: 2, HeadDim: 16,
		IntermediateSize: 64, VocabSize: 96, MaxPositionEmbeddings: 128, RopeTheta: 10000, RMSNormEps: 1e-5, BOSID: 1, EOSIDs: []int{2}}
}

const compatMaxSeq = 32

// graphRunner runs an exported graph set through ortdev in CPU memory: embed,
// every layer (KV bound as past and present) and head.
type graphRunner struct {
	t      *testing.T
	api    *API
	cfg    llama.Config
	embed  *Session
	head   *Session
	layers []*Session
	keys   []*Value
	values []*Value
}

func newGraphRunner(t *testing.T, a *API, dir string, cfg llama.Config) *graphRunner {
	t.Helper()
	env, err := a.NewEnv(LogWarning, "ortdev-compat")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	opts, err := a.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Close()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	open := func(file string) *Session {
		s, err := env.NewSession(filepath.Join(dir, file), opts)
		if err != nil {
			t.Fatalf("ORT %s: %v", a.Version(), err)
		}
		t.Cleanup(s.Close)
		return s
	}
	r := &graphRunner{t: t, api: a, cfg: cfg, embed: open(manifest.EmbedFile), head: open(manifest.HeadFile)}
	for i := 0; i < cfg.NumLayers; i++ {
		r.layers = append(r.layers, open(manifest.LayerFile(i)))
		r.keys = append(r.keys, r.host([]int64{1, int64(cfg.NumKVHeads), compatMaxSeq, int64(cfg.HeadDim)}, Float32))
		r.values = append(r.values, r.host([]int64{1, int64(cfg.NumKVHeads), compatMaxSeq, int64(cfg.HeadDim)}, Float32))
	}
	return r
}

func (r *graphRunner) host(shape []int64, et ElementType) *Value {
	v, err := r.api.NewHostTensor(shape, et)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(v.Close)
	return v
}

// run binds inputs and outputs by name and runs s.
func (r *graphRunner) run(s *Session, in, out map[string]*Value) {
	r.t.Helper()
	b, err := s.NewIoBinding()
	if err != nil {
		r.t.Fatal(err)
	}
	defer b.Close()
	for name, v := range in {
		if err := b.BindInput(name, v); err != nil {
			r.t.Fatal(err)
		}
	}
	for name, v := range out {
		if err := b.BindOutput(name, v); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := s.RunWithBinding(b, nil); err != nil {
		r.t.Fatalf("ORT %s: %v", r.api.Version(), err)
	}
}

// step feeds ids at positions pos.. through every layer and returns the
// logits of each new position.
func (r *graphRunner) step(ids []int, pos int) [][]float32 {
	s := int64(len(ids))
	idsT := r.host([]int64{1, s}, Int64)
	idv, _ := idsT.Int64s()
	for i, id := range ids {
		idv[i] = int64(id)
	}
	d := int64(r.cfg.HiddenSize)
	hidden := []*Value{r.host([]int64{1, s, d}, Float32), r.host([]int64{1, s, d}, Float32)}
	r.run(r.embed, map[string]*Value{manifest.InputIDs: idsT}, map[string]*Value{manifest.Hidden: hidden[0]})
	seqlens := r.host([]int64{1}, Int32)
	sv, _ := seqlens.Int32s()
	sv[0] = int32(pos + len(ids) - 1)
	total := r.host([]int64{}, Int32)
	tv, _ := total.Int32s()
	tv[0] = int32(pos + len(ids))
	for l, sess := range r.layers {
		r.run(sess, map[string]*Value{
			manifest.Hidden: hidden[l%2], manifest.PastKey: r.keys[l], manifest.PastValue: r.values[l],
			manifest.SeqLensK: seqlens, manifest.TotalSeqLen: total,
		}, map[string]*Value{
			manifest.HiddenOut: hidden[(l+1)%2], manifest.PresentKey: r.keys[l], manifest.PresentValue: r.values[l],
		})
	}
	v := r.cfg.VocabSize
	logits := r.host([]int64{1, s, int64(v)}, Float32)
	r.run(r.head, map[string]*Value{manifest.Hidden: hidden[len(r.layers)%2]}, map[string]*Value{manifest.Logits: logits})
	flat, _ := logits.Float32s()
	out := make([][]float32, len(ids))
	for i := range out {
		out[i] = append([]float32(nil), flat[i*v:(i+1)*v]...)
	}
	return out
}

// greedy prefills prompt and decodes n tokens greedily, returning the ids and
// the logits of every position.
func (r *graphRunner) greedy(prompt []int, n int) ([]int, [][]float32) {
	logits := r.step(prompt, 0)
	var ids []int
	for pos := len(prompt); len(ids) < n; pos++ {
		next := llama.Argmax(logits[len(logits)-1])
		ids = append(ids, next)
		logits = append(logits, r.step([]int{next}, pos)...)
	}
	return ids, logits
}

// TestExportedGraphsAcrossORTVersions runs the graphs strata exports
// (GroupQueryAttention with rotary inside, SimplifiedLayerNormalization,
// SkipSimplifiedLayerNormalization, MatMulNBits for int4; opset 17 and
// com.microsoft 1) on ONNX Runtime 1.30 and on the pinned CUDA build's 1.29,
// both on the CPU provider: greedy ids must be equal and logits agree to
// within float32 rounding of differently ordered sums; fp32 also matches the
// Go reference.
func TestExportedGraphsAcrossORTVersions(t *testing.T) {
	a130, a129 := openAPI(t), openCUDABuild(t)
	cfg := compatConfig()
	weights := llama.RandomWeights(cfg, 7)
	prompt := []int{1, 5, 9, 13, 7}
	const decode = 8
	for _, dtype := range []string{llama.DTypeFP32, llama.DTypeFP16, llama.DTypeInt4} {
		t.Run(dtype, func(t *testing.T) {
			dir := t.TempDir()
			opts := llama.GraphOptions{DType: dtype, MaxSeqLen: compatMaxSeq}
			if _, err := llama.WriteAll(dir, cfg, weights, opts, false); err != nil {
				t.Fatal(err)
			}
			ids130, logits130 := newGraphRunner(t, a130, dir, cfg).greedy(prompt, decode)
			ids129, logits129 := newGraphRunner(t, a129, dir, cfg).greedy(prompt, decode)
			if fmt.Sprint(ids130) != fmt.Sprint(ids129) {
				t.Errorf("greedy ids: ORT %s %v, ORT %s %v", a130.Version(), ids130, a129.Version(), ids129)
			}
			worst := 0.0
			for p := range logits130 {
				diff, scale := maxAbsDiff(logits129[p], logits130[p])
				worst = max(worst, diff/scale)
			}
			t.Logf("%s: greedy %v; largest logit difference %.2g of the logit scale", dtype, ids130, worst)
			if worst > 1e-4 {
				t.Errorf("logits of ORT %s and %s differ by %.3g of the logit scale, want ≤ 1e-4", a129.Version(), a130.Version(), worst)
			}
			if dtype != llama.DTypeFP32 {
				return
			}
			ref, err := llama.NewReference(cfg, weights)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.Forward(append(append([]int(nil), prompt...), ids129[:decode-1]...), nil)
			if err != nil {
				t.Fatal(err)
			}
			for p := range want {
				if diff, scale := maxAbsDiff(logits129[p], want[p]); diff > 1e-4*scale {
					t.Fatalf("position %d: ORT %s logits differ from the Go reference by %.3g (scale %.3g)", p, a129.Version(), diff, scale)
				}
			}
		})
	}
}

// maxAbsDiff returns max |a-b| and the largest |b| (at least 1e-6).
func maxAbsDiff(a, b []float32) (diff, scale float64) {
	scale = 1e-6
	for i := range b {
		diff = max(diff, math.Abs(float64(a[i]-b[i])))
		scale = max(scale, math.Abs(float64(b[i])))
	}
	return diff, scale
}
