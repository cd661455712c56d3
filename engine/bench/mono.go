package bench

import (
	"context"
	"fmt"
	"time"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// monoModel runs model_full.onnx, the whole model as one graph, with the
// same discipline as the engine's executor: a prefill over the prompts, then
// decode steps with input_ids [B,1] and every layer's KV buffer bound in
// place (past and present are the same tensor) through one IoBinding, so a
// step copies only the token ids in and the logits out.
type monoModel struct {
	man  *manifest.Manifest
	sess *ortgo.DynamicAdvancedSession
}

func openMono(path string, man *manifest.Manifest, so ort.Options) (*monoModel, error) {
	inputs := []string{manifest.InputIDs}
	outputs := []string{manifest.Logits}
	for i := 0; i < man.NumLayers; i++ {
		inputs = append(inputs, llama.FullPastKey(i), llama.FullPastValue(i))
		outputs = append(outputs, llama.FullPresentKey(i), llama.FullPresentValue(i))
	}
	inputs = append(inputs, manifest.SeqLensK, manifest.TotalSeqLen)
	s, err := ort.NewSession(path, inputs, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("monolithic graph: %w", err)
	}
	return &monoModel{man: man, sess: s}, nil
}

func (mm *monoModel) close() { mm.sess.Destroy() }

// tensors collects ORT values to release together.
type tensors []ortgo.Value

func (t *tensors) destroy() {
	for _, v := range *t {
		v.Destroy()
	}
	*t = nil
}

func newTensor[T ortgo.TensorData](owned *tensors, dims ...int64) (*ortgo.Tensor[T], error) {
	t, err := ortgo.NewEmptyTensor[T](ortgo.NewShape(dims...))
	if err != nil {
		return nil, fmt.Errorf("monolithic graph: allocate %v: %w", dims, err)
	}
	*owned = append(*owned, t)
	return t, nil
}

// run prefills the prompts (all of one length) as one batch, takes the
// first token from the prefill logits, then decodes gen-1 more tokens
// greedily, and times it like the engine does.
func (mm *monoModel) run(ctx context.Context, prompts [][]int, gen int) (sample, error) {
	man := mm.man
	B, S := int64(len(prompts)), int64(len(prompts[0]))
	V := int64(man.VocabSize)
	var owned tensors
	defer owned.destroy()

	kv := make([]*ortgo.Tensor[float32], 2*man.NumLayers) // k0, v0, k1, v1, …
	for i := range kv {
		t, err := newTensor[float32](&owned, B, int64(man.NumKVHeads), int64(man.MaxSeqLen), int64(man.HeadDim))
		if err != nil {
			return sample{}, err
		}
		kv[i] = t
	}
	promptIDs, err := newTensor[int64](&owned, B, S)
	if err != nil {
		return sample{}, err
	}
	for b, p := range prompts {
		for i, id := range p {
			promptIDs.GetData()[int64(b)*S+int64(i)] = int64(id)
		}
	}
	seqlens, err := newTensor[int32](&owned, B)
	if err != nil {
		return sample{}, err
	}
	prefillLogits, err := newTensor[float32](&owned, B, S, V)
	if err != nil {
		return sample{}, err
	}
	ids, err := newTensor[int64](&owned, B, 1)
	if err != nil {
		return sample{}, err
	}
	logits, err := newTensor[float32](&owned, B, 1, V)
	if err != nil {
		return sample{}, err
	}

	start := time.Now()
	for b := range prompts {
		seqlens.GetData()[b] = int32(S - 1)
	}
	total, err := ortgo.NewScalar(int32(S))
	if err != nil {
		return sample{}, err
	}
	owned = append(owned, total)
	in := []ortgo.Value{promptIDs}
	out := []ortgo.Value{prefillLogits}
	for _, t := range kv {
		in = append(in, t)
		out = append(out, t)
	}
	in = append(in, seqlens, total)
	if err := mm.sess.Run(in, out); err != nil {
		return sample{}, fmt.Errorf("monolithic prefill: %w", err)
	}
	prefillDone := time.Now()
	for b := int64(0); b < B; b++ {
		row := prefillLogits.GetData()[(b*S+S-1)*V : (b*S+S)*V]
		ids.GetData()[b] = int64(llama.Argmax(row))
	}
	firstToken := time.Now()
	tokens := make([][]int, B)
	for b := range tokens {
		tokens[b] = make([]int, 0, gen)
		tokens[b] = append(tokens[b], int(ids.GetData()[b]))
	}

	bind, err := mm.sess.CreateIoBinding()
	if err != nil {
		return sample{}, fmt.Errorf("monolithic graph: %w", err)
	}
	defer bind.Destroy()
	if err := bindAll(bind, ids, seqlens, logits, kv); err != nil {
		return sample{}, err
	}
	for step := 1; step < gen; step++ {
		if err := ctx.Err(); err != nil {
			return sample{}, err
		}
		pos := int32(S) + int32(step) - 1 // position of the token fed now
		for b := int64(0); b < B; b++ {
			seqlens.GetData()[b] = pos
		}
		// As in the engine: scalars cannot be updated in place, so each step
		// makes one.
		total, err := ortgo.NewScalar(pos + 1)
		if err != nil {
			return sample{}, err
		}
		err = bind.BindInput(manifest.TotalSeqLen, total)
		if err == nil {
			err = mm.sess.RunWithBinding(bind)
		}
		total.Destroy()
		if err != nil {
			return sample{}, fmt.Errorf("monolithic decode: %w", err)
		}
		data := logits.GetData()
		for b := int64(0); b < B; b++ {
			id := llama.Argmax(data[b*V : (b+1)*V])
			ids.GetData()[b] = int64(id)
			tokens[b] = append(tokens[b], id)
		}
	}
	end := time.Now()
	return sample{
		prefillTPS: float64(B*S) / prefillDone.Sub(start).Seconds(),
		decodeTPS:  float64(B*int64(gen-1)) / end.Sub(firstToken).Seconds(),
		ttftMillis: float64(firstToken.Sub(start).Microseconds()) / 1000,
		tokens:     tokens,
	}, nil
}

// bindAll binds the decode inputs and outputs; each layer's KV buffer is
// bound as both its past input and its present output.
func bindAll(bind *ortgo.IoBinding, ids *ortgo.Tensor[int64], seqlens *ortgo.Tensor[int32], logits *ortgo.Tensor[float32], kv []*ortgo.Tensor[float32]) error {
	type binding struct {
		name  string
		value ortgo.Value
		out   bool
	}
	bs := []binding{{manifest.InputIDs, ids, false}, {manifest.SeqLensK, seqlens, false}, {manifest.Logits, logits, true}}
	for i := 0; i < len(kv)/2; i++ {
		k, v := kv[2*i], kv[2*i+1]
		bs = append(bs,
			binding{llama.FullPastKey(i), k, false}, binding{llama.FullPastValue(i), v, false},
			binding{llama.FullPresentKey(i), k, true}, binding{llama.FullPresentValue(i), v, true})
	}
	for _, b := range bs {
		var err error
		if b.out {
			err = bind.BindOutput(b.name, b.value)
		} else {
			err = bind.BindInput(b.name, b.value)
		}
		if err != nil {
			return fmt.Errorf("monolithic graph: bind %s: %w", b.name, err)
		}
	}
	return nil
}
