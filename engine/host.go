package engine

import (
	"fmt"

	ortgo "github.com/yalue/onnxruntime_go"
)

// hostExecutor keeps every tensor in host memory (the CPU execution
// provider's own memory). Decode runs through IoBindings made once per batch:
// each kept layer reads one of two hidden buffers and writes the other, and
// its KV pair is bound as both past and present, so a decode step copies
// nothing but the token ids in and the logits out.
type hostExecutor struct {
	m       *Model
	batch   int
	kept    []int
	kv      []*kvPair // per layer; nil for layers decoding skips
	scratch *kvPair   // one row, shared by skipped layers during prefill

	ids     *ortgo.Tensor[int64]      // [B,1]
	hidden  [2]*ortgo.Tensor[float32] // [B,1,D] ping-pong
	seqlens *ortgo.Tensor[int32]      // [B]
	logitsT *ortgo.Tensor[float32]    // [B,1,V]
	rows    [][]float32

	embedB, headB *ortgo.IoBinding
	layerB        []*ortgo.IoBinding // per kept layer, in order
	owned         destroyer
}

func newHostExecutor(m *Model, batch int, kept []int) (ex *hostExecutor, err error) {
	man := m.Manifest
	ex = &hostExecutor{m: m, batch: batch, kept: kept, kv: make([]*kvPair, man.NumLayers)}
	defer func() {
		if err != nil {
			ex.close()
			ex = nil
		}
	}()
	for _, l := range kept {
		if ex.kv[l], err = newKVPair(batch, man.NumKVHeads, man.MaxSeqLen, man.HeadDim); err != nil {
			return nil, err
		}
	}
	if len(kept) < man.NumLayers {
		if ex.scratch, err = newKVPair(1, man.NumKVHeads, man.MaxSeqLen, man.HeadDim); err != nil {
			return nil, err
		}
	}
	B, D, V := int64(batch), int64(man.HiddenSize), int64(man.VocabSize)
	if ex.ids, err = ortgo.NewEmptyTensor[int64](ortgo.NewShape(B, 1)); err != nil {
		return nil, err
	}
	ex.owned.add(ex.ids)
	for i := range ex.hidden {
		if ex.hidden[i], err = ortgo.NewEmptyTensor[float32](ortgo.NewShape(B, 1, D)); err != nil {
			return nil, err
		}
		ex.owned.add(ex.hidden[i])
	}
	if ex.seqlens, err = ortgo.NewEmptyTensor[int32](ortgo.NewShape(B)); err != nil {
		return nil, err
	}
	ex.owned.add(ex.seqlens)
	if ex.logitsT, err = ortgo.NewEmptyTensor[float32](ortgo.NewShape(B, 1, V)); err != nil {
		return nil, err
	}
	ex.owned.add(ex.logitsT)
	data := ex.logitsT.GetData()
	for b := 0; b < batch; b++ {
		ex.rows = append(ex.rows, data[b*int(V):(b+1)*int(V)])
	}

	if ex.embedB, err = bind(m.embed, &ex.owned, map[string]ortgo.Value{inInputIDs: ex.ids}, map[string]ortgo.Value{outHidden: ex.hidden[0]}); err != nil {
		return nil, fmt.Errorf("bind embedding: %w", err)
	}
	for j, l := range kept {
		in, out := ex.hidden[j%2], ex.hidden[(j+1)%2]
		b, err := bind(m.layers[l], &ex.owned,
			map[string]ortgo.Value{inHidden: in, inPastKey: ex.kv[l].k, inPastValue: ex.kv[l].v, inSeqlensK: ex.seqlens},
			map[string]ortgo.Value{outHiddenOut: out, outPresentKey: ex.kv[l].k, outPresentVal: ex.kv[l].v})
		if err != nil {
			return nil, fmt.Errorf("bind layer %d: %w", l, err)
		}
		ex.layerB = append(ex.layerB, b)
	}
	if ex.headB, err = bind(m.head, &ex.owned, map[string]ortgo.Value{inHidden: ex.hidden[len(kept)%2]}, map[string]ortgo.Value{outLogits: ex.logitsT}); err != nil {
		return nil, fmt.Errorf("bind head: %w", err)
	}
	return ex, nil
}

