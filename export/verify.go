package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort"
	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// Default verification tolerances (DESIGN.md §6).
const (
	// DefaultTolFP32 bounds max |Δlogit| of an fp32 package.
	DefaultTolFP32 = 1e-4
	// DefaultTolFP16 bounds max |Δlogit| / max |logit| of an fp16 package.
	DefaultTolFP16 = 2e-2
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Checkpoint holds the reference weights: an HF directory, a llama2.c
	// .bin or a reference.safetensors; "" uses the package's reference file.
	Checkpoint string
	// PromptIDs is the prompt; nil picks a fixed prompt spread over the vocabulary.
	PromptIDs []int
	// Steps is the number of decode steps after the prefill (default 8; -1: none).
	Steps int
	// Tol overrides the dtype's tolerance (fp32: absolute, fp16 and int4:
	// relative to the largest reference logit); 0 keeps the default, under
	// which int4 is only reported.
	Tol float64
	// Device and Threads select the ORT execution provider.
	Device  string
	Threads int
	// ORTLib is the ONNX Runtime library path ("" resolves it).
	ORTLib string
	// OnStep, when set, is called with each step's result as it completes.
	OnStep func(StepReport)
}

// StepReport compares the logits of one step: the prefill (step 0, every
// prompt position) or one decode step.
type StepReport struct {
	Step      int     `json:"step"`
	Positions int     `json:"positions"`
	MaxAbs    float64 `json:"max_abs"`
	MaxRel    float64 `json:"max_rel"`
	// Token is the argmax of the package's last logits, RefToken the reference's.
	Token    int `json:"token"`
	RefToken int `json:"ref_token"`
}

// Report is the outcome of Verify.
type Report struct {
	DType  string       `json:"dtype"`
	Steps  []StepReport `json:"steps"`
	MaxAbs float64      `json:"max_abs"`
	MaxRel float64      `json:"max_rel"`
	// Metric is "abs", "rel" or "none" (report only); Tol its bound.
	Metric string  `json:"metric"`
	Tol    float64 `json:"tol"`
	// Agreement is the fraction of steps whose greedy token matches the reference.
	Agreement float64 `json:"agreement"`
	Pass      bool    `json:"pass"`
}

// Err returns a descriptive error when the report failed its tolerance.
func (r Report) Err() error {
	if r.Pass {
		return nil
	}
	v := r.MaxAbs
	if r.Metric == "rel" {
		v = r.MaxRel
	}
	return fmt.Errorf("verification failed: max %s difference %.3g exceeds the tolerance %.3g (%s package)", r.Metric, v, r.Tol, r.DType)
}

