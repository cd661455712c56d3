package hf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/export/synth"
)

func TestOpen(t *testing.T) {
	pad := 0
	tests := []struct {
		name    string
		spec    func() synth.Spec
		extra   func(t *testing.T, dir string)
		bos     int
		eos     []int
		pad     int
		files   []string
		ratios  int
		biasSet bool
	}{
		{name: "llama2", spec: synth.Llama2Like, bos: 1, eos: []int{2}, pad: -1, files: []string{"generation_config.json"}},
		{name: "qwen2 sharded with uls", spec: func() synth.Spec {
			s := synth.Qwen2Like()
			s.Shards = 2
			s.PadID = &pad
			s.ULS = map[string]any{"ratios": []float64{2, 3}, "default_schedule": "uls:2"}
			return s
		}, extra: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{}"), 0o644)
			os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte("{}"), 0o644)
		}, bos: 1, eos: []int{2, 3}, pad: 0, ratios: 2, biasSet: true,
			files: []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"}},
		{name: "generation config overrides", spec: synth.MistralLike, extra: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"bos_token_id":5,"eos_token_id":[6,7],"pad_token_id":8}`), 0o644)
		}, bos: 5, eos: []int{6, 7}, pad: 8, files: []string{"generation_config.json"}},
		{name: "no generation config", spec: synth.MistralLike, extra: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "generation_config.json"))
		}, bos: 1, eos: []int{2}, pad: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := tc.spec()
			if err := synth.Write(dir, s); err != nil {
				t.Fatal(err)
			}
			if tc.extra != nil {
				tc.extra(t, dir)
			}
			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.BOSID != tc.bos || !slices.Equal(c.EOSIDs, tc.eos) || c.PadID != tc.pad {
				t.Errorf("ids bos %d eos %v pad %d, want %d %v %d", c.BOSID, c.EOSIDs, c.PadID, tc.bos, tc.eos, tc.pad)
			}
			if !slices.Equal(c.Files, tc.files) {
				t.Errorf("files %v, want %v", c.Files, tc.files)
			}
			if len(c.ULS.Ratios) != tc.ratios {
				t.Errorf("uls %+v", c.ULS)
			}
			if c.Config.NumLayers != s.Layers || c.Config.NumKVHeads != s.KVHeads || c.Config.AttentionBias != tc.biasSet || c.Config.TieWordEmbeddings != s.Tied {
				t.Errorf("config %+v", c.Config)
			}
			data, shape, err := c.Tensor("model.norm.weight")
			if err != nil || len(data) != s.Hidden || shape[0] != s.Hidden {
				t.Errorf("norm: %v %v", shape, err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	editConfig := func(f func(m map[string]any)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, "config.json")
			var m map[string]any
			b, _ := os.ReadFile(p)
			json.Unmarshal(b, &m)
			f(m)
			b, _ = json.Marshal(m)
			os.WriteFile(p, b, 0o644)
		}
	}
	tests := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   string
	}{
		{"no config", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "config.json")) }, "config.json"},
		{"missing key", editConfig(func(m map[string]any) { delete(m, "hidden_size") }), "hidden_size"},
		{"unknown architecture", editConfig(func(m map[string]any) {
			m["model_type"] = "gpt2"
			m["architectures"] = []string{"GPT2LMHeadModel"}
		}), "unsupported architecture"},
		{"shape mismatch", editConfig(func(m map[string]any) { m["intermediate_size"] = 100 }), "shape"},
		{"bad uls", editConfig(func(m map[string]any) { m["uls"] = map[string]any{"ratios": []float64{0.5}} }), "uls ratio"},
		{"eos out of vocab", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id":100000}`), 0o644)
		}, "outside the vocabulary"},
		{"bad generation config", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id":"x"}`), 0o644)
		}, "eos_token_id"},
		{"missing tensor", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			safetensors.WriteFile(p, []safetensors.Tensor{{Name: "model.norm.weight", DType: safetensors.F32, Shape: []int{64}, Data: make([]float32, 64)}}, nil)
		}, "lack tensor"},
		{"truncated weights", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-100)
		}, "outside"},
		{"no weights", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "model.safetensors")) }, "no *.safetensors"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := synth.Write(dir, synth.Llama2Like()); err != nil {
				t.Fatal(err)
			}
			tc.mutate(t, dir)
			c, err := Open(dir)
			if err == nil {
				c.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
