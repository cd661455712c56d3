package family

import (
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/bloom"
	"github.com/strata-llm/strata/models/llama"
)

func TestParseHFConfigDispatch(t *testing.T) {
	tests := []struct {
		json, family string
		maxPos       int
	}{
		{`{"architectures":["BloomForCausalLM"],"n_layer":2,"n_head":6,"hidden_size":96,"vocab_size":80}`, bloom.Family, 0},
		{`{"model_type":"bloom","n_layer":2,"n_head":6,"hidden_size":96,"vocab_size":80}`, bloom.Family, 0},
		{`{"architectures":["LlamaForCausalLM"],"model_type":"llama","num_hidden_layers":2,"hidden_size":64,"num_attention_heads":4,
			"intermediate_size":96,"vocab_size":80,"max_position_embeddings":256}`, llama.Family, 256},
	}
	for _, tc := range tests {
		m, err := ParseHFConfig([]byte(tc.json))
		if err != nil {
			t.Fatal(err)
		}
		if m.Family() != tc.family || m.Manifest().Architecture != tc.family || m.NumLayers() != 2 || m.MaxPositions() != tc.maxPos {
			t.Errorf("%s: family %s, layers %d, max positions %d", tc.json, m.Family(), m.NumLayers(), m.MaxPositions())
		}
	}
	if _, err := ParseHFConfig([]byte(`{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"}`)); err == nil ||
		!strings.Contains(err.Error(), "unsupported architecture") {
		t.Errorf("gpt2: %v", err)
	}
	if _, err := FromConfig("gpt2", []byte(`{}`)); err == nil {
		t.Error("unknown architecture accepted")
	}
}

func TestBloomStoredName(t *testing.T) {
	m := Bloom(bloom.Config{NumLayers: 1, HiddenSize: 96, NumHeads: 6, VocabSize: 80, LayerNormEps: 1e-5})
	unprefixed := func(n string) bool { return !strings.HasPrefix(n, bloom.Prefix) }
	if got := m.StoredName(bloom.EmbedName, unprefixed); got != "word_embeddings.weight" {
		t.Errorf("unprefixed checkpoint: %s", got)
	}
	if got := m.StoredName(bloom.EmbedName, func(string) bool { return true }); got != bloom.EmbedName {
		t.Errorf("prefixed checkpoint: %s", got)
	}
}