// Verify runs the package in pkgDir through ONNX Runtime (embedding, every
// layer, head; a prefill then Steps greedy decode steps, KV bound in place)
// and compares its logits with the plain-Go reference forward pass over the
// reference weights. The decode follows the reference's greedy tokens.
func Verify(ctx context.Context, pkgDir string, opts VerifyOptions) (Report, error) {
	m, err := manifest.Load(pkgDir)
	if err != nil {
		return Report{}, err
	}
	ref, err := openReference(pkgDir, m, opts.Checkpoint)
	if err != nil {
		return Report{}, err
	}
	prompt := opts.PromptIDs
	if len(prompt) == 0 {
		prompt = defaultPrompt(m)
	}
	steps := opts.Steps
	if steps == 0 {
		steps = 8
	}
	steps = max(steps, 0)
	if len(prompt)+steps > m.MaxSeqLen {
		return Report{}, fmt.Errorf("prompt of %d tokens plus %d steps exceeds the package's max_seq_len %d", len(prompt), steps, m.MaxSeqLen)
	}
	for _, id := range prompt {
		if id < 0 || id >= m.VocabSize {
			return Report{}, fmt.Errorf("prompt id %d is outside the vocabulary (%d)", id, m.VocabSize)
		}
	}
	rep := Report{DType: m.DType, Metric: "abs", Tol: DefaultTolFP32}
	switch {
	case m.DType == llama.DTypeFP16:
		rep.Metric, rep.Tol = "rel", DefaultTolFP16
	case m.DType == llama.DTypeInt4:
		rep.Metric, rep.Tol = "none", 0
	}
	if opts.Tol > 0 {
		if rep.Metric == "none" {
			rep.Metric = "rel"
		}
		rep.Tol = opts.Tol
	}

	if err := ort.Init(opts.ORTLib); err != nil {
		return Report{}, err
	}
	r, err := newRunner(pkgDir, m, ort.Options{Device: opts.Device, Threads: opts.Threads})
	if err != nil {
		return Report{}, err
	}
	defer r.close()

	tokens := prompt
	pos := 0
	agree := 0
	for step := 0; step <= steps; step++ {
		if err := ctx.Err(); err != nil {
			return Report{}, err
		}
		got, err := r.forward(tokens, pos)
		if err != nil {
			return Report{}, fmt.Errorf("step %d: %w", step, err)
		}
		want, err := ref.Forward(tokens, nil)
		if err != nil {
			return Report{}, fmt.Errorf("step %d: %w", step, err)
		}
		sr := compare(got, want)
		sr.Step, sr.Positions = step, len(tokens)
		if sr.Token == sr.RefToken {
			agree++
		}
		rep.Steps = append(rep.Steps, sr)
		rep.MaxAbs = max(rep.MaxAbs, sr.MaxAbs)
		rep.MaxRel = max(rep.MaxRel, sr.MaxRel)
		if opts.OnStep != nil {
			opts.OnStep(sr)
		}
		pos += len(tokens)
		tokens = []int{sr.RefToken}
	}
	rep.Agreement = float64(agree) / float64(len(rep.Steps))
	switch rep.Metric {
	case "abs":
		rep.Pass = rep.MaxAbs <= rep.Tol
	case "rel":
		rep.Pass = rep.MaxRel <= rep.Tol
	default:
		rep.Pass = true
	}
	return rep, nil
}

// compare returns the largest absolute and relative differences over every
// position and the greedy tokens of the last position.
func compare(got, want [][]float32) StepReport {
	var sr StepReport
	for p := range want {
		var scale, diff float64
		for i, w := range want[p] {
			scale = max(scale, math.Abs(float64(w)))
			d := math.Abs(float64(got[p][i]) - float64(w))
			if math.IsNaN(d) {
				d = math.Inf(1)
			}
			diff = max(diff, d)
		}
		sr.MaxAbs = max(sr.MaxAbs, diff)
		sr.MaxRel = max(sr.MaxRel, diff/max(scale, 1e-6))
	}
	last := len(want) - 1
	sr.Token, sr.RefToken = llama.Argmax(got[last]), llama.Argmax(want[last])
	return sr
}

// defaultPrompt is BOS (when the model has one) and six ids spread over the vocabulary.
func defaultPrompt(m *manifest.Manifest) []int {
	var p []int
	if m.BOSID >= 0 {
		p = append(p, m.BOSID)
	}
	for i := 1; i <= 6; i++ {
		p = append(p, (i*m.VocabSize/7+i)%m.VocabSize)
	}
	return p
}

// openReference builds the reference forward pass over the checkpoint (or
// the package's reference weights) and checks it matches the manifest.
func openReference(pkgDir string, m *manifest.Manifest, checkpoint string) (*llama.Reference, error) {
	var cfg llama.Config
	var src llama.WeightSource
	path := checkpoint
	if path == "" {
		if m.Files.Reference == "" {
			return nil, fmt.Errorf("model package %s has no reference weights: pass --checkpoint (the HF directory or llama2.c .bin it was exported from) or export with --reference", pkgDir)
		}
		p, err := manifest.Resolve(pkgDir, m.Files.Reference)
		if err != nil {
			return nil, err
		}
		path = p
	}
	if st, err := os.Stat(path); err == nil && !st.IsDir() && strings.HasSuffix(path, ".safetensors") {
		c, err := safetensors.OpenCheckpoint(path)
		if err != nil {
			return nil, fmt.Errorf("reference weights: %w", err)
		}
		defer c.Close()
		if cfg, err = referenceConfig(c, m); err != nil {
			return nil, err
		}
		src = c
		return newReference(cfg, src, m)
	}
	s, err := OpenSource(path)
	if err != nil {
		return nil, fmt.Errorf("reference weights: %w", err)
	}
	defer s.Close()
	return newReference(s.Config, s.Weights, m)
}

