package engine

import (
	"context"
)

// The step loop: the one place where a batch's steps run one after another
// (docs/design.md, "The step loop"). What each step runs is a policy's
// choice: plain decoding with or without refills (decode.go), lossless
// rounds (lossless.go).

// stepKind says what a step of the loop does.
type stepKind int

const (
	// stepPrefill runs prompts from position 0 through every layer: the
	// rows of a new batch, or the rows a refill gave new requests.
	stepPrefill stepKind = iota
	// stepDecode runs one token per row through the schedule's layers.
	stepDecode
	// stepDraft is a lossless round's decode step through the draft's
	// layers.
	stepDraft
	// stepVerify runs a lossless round's drafts through every layer.
	stepVerify
)

// work is one step of the loop.
type work struct {
	kind stepKind
	// prompts (a prefill) are the rows' prompts; a row whose prompt is
	// nil keeps its state, its pads going to idle[b].
	prompts [][]int
	idle    []int
	// parts are the tokens of any other step.
	parts  []part
	layers []int
}

// policy decides what a batch's steps run and takes in their results.
type policy interface {
	// next returns the next step, or done once the batch has finished.
	next(ctx context.Context) (w work, done bool, err error)
	// took hands back the logits of w's last part: row b's next-token
	// distribution after its i-th token is logits.at(b, i).
	took(w work, logits *stepLogits) error
}

// runSteps is the step loop: it asks p for a step, runs it on r (a
// prefill in parts of at most chunk tokens per row, any other step through
// its layers and the head), and hands the logits back, until p is done or
// ctx ends. It is the only function that runs a runner's steps in a loop.
func runSteps(ctx context.Context, r *runner, chunk int, p policy) error {
	for {
		w, done, err := p.next(ctx)
		if err != nil || done {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var logits *stepLogits
		if w.kind == stepPrefill {
			logits, err = r.prefillRows(w.prompts, w.idle, w.layers, chunk)
		} else {
			logits, err = r.step(w.parts, w.layers, true)
		}
		if err != nil {
			return err
		}
		if err := p.took(w, logits); err != nil {
			return err
		}
	}
}

// allLayers lists every layer of the model, in order.
func (m *Model) allLayers() []int { return allLayers(m.Manifest.NumLayers) }

// runnerFor makes a runner for a batch decoding through kept, after
// checking that its KV cache fits in memory, or takes the Model's idle one
// (runnerPool). Give it back with doneWith.
func (m *Model) runnerFor(batch int, kept []int) (*runner, error) {
	if err := m.checkKVMemory(batch, Schedule{Layers: kept}); err != nil {
		return nil, err
	}
	if m.pool != nil {
		if r := m.pool.take(batch, kept); r != nil {
			return r, nil
		}
	}
	keep := make([]bool, m.Manifest.NumLayers)
	for _, l := range kept {
		keep[l] = true
	}
	return newRunner(m.g, batch, keep)
}
