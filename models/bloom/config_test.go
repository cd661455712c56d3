package bloom

import (
	"strings"
	"testing"
)

func TestParseHFConfig(t *testing.T) {
	tests := []struct {
		name, json string
		want       Config
		err        string
	}{
		{"bloom-560m keys", `{"architectures":["BloomForCausalLM"],"model_type":"bloom","n_layer":24,"n_head":16,"hidden_size":1024,
			"vocab_size":250880,"layer_norm_epsilon":1e-05,"apply_residual_connection_post_layernorm":false,"bos_token_id":1,"eos_token_id":2}`,
			Config{NumLayers: 24, HiddenSize: 1024, NumHeads: 16, VocabSize: 250880, LayerNormEps: 1e-5, BOSID: 1, EOSIDs: []int{2}}, ""},
		{"attribute-map names and n_embed", `{"model_type":"bloom","num_hidden_layers":2,"num_attention_heads":6,"n_embed":96,"vocab_size":80,
			"apply_residual_connection_post_layernorm":true}`,
			Config{NumLayers: 2, HiddenSize: 96, NumHeads: 6, VocabSize: 80, LayerNormEps: 1e-5, ResidualPostLayerNorm: true, BOSID: -1}, ""},
		{"missing n_head", `{"model_type":"bloom","n_layer":2,"hidden_size":96,"vocab_size":80}`, Config{}, `"n_head"`},
		{"heads do not divide", `{"model_type":"bloom","n_layer":2,"n_head":5,"hidden_size":96,"vocab_size":80}`, Config{}, "multiple"},
		{"untied", `{"model_type":"bloom","n_layer":2,"n_head":6,"hidden_size":96,"vocab_size":80,"tie_word_embeddings":false}`, Config{}, "tie_word_embeddings"},
		{"bad eos", `{"model_type":"bloom","n_layer":2,"n_head":6,"hidden_size":96,"vocab_size":80,"eos_token_id":"x"}`, Config{}, "eos_token_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !IsHFConfig([]byte(tc.json)) {
				t.Fatal("not recognised as BLOOM")
			}
			got, err := ParseHFConfig([]byte(tc.json))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.NumLayers != tc.want.NumLayers || got.HiddenSize != tc.want.HiddenSize || got.NumHeads != tc.want.NumHeads ||
				got.VocabSize != tc.want.VocabSize || got.LayerNormEps != tc.want.LayerNormEps ||
				got.ResidualPostLayerNorm != tc.want.ResidualPostLayerNorm || got.BOSID != tc.want.BOSID || len(got.EOSIDs) != len(tc.want.EOSIDs) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if IsHFConfig([]byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama"}`)) {
		t.Error("a LLaMA config recognised as BLOOM")
	}
}

func TestConfigFromManifest(t *testing.T) {
	c := testConfig(true)
	m := c.Manifest()
	if m.Rope.Theta != 0 || m.NumKVHeads != c.NumHeads || m.IntermediateSize != 4*c.HiddenSize {
		t.Fatalf("manifest %+v", m)
	}
	back, err := ConfigFromManifest(&m, true)
	if err != nil || back.NumLayers != c.NumLayers || back.HiddenSize != c.HiddenSize || !back.ResidualPostLayerNorm {
		t.Fatalf("%+v, %v", back, err)
	}
	m.Architecture = "llama"
	if _, err := ConfigFromManifest(&m, false); err == nil {
		t.Error("llama manifest accepted")
	}
}