func newReference(cfg llama.Config, src llama.WeightSource, m *manifest.Manifest) (*llama.Reference, error) {
	if cfg.NumLayers != m.NumLayers || cfg.HiddenSize != m.HiddenSize || cfg.VocabSize != m.VocabSize ||
		cfg.NumHeads != m.NumHeads || cfg.NumKVHeads != m.NumKVHeads || cfg.HeadDim != m.HeadDim || cfg.IntermediateSize != m.IntermediateSize {
		return nil, errors.New("reference weights do not describe the package's model (layers, sizes or vocabulary differ)")
	}
	ref, err := llama.NewReference(cfg, src)
	if err != nil {
		return nil, fmt.Errorf("reference weights: %w", err)
	}
	return ref, nil
}

// referenceConfig reads the config stored in a reference file's metadata,
// or rebuilds it from the manifest and the tensors present.
func referenceConfig(c *safetensors.Checkpoint, m *manifest.Manifest) (llama.Config, error) {
	var cfg llama.Config
	if js := c.Metadata(configKey); js != "" {
		if err := json.Unmarshal([]byte(js), &cfg); err != nil {
			return cfg, fmt.Errorf("reference weights: config metadata: %w", err)
		}
		return cfg, cfg.Validate()
	}
	if m.Architecture != llama.Family {
		return cfg, fmt.Errorf("model package architecture %q is not %q", m.Architecture, llama.Family)
	}
	// Like llama.ConfigFromManifest, but tells bias and tying from the
	// headers alone instead of reading tensors.
	cfg = llama.Config{
		ModelType: llama.Family, NumLayers: m.NumLayers, HiddenSize: m.HiddenSize, NumHeads: m.NumHeads,
		NumKVHeads: m.NumKVHeads, HeadDim: m.HeadDim, IntermediateSize: m.IntermediateSize,
		VocabSize: m.VocabSize, MaxPositionEmbeddings: m.MaxSeqLen, RopeTheta: m.Rope.Theta,
		RopeScaling: m.Rope.Scaling, RMSNormEps: m.NormEps, TieWordEmbeddings: !c.Has(llama.LMHeadName),
		AttentionBias: c.Has(llama.LayerPrefix(0) + "self_attn.q_proj.bias"), BOSID: m.BOSID, EOSIDs: m.EOSIDs,
	}
	return cfg, cfg.Validate()
}

// runner executes a package's graphs with host tensors for batch 1.
type runner struct {
	m      *manifest.Manifest
	embed  *ortgo.DynamicAdvancedSession
	head   *ortgo.DynamicAdvancedSession
	layers []*ortgo.DynamicAdvancedSession
	kv     [][2]*ortgo.Tensor[float32] // per layer: key, value [1,Hkv,maxSeq,Dh]
}

func newRunner(dir string, m *manifest.Manifest, opts ort.Options) (r *runner, err error) {
	r = &runner{m: m}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	open := func(file string, in, out []string) (*ortgo.DynamicAdvancedSession, error) {
		p, err := manifest.Resolve(dir, file)
		if err != nil {
			return nil, err
		}
		return ort.NewSession(p, in, out, opts)
	}
	if r.embed, err = open(m.Files.Embed, []string{manifest.InputIDs}, []string{manifest.Hidden}); err != nil {
		return nil, err
	}
	if r.head, err = open(m.Files.Head, []string{manifest.Hidden}, []string{manifest.Logits}); err != nil {
		return nil, err
	}
	shape := ortgo.NewShape(1, int64(m.NumKVHeads), int64(m.MaxSeqLen), int64(m.HeadDim))
	for _, f := range m.Files.Layers {
		s, err := open(f, []string{manifest.Hidden, manifest.PastKey, manifest.PastValue, manifest.SeqLensK, manifest.TotalSeqLen},
			[]string{manifest.HiddenOut, manifest.PresentKey, manifest.PresentValue})
		if err != nil {
			return nil, err
		}
		r.layers = append(r.layers, s)
		var kv [2]*ortgo.Tensor[float32]
		for i := range kv {
			if kv[i], err = ortgo.NewEmptyTensor[float32](shape); err != nil {
				return nil, fmt.Errorf("allocate KV cache: %w", err)
			}
		}
		r.kv = append(r.kv, kv)
	}
	return r, nil
}

