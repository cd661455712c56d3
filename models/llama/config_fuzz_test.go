package llama

import (
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
)

// FuzzParseHFConfig feeds arbitrary bytes to the config.json reader: it must
// never panic, and a config it accepts must be within strata's limits, so
// that nothing sized from it (the weight list, the rotary tables) can ask
// for an unbounded allocation.
func FuzzParseHFConfig(f *testing.F) {
	for _, seed := range []string{
		`{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":4,"vocab_size":256,"max_position_embeddings":128,"rms_norm_eps":1e-5,"rope_theta":10000,"bos_token_id":1,"eos_token_id":2}`,
		`{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":64,"intermediate_size":160,"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":300,"tie_word_embeddings":true,"eos_token_id":[2,3]}`,
		`{"model_type":"mistral","hidden_size":128,"intermediate_size":192,"num_hidden_layers":4,"num_attention_heads":8,"num_key_value_heads":2,"vocab_size":320,"head_dim":16,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192}}`,
		`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":1000000000000,"num_attention_heads":4,"vocab_size":256}`,
		`{"model_type":"llama","hidden_size":1048576,"intermediate_size":1048576,"num_hidden_layers":2,"num_attention_heads":1,"vocab_size":16777216}`,
		`{"model_type":"llama","hidden_size":-1}`,
		`{"rope_scaling":{"type":"linear","factor":"x"}}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseHFConfig(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
		if c.NumLayers > manifest.MaxLayers || c.HiddenSize > manifest.MaxDim || c.VocabSize > manifest.MaxVocab ||
			c.NumHeads*c.HeadDim > manifest.MaxDim || c.IntermediateSize > manifest.MaxDim {
			t.Fatalf("accepted config beyond the limits: %+v", c)
		}
		if n := len(c.Weights()); n > 16*manifest.MaxLayers+8 {
			t.Fatalf("%d weights", n)
		}
		if len(c.InvFreq()) != c.HeadDim/2 {
			t.Fatalf("InvFreq has %d entries for head_dim %d", len(c.InvFreq()), c.HeadDim)
		}
	})
}

func TestParseHFConfigBounds(t *testing.T) {
	base := `"model_type":"llama","num_attention_heads":4,"num_key_value_heads":4,`
	tests := []struct {
		json, want string
	}{
		{`{` + base + `"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1000000000,"vocab_size":256}`, "num_hidden_layers = 1000000000 is out of range"},
		{`{` + base + `"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"vocab_size":100000000}`, "vocab_size = 100000000 is out of range"},
		{`{` + base + `"hidden_size":64,"intermediate_size":1048577,"num_hidden_layers":2,"vocab_size":256}`, "intermediate_size"},
		{`{` + base + `"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"vocab_size":256,"head_dim":524288}`, "num_attention_heads × head_dim"},
		{`{` + base + `"hidden_size":1048576,"intermediate_size":1048576,"num_hidden_layers":2,"vocab_size":256}`, "intermediate_size × hidden_size"},
		{`{` + base + `"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"vocab_size":256,"max_position_embeddings":4294967296}`, "max_position_embeddings"},
	}
	for _, tc := range tests {
		_, err := ParseHFConfig([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseHFConfig(%s) error %v, want %q", tc.json, err, tc.want)
		}
	}
}
