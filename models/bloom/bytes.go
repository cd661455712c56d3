package bloom

import (
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

// StepWeights lists, for a package with manifest m, the tensors one decode
// step reads besides its embedding rows: the embedding layer norm, one
// decoder layer's (fused query_key_value, dense, the 4h MLP, two layer
// norms, every bias) and the head's (final layer norm and the tied
// embedding matrix as the vocabulary projection).
func StepWeights(m *manifest.Manifest) (embed, layer, head []graph.WeightInfo) {
	d := m.HiddenSize
	c := Config{HiddenSize: d}
	embed = []graph.WeightInfo{{Name: EmbedNormName + ".weight", Shape: []int{d}}, {Name: EmbedNormName + ".bias", Shape: []int{d}}}
	head = []graph.WeightInfo{{Name: FinalNormName + ".weight", Shape: []int{d}}, {Name: FinalNormName + ".bias", Shape: []int{d}},
		{Name: EmbedName, Shape: []int{m.VocabSize, d}}}
	return embed, c.LayerWeights(0), head
}
