package llama

import "github.com/strata-llm/strata/models/manifest"

// StepWeights lists, for a package with manifest m, the tensors one decode
// step reads besides its embedding rows: the embedding graph's own (none),
// one decoder layer's and the head's (final norm and vocabulary
// projection). Attention biases, which the manifest does not record, are
// left out: a few KiB.
func StepWeights(m *manifest.Manifest) (embed, layer, head []WeightInfo) {
	c := Config{HiddenSize: m.HiddenSize, NumHeads: m.NumHeads, NumKVHeads: m.NumKVHeads, HeadDim: m.HeadDim,
		IntermediateSize: m.IntermediateSize, VocabSize: m.VocabSize}
	head = []WeightInfo{{Name: NormName, Shape: []int{m.HiddenSize}}, {Name: LMHeadName, Shape: []int{m.VocabSize, m.HiddenSize}}}
	return nil, c.LayerWeights(0), head
}
