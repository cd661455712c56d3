package llama

import "github.com/strata-llm/strata/models/manifest"

// Variant is a named configuration of the family.
type Variant struct {
	Name   string
	Config Config
}

// Variants are small LLaMA-family configurations, one per variant the graph
// writers handle: multi-head, grouped-query (Mistral), q/k/v bias with tied
// embeddings (Qwen2), head_dim apart from hidden/heads, llama3 rope scaling.
// With RandomWeights they make the test models of this package's reference
// and of the engine's graph tests.
func Variants() []Variant {
	base := Config{ModelType: "llama", NumLayers: 3, HiddenSize: 64, NumHeads: 4, NumKVHeads: 4, HeadDim: 16,
		IntermediateSize: 48, VocabSize: 64, MaxPositionEmbeddings: 128, RopeTheta: 10000, RMSNormEps: 1e-5, BOSID: 1, EOSIDs: []int{2}}
	mistral := base
	mistral.ModelType, mistral.NumKVHeads, mistral.IntermediateSize, mistral.VocabSize = "mistral", 2, 40, 50
	qwen := base
	qwen.ModelType, qwen.NumLayers, qwen.NumKVHeads, qwen.AttentionBias, qwen.TieWordEmbeddings, qwen.RopeTheta = "qwen2", 2, 2, true, true, 1e6
	headDim := base
	headDim.HiddenSize, headDim.NumKVHeads, headDim.HeadDim, headDim.IntermediateSize = 40, 1, 16, 56
	llama3 := base
	llama3.NumHeads, llama3.NumKVHeads, llama3.HeadDim = 2, 1, 16
	llama3.RopeScaling = &manifest.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16}
	return []Variant{{"llama-mha", base}, {"mistral-gqa", mistral}, {"qwen2-bias-tied", qwen}, {"headdim16-d40", headDim}, {"llama3-rope", llama3}}
}