// bind creates an IoBinding for session s; the binding is released with owned.
func bind(s *ortgo.DynamicAdvancedSession, owned *destroyer, inputs, outputs map[string]ortgo.Value) (*ortgo.IoBinding, error) {
	b, err := s.CreateIoBinding()
	if err != nil {
		return nil, err
	}
	owned.add(b)
	for name, v := range inputs {
		if err := b.BindInput(name, v); err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
	}
	for name, v := range outputs {
		if err := b.BindOutput(name, v); err != nil {
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
	}
	return b, nil
}

// prefill runs one prompt through every layer for batch row `row`, writing
// the KV of kept layers into that row of their buffers, and leaves the last
// position's hidden state where the head reads it.
func (ex *hostExecutor) prefill(row int, prompt []int) error {
	man := ex.m.Manifest
	S, D := int64(len(prompt)), int64(man.HiddenSize)
	var tmp destroyer
	defer tmp.destroy()

	ids, err := ortgo.NewEmptyTensor[int64](ortgo.NewShape(1, S))
	if err != nil {
		return err
	}
	tmp.add(ids)
	for i, id := range prompt {
		ids.GetData()[i] = int64(id)
	}
	var h [2]*ortgo.Tensor[float32]
	for i := range h {
		if h[i], err = ortgo.NewEmptyTensor[float32](ortgo.NewShape(1, S, D)); err != nil {
			return err
		}
		tmp.add(h[i])
	}
	seqlens, err := ortgo.NewTensor(ortgo.NewShape(1), []int32{int32(S - 1)})
	if err != nil {
		return err
	}
	tmp.add(seqlens)
	total, err := ortgo.NewScalar(int32(S))
	if err != nil {
		return err
	}
	tmp.add(total)

	if err := ex.m.embed.Run([]ortgo.Value{ids}, []ortgo.Value{h[0]}); err != nil {
		return fmt.Errorf("prefill embedding: %w", err)
	}
	for l := 0; l < man.NumLayers; l++ {
		kv := ex.scratch
		if ex.kv[l] != nil {
			if kv, err = ex.kv[l].row(row); err != nil {
				return err
			}
			tmp.add(kv.k)
			tmp.add(kv.v)
		}
		in, out := h[l%2], h[(l+1)%2]
		err := ex.m.layers[l].Run(
			[]ortgo.Value{in, kv.k, kv.v, seqlens, total},
			[]ortgo.Value{out, kv.k, kv.v})
		if err != nil {
			return fmt.Errorf("prefill layer %d: %w", l, err)
		}
	}
	last := h[man.NumLayers%2].GetData()[(S-1)*D : S*D]
	copy(ex.hidden[len(ex.kept)%2].GetData()[int64(row)*D:], last)
	return nil
}

// logits runs the head over the hidden state waiting for it (after prefill
// of every row) and returns one row of logits per batch row.
func (ex *hostExecutor) logits() ([][]float32, error) {
	if err := ex.m.head.RunWithBinding(ex.headB); err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	return ex.rows, nil
}

// decode appends ids[b] at position positions[b] of row b through the kept
// layers and returns the next-token logits of every row.
func (ex *hostExecutor) decode(ids []int, positions []int) ([][]float32, error) {
	maxPos := 0
	for b := range ids {
		ex.ids.GetData()[b] = int64(ids[b])
		ex.seqlens.GetData()[b] = int32(positions[b])
		maxPos = max(maxPos, positions[b])
	}
	// onnxruntime_go scalars cannot be updated in place, so each step makes
	// one and binds it to every layer.
	total, err := ortgo.NewScalar(int32(maxPos + 1))
	if err != nil {
		return nil, err
	}
	defer total.Destroy()
	if err := ex.m.embed.RunWithBinding(ex.embedB); err != nil {
		return nil, fmt.Errorf("decode embedding: %w", err)
	}
	for j, b := range ex.layerB {
		if err := b.BindInput(inTotalSeqLen, total); err != nil {
			return nil, err
		}
		if err := ex.m.layers[ex.kept[j]].RunWithBinding(b); err != nil {
			return nil, fmt.Errorf("decode layer %d: %w", ex.kept[j], err)
		}
	}
	return ex.logits()
}

func (ex *hostExecutor) kvBytes() int64 {
	var n int64
	for _, p := range ex.kv {
		if p != nil {
			n += p.bytes()
		}
	}
	if ex.scratch != nil {
		n += ex.scratch.bytes()
	}
	return n
}

func (ex *hostExecutor) close() {
	ex.owned.destroy()
	for _, p := range ex.kv {
		p.destroy()
	}
	ex.scratch.destroy()
}