// forward appends tokens at positions pos.. through every layer and returns
// the logits of each new position.
func (r *runner) forward(tokens []int, pos int) ([][]float32, error) {
	S, D, V := int64(len(tokens)), int64(r.m.HiddenSize), int64(r.m.VocabSize)
	var owned []interface{ Destroy() error }
	defer func() {
		for i := len(owned) - 1; i >= 0; i-- {
			owned[i].Destroy()
		}
	}()
	ids64 := make([]int64, S)
	for i, t := range tokens {
		ids64[i] = int64(t)
	}
	ids, err := ortgo.NewTensor(ortgo.NewShape(1, S), ids64)
	if err != nil {
		return nil, err
	}
	owned = append(owned, ids)
	var h [2]*ortgo.Tensor[float32]
	for i := range h {
		if h[i], err = ortgo.NewEmptyTensor[float32](ortgo.NewShape(1, S, D)); err != nil {
			return nil, err
		}
		owned = append(owned, h[i])
	}
	// seqlens_k is the total valid length minus one.
	seqlens, err := ortgo.NewTensor(ortgo.NewShape(1), []int32{int32(pos + len(tokens) - 1)})
	if err != nil {
		return nil, err
	}
	owned = append(owned, seqlens)
	total, err := ortgo.NewScalar(int32(pos + len(tokens)))
	if err != nil {
		return nil, err
	}
	owned = append(owned, total)
	logits, err := ortgo.NewEmptyTensor[float32](ortgo.NewShape(1, S, V))
	if err != nil {
		return nil, err
	}
	owned = append(owned, logits)

	if err := r.embed.Run([]ortgo.Value{ids}, []ortgo.Value{h[0]}); err != nil {
		return nil, fmt.Errorf("embedding: %w", err)
	}
	for l, s := range r.layers {
		b, err := s.CreateIoBinding()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", l, err)
		}
		owned = append(owned, b)
		in, out := h[l%2], h[(l+1)%2]
		binds := []struct {
			name  string
			v     ortgo.Value
			input bool
		}{
			{manifest.Hidden, in, true}, {manifest.PastKey, r.kv[l][0], true}, {manifest.PastValue, r.kv[l][1], true},
			{manifest.SeqLensK, seqlens, true}, {manifest.TotalSeqLen, total, true},
			{manifest.HiddenOut, out, false}, {manifest.PresentKey, r.kv[l][0], false}, {manifest.PresentValue, r.kv[l][1], false},
		}
		for _, x := range binds {
			bind := b.BindOutput
			if x.input {
				bind = b.BindInput
			}
			if err := bind(x.name, x.v); err != nil {
				return nil, fmt.Errorf("layer %d: bind %s: %w", l, x.name, err)
			}
		}
		if err := s.RunWithBinding(b); err != nil {
			return nil, fmt.Errorf("layer %d: %w", l, err)
		}
	}
	if err := r.head.Run([]ortgo.Value{h[len(r.layers)%2]}, []ortgo.Value{logits}); err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	data := logits.GetData()
	out := make([][]float32, S)
	for p := range out {
		out[p] = append([]float32(nil), data[int64(p)*V:int64(p+1)*V]...)
	}
	return out, nil
}

func (r *runner) close() {
	for _, kv := range r.kv {
		kv[0].Destroy()
		kv[1].Destroy()
	}
	for _, s := range append([]*ortgo.DynamicAdvancedSession{r.embed, r.head}, r.layers...) {
		if s != nil {
			s.Destroy()
		}
	}
}
