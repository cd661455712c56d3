package engine

import (
	"fmt"

	ortgo "github.com/yalue/onnxruntime_go"
)

// Graph input and output names of a strata package (DESIGN.md §3).
const (
	inInputIDs    = "input_ids"
	inHidden      = "hidden"
	inPastKey     = "past_key"
	inPastValue   = "past_value"
	inSeqlensK    = "seqlens_k"
	inTotalSeqLen = "total_seq_len"
	outHidden     = "hidden"
	outHiddenOut  = "hidden_out"
	outPresentKey = "present_key"
	outPresentVal = "present_value"
	outLogits     = "logits"
)

var (
	embedInputs  = []string{inInputIDs}
	embedOutputs = []string{outHidden}
	layerInputs  = []string{inHidden, inPastKey, inPastValue, inSeqlensK, inTotalSeqLen}
	layerOutputs = []string{outHiddenOut, outPresentKey, outPresentVal}
	headInputs   = []string{inHidden}
	headOutputs  = []string{outLogits}
)

// executor runs a batch of sequences through the per-layer graphs. prefill
// fills the KV buffers of one batch row with its prompt at full depth;
// logits then returns the next-token logits of every row. decode appends
// one token per row through the scheduled layers. The returned logits alias
// internal buffers and stay valid until the next call.
type executor interface {
	prefill(row int, ids []int) error
	logits() ([][]float32, error)
	decode(ids []int, positions []int) ([][]float32, error)
	kvBytes() int64
	close()
}

// kvPair is one layer's KV cache for the whole batch, [B, Hkv, maxSeq, Dh]
// each, bound as both past_* and present_* so GroupQueryAttention writes the
// new entries in place.
type kvPair struct {
	k, v *ortgo.Tensor[float32]
}

func newKVPair(batch, kvHeads, maxSeq, headDim int) (*kvPair, error) {
	shape := ortgo.NewShape(int64(batch), int64(kvHeads), int64(maxSeq), int64(headDim))
	k, err := ortgo.NewEmptyTensor[float32](shape)
	if err != nil {
		return nil, fmt.Errorf("allocate KV cache: %w", err)
	}
	v, err := ortgo.NewEmptyTensor[float32](shape)
	if err != nil {
		k.Destroy()
		return nil, fmt.Errorf("allocate KV cache: %w", err)
	}
	return &kvPair{k, v}, nil
}

// row returns tensors viewing one batch row of the pair (no copy).
func (p *kvPair) row(b int) (*kvPair, error) {
	shape := p.k.GetShape()
	stride := int(shape[1] * shape[2] * shape[3])
	rowShape := ortgo.NewShape(1, shape[1], shape[2], shape[3])
	k, err := ortgo.NewTensor(rowShape, p.k.GetData()[b*stride:(b+1)*stride])
	if err != nil {
		return nil, err
	}
	v, err := ortgo.NewTensor(rowShape, p.v.GetData()[b*stride:(b+1)*stride])
	if err != nil {
		k.Destroy()
		return nil, err
	}
	return &kvPair{k, v}, nil
}

func (p *kvPair) bytes() int64 { return 2 * 4 * int64(len(p.k.GetData())) }

func (p *kvPair) destroy() {
	if p != nil {
		p.k.Destroy()
		p.v.Destroy()
	}
}

// destroyer collects ORT objects to release together.
type destroyer []interface{ Destroy() error }

func (d *destroyer) add(v interface{ Destroy() error }) { *d = append(*d, v) }

func (d *destroyer) destroy() {
	for i := len(*d) - 1; i >= 0; i-- {
		(*d)[i].Destroy()
	}
	*d = nil
}
