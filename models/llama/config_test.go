package llama

import (
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
)

func TestParseHFConfig(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		check func(t *testing.T, c Config)
	}{
		{"llama2", `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,"intermediate_size":172,
			"num_attention_heads":4,"num_hidden_layers":3,"vocab_size":100,"rms_norm_eps":1e-5,"bos_token_id":1,"eos_token_id":2,
			"max_position_embeddings":4096,"rope_scaling":null,"hidden_act":"silu"}`,
			func(t *testing.T, c Config) {
				if c.ModelType != "llama" || c.NumKVHeads != 4 || c.HeadDim != 16 || c.RopeTheta != 10000 ||
					c.RMSNormEps != 1e-5 || c.BOSID != 1 || !slices.Equal(c.EOSIDs, []int{2}) || c.AttentionBias ||
					c.TieWordEmbeddings || c.RopeScaling != nil || c.MaxPositionEmbeddings != 4096 {
					t.Errorf("%+v", c)
				}
			}},
		{"llama3 scaling and eos list", `{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,
			"num_attention_heads":4,"num_key_value_heads":2,"num_hidden_layers":2,"vocab_size":50,"rope_theta":500000.0,
			"eos_token_id":[128001,128008,128009],"bos_token_id":128000,"attention_bias":true,"tie_word_embeddings":true,
			"rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}}`,
			func(t *testing.T, c Config) {
				s := c.RopeScaling
				if s == nil || s.Type != "llama3" || s.Factor != 8 || s.HighFreqFactor != 4 || s.OriginalMaxPositionEmbeddings != 8192 {
					t.Fatalf("rope scaling %+v", s)
				}
				if !slices.Equal(c.EOSIDs, []int{128001, 128008, 128009}) || c.NumKVHeads != 2 || !c.AttentionBias ||
					!c.TieWordEmbeddings || c.RopeTheta != 500000 || c.MaxPositionEmbeddings != 2048 {
					t.Errorf("%+v", c)
				}
			}},
		{"mistral", `{"architectures":["MistralForCausalLM"],"model_type":"mistral","hidden_size":32,"intermediate_size":64,
			"num_attention_heads":4,"num_key_value_heads":1,"num_hidden_layers":2,"vocab_size":50,"head_dim":12,
			"rope_scaling":{"type":"linear","factor":2.0},"attention_bias":true}`,
			func(t *testing.T, c Config) {
				if c.ModelType != "mistral" || c.HeadDim != 12 || c.AttentionBias || c.RopeScaling.Type != "linear" ||
					c.RopeScaling.Factor != 2 || c.BOSID != -1 || c.EOSIDs != nil {
					t.Errorf("%+v", c)
				}
			}},
		{"qwen2 by model_type", `{"model_type":"qwen2","hidden_size":32,"intermediate_size":64,"num_attention_heads":4,
			"num_key_value_heads":2,"num_hidden_layers":2,"vocab_size":50,"tie_word_embeddings":true,"eos_token_id":7,"bos_token_id":null}`,
			func(t *testing.T, c Config) {
				if !c.AttentionBias || !c.TieWordEmbeddings || c.BOSID != -1 || !slices.Equal(c.EOSIDs, []int{7}) ||
					c.MaxPositionEmbeddings != 32768 {
					t.Errorf("%+v", c)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseHFConfig([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseHFConfigErrors(t *testing.T) {
	base := `"hidden_size":32,"intermediate_size":64,"num_attention_heads":4,"num_hidden_layers":2,"vocab_size":50`
	tests := []struct{ name, json, want string }{
		{"unknown arch", `{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2",` + base + `}`, "GPT2LMHeadModel"},
		{"no arch", `{` + base + `}`, "unsupported architecture"},
		{"missing vocab", `{"model_type":"llama","hidden_size":32,"intermediate_size":64,"num_attention_heads":4,"num_hidden_layers":2}`, `"vocab_size"`},
		{"missing layers", `{"model_type":"llama","hidden_size":32,"intermediate_size":64,"num_attention_heads":4,"vocab_size":2}`, `"num_hidden_layers"`},
		{"bad json", `{"model_type":`, "config.json"},
		{"bad eos", `{"model_type":"llama",` + base + `,"eos_token_id":"x"}`, "eos_token_id"},
		{"gqa mismatch", `{"model_type":"llama",` + base + `,"num_key_value_heads":3}`, "multiple"},
		{"zero size", `{"model_type":"llama",` + base + `,"intermediate_size":0}`, "intermediate_size"},
		{"rope type", `{"model_type":"llama",` + base + `,"rope_scaling":{"type":"yarn","factor":4}}`, "yarn"},
		{"llama3 key", `{"model_type":"llama",` + base + `,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4}}`, "original_max_position_embeddings"},
		{"activation", `{"model_type":"llama",` + base + `,"hidden_act":"gelu"}`, "gelu"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHFConfig([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestInvFreqScaling(t *testing.T) {
	c := Config{HeadDim: 64, RopeTheta: 500000}
	plain := c.InvFreq()
	c.RopeScaling = nil
	lin := c
	lin.RopeScaling = &manifest.RopeScaling{Type: "linear", Factor: 4}
	l3 := c
	l3.RopeScaling = &manifest.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	linF, l3F := lin.InvFreq(), l3.InvFreq()
	if linF[5] != plain[5]/4 {
		t.Errorf("linear: %v vs %v", linF[5], plain[5])
	}
	// llama3 keeps high frequencies (short wavelengths), divides the lowest
	// by the factor and interpolates in between.
	if l3F[0] != plain[0] || l3F[31] != plain[31]/8 {
		t.Errorf("llama3 ends: %v %v vs %v %v", l3F[0], l3F[31], plain[0], plain[31])
	}
	mid := 0
	for i := range plain {
		if l3F[i] < plain[i] && l3F[i] > plain[i]/8 {
			mid++
		}
	}
	if mid == 0 {
		t.Error("llama3: no smoothed frequencies")
	}
}

func TestWeightsAndLoad(t *testing.T) {
	c := Config{ModelType: "qwen2", NumLayers: 2, HiddenSize: 8, NumHeads: 2, NumKVHeads: 1, HeadDim: 6,
		IntermediateSize: 12, VocabSize: 11, TieWordEmbeddings: true, AttentionBias: true}
	ws := c.Weights()
	// embed + 2×12 layer tensors + norm, no lm_head when tied.
	if len(ws) != 1+2*12+1 {
		t.Fatalf("%d weights", len(ws))
	}
	src := RandomWeights(c, 1)
	if _, ok := src[LMHeadName]; ok {
		t.Error("tied model has lm_head")
	}
	again := RandomWeights(c, 1)
	if !slices.Equal(src["model.layers.1.mlp.down_proj.weight"].Data, again["model.layers.1.mlp.down_proj.weight"].Data) {
		t.Error("RandomWeights is not deterministic")
	}
	if shape, _ := c.ShapeOf("model.layers.0.self_attn.k_proj.bias"); !slices.Equal(shape, []int{6}) {
		t.Errorf("k bias shape %v", shape)
	}
	if _, err := Load(src, "model.layers.0.self_attn.q_proj.weight", []int{12, 8}); err != nil {
		t.Error(err)
	}
	if _, err := Load(src, "model.layers.0.self_attn.q_proj.weight", []int{8, 12}); err == nil || !strings.Contains(err.Error(), "[12 8]") {
		t.Errorf("shape mismatch: err = %v", err)
	}
	if _, err := Load(src, "nope", nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing tensor: err = %v", err)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	c := Variants()[4].Config
	m := c.Manifest()
	m.MaxSeqLen = 64
	back, err := ConfigFromManifest(&m, RandomWeights(c, 1))
	if err != nil {
		t.Fatal(err)
	}
	if back.AttentionBias || back.TieWordEmbeddings {
		t.Errorf("bias %v, tied %v", back.AttentionBias, back.TieWordEmbeddings)
	}
	q := Variants()[2].Config
	qm := q.Manifest()
	qm.MaxSeqLen = 64
	if qb, err := ConfigFromManifest(&qm, RandomWeights(q, 1)); err != nil || !qb.AttentionBias || !qb.TieWordEmbeddings {
		t.Errorf("qwen2: bias %v, tied %v, err %v", qb.AttentionBias, qb.TieWordEmbeddings, err)
	}
	if back.NumKVHeads != c.NumKVHeads || back.HeadDim != c.HeadDim || back.RopeScaling.Factor != 8 ||
		back.RMSNormEps != c.RMSNormEps || back.MaxPositionEmbeddings != 64 || !slices.Equal(back.EOSIDs, c.EOSIDs) {
		t.Errorf("%+v", back)
	}
	m.Architecture = "bloom"
	if _, err := ConfigFromManifest(&m, nil); err == nil || !strings.Contains(err.Error(), "bloom") {
		t.Errorf("err = %v", err)
	}
}
