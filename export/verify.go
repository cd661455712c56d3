package export

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/strata-llm/strata/models/family"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// Tolerance bounds the logit difference at every compared position:
// max |Δlogit| ≤ Atol + Rtol·max |reference logit| of that position
// (docs/design.md, "Verification"). The relative part follows the logit
// scale: an fp32 package of a checkpoint with large logits differs from the
// reference by rounding alone more than a fixed bound allows (BLOOM-shaped
// checkpoints: max |Δ| 1.2e-4–1.6e-4 at relative 3.8e-6, greedy agreement
// 100 %), while a wrong graph stays orders of magnitude above it.
type Tolerance struct {
	Atol float64 `json:"atol"`
	Rtol float64 `json:"rtol"`
}

// Default verification tolerances (docs/design.md, "Verification").
var (
	// DefaultTolFP32 is an fp32 package's: 1e-4 plus 1e-5 of the logit scale.
	DefaultTolFP32 = Tolerance{Atol: 1e-4, Rtol: 1e-5}
	// DefaultTolFP16 is an fp16 package's: 2e-2 of the logit scale.
	DefaultTolFP16 = Tolerance{Rtol: 2e-2}
)

// DefaultTolerance is the tolerance a package of dtype is verified with;
// false for int4, which is reported and not judged (quantisation moves the
// logits by design).
func DefaultTolerance(dtype string) (Tolerance, bool) {
	switch dtype {
	case llama.DTypeFP16:
		return DefaultTolFP16, true
	case llama.DTypeInt4:
		return Tolerance{}, false
	}
	return DefaultTolFP32, true
}

// bound is the largest difference allowed at a position whose largest
// reference logit is scale.
func (t Tolerance) bound(scale float64) float64 { return t.Atol + t.Rtol*scale }

func (t Tolerance) String() string {
	return fmt.Sprintf("max |Δ| ≤ %.3g + %.3g·max |ref|", t.Atol, t.Rtol)
}

// ErrNoReference reports a package exported without reference weights and
// verified without a checkpoint to take them from.
var ErrNoReference = errors.New("give the checkpoint it was exported from, or export it with reference weights")

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Checkpoint holds the reference weights: an HF directory, a llama2.c
	// .bin or a reference.safetensors; "" uses the package's reference file.
	Checkpoint string
	// PromptIDs is the prompt; nil picks a fixed prompt spread over the vocabulary.
	PromptIDs []int
	// Steps is the number of decode steps after the prefill (default 8; -1: none).
	Steps int
	// Tolerance, when set, replaces the dtype's (DefaultTolerance) and
	// judges int4 too.
	Tolerance *Tolerance
	// Tol is the command line's single bound: absolute for fp32, relative
	// to the largest reference logit for fp16 and int4 (0: unset). Tolerance
	// takes precedence.
	Tol float64
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
	// Worst is the largest difference over its bound, atol + rtol·max |ref|,
	// of any position: at most 1 passes (0 when the report is not judged).
	Worst float64 `json:"worst"`
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
	// Worst is the largest of the steps' Worst.
	Worst float64 `json:"worst"`
	// Metric is "atol+rtol", or "none" when the package is only reported;
	// Tol is the bound.
	Metric string    `json:"metric"`
	Tol    Tolerance `json:"tol"`
	// Agreement is the fraction of steps whose greedy token matches the reference.
	Agreement float64 `json:"agreement"`
	Pass      bool    `json:"pass"`
}

// Err returns a descriptive error when the report failed its tolerance.
func (r Report) Err() error {
	if r.Pass {
		return nil
	}
	return fmt.Errorf("verification failed: max |Δlogit| %.3g (relative %.3g) exceeds the tolerance %s by a factor of %.3g (%s package)", r.MaxAbs, r.MaxRel, r.Tol, r.Worst, r.DType)
}

// Forwarder runs a package at full depth: Step appends tokens to one
// sequence and returns the next-token logits after each of them.
// engine.Forward is the implementation; export does not import the engine.
type Forwarder interface {
	Step(tokens []int) ([][]float32, error)
}

// Verify runs the package in pkgDir through run (a prefill, then Steps
// greedy decode steps) and compares its logits with the plain-Go reference
// forward pass over the reference weights. The decode follows the
// reference's greedy tokens.
func Verify(ctx context.Context, pkgDir string, run Forwarder, opts VerifyOptions) (Report, error) {
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
	tol, judged := DefaultTolerance(m.DType)
	switch {
	case opts.Tolerance != nil:
		tol, judged = *opts.Tolerance, true
	case opts.Tol > 0 && m.DType == llama.DTypeFP32:
		tol, judged = Tolerance{Atol: opts.Tol}, true
	case opts.Tol > 0:
		tol, judged = Tolerance{Rtol: opts.Tol}, true
	}
	rep := Report{DType: m.DType, Metric: "atol+rtol", Tol: tol}
	if !judged {
		rep.Metric = "none"
	}

	tokens := prompt
	agree := 0
	for step := 0; step <= steps; step++ {
		if err := ctx.Err(); err != nil {
			return Report{}, err
		}
		got, err := run.Step(tokens)
		if err != nil {
			return Report{}, fmt.Errorf("step %d: %w", step, err)
		}
		want, err := ref.Forward(tokens, nil)
		if err != nil {
			return Report{}, fmt.Errorf("step %d: %w", step, err)
		}
		sr := compare(got, want, tol)
		sr.Step, sr.Positions = step, len(tokens)
		if sr.Token == sr.RefToken {
			agree++
		}
		if !judged {
			sr.Worst = 0 // no bound to be measured against (int4 without --tol)
		}
		rep.Steps = append(rep.Steps, sr)
		rep.MaxAbs = max(rep.MaxAbs, sr.MaxAbs)
		rep.MaxRel = max(rep.MaxRel, sr.MaxRel)
		rep.Worst = max(rep.Worst, sr.Worst)
		if opts.OnStep != nil {
			opts.OnStep(sr)
		}
		tokens = []int{sr.RefToken}
	}
	rep.Agreement = float64(agree) / float64(len(rep.Steps))
	rep.Pass = !judged || rep.Worst <= 1
	return rep, nil
}

// compare returns the largest absolute and relative differences over every
// position, the largest difference over its bound under tol, and the greedy
// tokens of the last position.
func compare(got, want [][]float32, tol Tolerance) StepReport {
	var sr StepReport
	for p := range want {
		var scale, diff float64
		for i, w := range want[p] {
			scale = max(scale, math.Abs(float64(w)))
			d := math.Abs(float64(got[p][i]) - float64(w))
			if math.IsNaN(d) || math.IsInf(d, 0) {
				d = math.MaxFloat64 // as large as can be, and still a JSON number
			}
			diff = max(diff, d)
		}
		sr.MaxAbs = max(sr.MaxAbs, diff)
		sr.MaxRel = max(sr.MaxRel, diff/max(scale, 1e-6))
		switch b := tol.bound(scale); {
		case diff == 0:
		case b > 0:
			sr.Worst = max(sr.Worst, diff/b)
		default: // a zero bound: any difference fails (MaxFloat64 keeps the report JSON)
			sr.Worst = math.MaxFloat64
		}
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
func openReference(pkgDir string, m *manifest.Manifest, checkpoint string) (family.Reference, error) {
	path := checkpoint
	if path == "" {
		if m.Files.Reference == "" {
			return nil, fmt.Errorf("model package %s has no reference weights: %w", pkgDir, ErrNoReference)
		}
		p, err := manifest.Resolve(pkgDir, m.Files.Reference)
		if err != nil {
			return nil, err
		}
		path = p
	}
	return OpenReference(path, m)
}
