package synth

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-llm/strata/export/safetensors"
)

func TestWritePresets(t *testing.T) {
	tests := []struct {
		name   string
		spec   Spec
		shards int
		dtype  safetensors.DType
	}{
		{"llama2", Llama2Like(), 1, safetensors.F32},
		{"qwen2-sharded", Qwen2Like(), 3, safetensors.BF16},
		{"mistral-f16", MistralLike(), 2, safetensors.F16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec
			s.Shards, s.DType = tc.shards, tc.dtype
			dir := t.TempDir()
			if err := Write(dir, s); err != nil {
				t.Fatal(err)
			}
			var cfg map[string]any
			b, err := os.ReadFile(filepath.Join(dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg["model_type"] != string(s.Family) || cfg["num_hidden_layers"].(float64) != float64(s.Layers) ||
				cfg["tie_word_embeddings"] != s.Tied || cfg["num_key_value_heads"].(float64) != float64(s.KVHeads) {
				t.Errorf("config = %v", cfg)
			}
			if _, err := os.Stat(filepath.Join(dir, "generation_config.json")); err != nil {
				t.Error(err)
			}
			_, err = os.Stat(filepath.Join(dir, safetensors.IndexFile))
			if (err == nil) != (tc.shards > 1) {
				t.Errorf("index present = %v for %d shards", err == nil, tc.shards)
			}
			c, err := safetensors.OpenCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			specs := s.Tensors()
			if got := len(c.Names()); got != len(specs) {
				t.Fatalf("%d tensors, want %d", got, len(specs))
			}
			if c.Has("lm_head.weight") == s.Tied {
				t.Errorf("lm_head present = %v with tied = %v", !s.Tied, s.Tied)
			}
			if c.Has("model.layers.0.self_attn.q_proj.bias") != s.QKVBias {
				t.Errorf("q bias present = %v, want %v", !s.QKVBias, s.QKVBias)
			}
			for _, sp := range specs {
				info, ok := c.Info(sp.Name)
				if !ok || info.DType != tc.dtype || len(info.Shape) != len(sp.Shape) {
					t.Fatalf("%s: %v %v", sp.Name, info, ok)
				}
				data, _, err := c.Tensor(sp.Name)
				if err != nil {
					t.Fatal(err)
				}
				want := s.Values(sp)
				for i := range data {
					if data[i] != safetensors.RoundTrip(want[i], tc.dtype) {
						t.Fatalf("%s[%d] = %g, want %g", sp.Name, i, data[i], want[i])
					}
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	s := MistralLike()
	if err := Write(a, s); err != nil {
		t.Fatal(err)
	}
	if err := Write(b, s); err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(filepath.Join(a, "model.safetensors"))
	y, _ := os.ReadFile(filepath.Join(b, "model.safetensors"))
	if len(x) == 0 || !bytes.Equal(x, y) {
		t.Fatal("same spec gave different bytes")
	}
	s.Seed++
	c := t.TempDir()
	Write(c, s)
	z, _ := os.ReadFile(filepath.Join(c, "model.safetensors"))
	if bytes.Equal(x, z) {
		t.Fatal("another seed gave the same bytes")
	}
}

func TestScale(t *testing.T) {
	s := Llama2Like()
	for _, sp := range s.Tensors() {
		v := s.Values(sp)
		var sum, sq float64
		for _, x := range v {
			sum += float64(x)
			sq += float64(x) * float64(x)
		}
		mean := sum / float64(len(v))
		std := math.Sqrt(sq/float64(len(v)) - mean*mean)
		ok := true
		switch {
		case len(sp.Shape) == 1 && (filepath.Ext(sp.Name) == ".weight"):
			ok = math.Abs(mean-1) < 0.05 && std < 0.1
		case sp.Name == "model.embed_tokens.weight" || sp.Name == "lm_head.weight":
			ok = std > 0.01 && std < 1
		default:
			ok = std >= 0.015 && std <= 0.11 && math.Abs(mean) < 0.02
		}
		if !ok {
			t.Errorf("%s: mean %.3f std %.3f", sp.Name, mean, std)
		}
	}
}

func TestPeaked(t *testing.T) {
	for _, s := range []Spec{Llama2Like(), Qwen2Like()} {
		s.Peaked = true
		d := s.Hidden
		emb := s.Values(safetensors.Spec{Name: "model.embed_tokens.weight", Shape: []int{s.Vocab, d}})
		head := emb
		if !s.Tied {
			head = s.Values(safetensors.Spec{Name: "lm_head.weight", Shape: []int{s.Vocab, d}})
		}
		for i := 0; i < s.Vocab; i++ {
			best, second, arg := math.Inf(-1), math.Inf(-1), -1
			for j := 0; j < s.Vocab; j++ {
				var dot float64
				for k := 0; k < d; k++ {
					dot += float64(emb[i*d+k]) * float64(head[j*d+k])
				}
				if dot > best {
					best, second, arg = dot, best, j
				} else if dot > second {
					second = dot
				}
			}
			if arg != s.Successor(i) || best-second < 3 {
				t.Fatalf("%s token %d: argmax %d (want %d), margin %.2f", s.Family, i, arg, s.Successor(i), best-second)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	mod := func(f func(*Spec)) Spec { s := Llama2Like(); f(&s); return s }
	bad := []Spec{
		mod(func(s *Spec) { s.Family = "gpt2" }),
		mod(func(s *Spec) { s.Layers = 0 }),
		mod(func(s *Spec) { s.KVHeads = 3 }),
		mod(func(s *Spec) { s.Hidden = 66 }),
		mod(func(s *Spec) { s.DType = safetensors.I64 }),
		mod(func(s *Spec) { s.EOSIDs = []int{9999} }),
		mod(func(s *Spec) { s.Shards = 1000 }),
	}
	for i, s := range bad {
		if err := Write(t.TempDir(), s); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
}

func TestULSConfig(t *testing.T) {
	s := Qwen2Like()
	s.ULS = map[string]any{"ratios": []float64{2}, "default_schedule": "uls:2"}
	dir := t.TempDir()
	if err := Write(dir, s); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ULS struct {
			Ratios          []float64 `json:"ratios"`
			DefaultSchedule string    `json:"default_schedule"`
		} `json:"uls"`
		EOS []int `json:"eos_token_id"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ULS.Ratios) != 1 || cfg.ULS.DefaultSchedule != "uls:2" || len(cfg.EOS) != 2 {
		t.Errorf("config = %+v", cfg)
	}
}

func TestWriteBloom(t *testing.T) {
	for _, unprefixed := range []bool{false, true} {
		s := BloomLike()
		s.Unprefixed = unprefixed
		dir := t.TempDir()
		if err := Write(dir, s); err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg["model_type"] != "bloom" || cfg["n_layer"].(float64) != float64(s.Layers) || cfg["n_head"].(float64) != 6 {
			t.Errorf("config = %v", cfg)
		}
		c, err := safetensors.OpenCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		emb := "transformer.word_embeddings.weight"
		if unprefixed {
			emb = "word_embeddings.weight"
		}
		if len(c.Names()) != 3+12*s.Layers+2 || !c.Has(emb) || c.Has("lm_head.weight") {
			t.Errorf("unprefixed=%v: tensors %v", unprefixed, c.Names())
		}
		data, _, err := c.Tensor(emb)
		if err != nil || data[0] != s.Values(safetensors.Spec{Name: "transformer.word_embeddings.weight", Shape: []int{s.Vocab, s.Hidden}})[0] {
			t.Errorf("unprefixed=%v: embedding values differ from the prefixed naming (%v)", unprefixed, err)
		}
		c.Close()
	}
	bad := BloomLike()
	bad.KVHeads = 2
	if err := Write(t.TempDir(), bad); err == nil {
		t.Error("BLOOM spec with KVHeads != Heads accepted")
	}
}

// TestSetFloat: one element changes, the others stay; a missing tensor or
// an element past its end is refused.
func TestSetFloat(t *testing.T) {
	dir := t.TempDir()
	s := Llama2Like()
	s.DType = safetensors.F32
	if err := Write(dir, s); err != nil {
		t.Fatal(err)
	}
	read := func() []float32 {
		f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		v, _, err := f.Tensor("model.norm.weight")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := read()
	if err := SetFloat(dir, "model.norm.weight", 3, 42); err != nil {
		t.Fatal(err)
	}
	after := read()
	for i := range before {
		want := before[i]
		if i == 3 {
			want = 42
		}
		if after[i] != want {
			t.Errorf("element %d = %g, want %g", i, after[i], want)
		}
	}
	for _, tc := range []struct {
		tensor string
		index  int
	}{{"model.nope", 0}, {"model.norm.weight", len(before)}, {"model.norm.weight", -1}} {
		if err := SetFloat(dir, tc.tensor, tc.index, 1); err == nil {
			t.Errorf("SetFloat(%s, %d) accepted", tc.tensor, tc.index)
		}
	}
}
