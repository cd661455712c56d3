package defaultmodel

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

type config struct {
	Architectures     []string `json:"architectures"`
	ModelType         string   `json:"model_type"`
	HiddenSize        int      `json:"hidden_size"`
	IntermediateSize  int      `json:"intermediate_size"`
	NumLayers         int      `json:"num_hidden_layers"`
	NumHeads          int      `json:"num_attention_heads"`
	NumKVHeads        int      `json:"num_key_value_heads"`
	VocabSize         int      `json:"vocab_size"`
	TieWordEmbeddings bool     `json:"tie_word_embeddings"`
	BOS               int      `json:"bos_token_id"`
	EOS               int      `json:"eos_token_id"`
	PromptTemplate    string   `json:"prompt_template"`
	ULS               *struct {
		Ratios          []int  `json:"ratios"`
		DefaultSchedule string `json:"default_schedule"`
	} `json:"uls"`
}

func TestWriteCheckpoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache", "default")
	for round := 0; round < 2; round++ { // the second round replaces existing files
		if err := WriteCheckpoint(dir); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(Files) {
		t.Errorf("%d entries written, want %d (no temporary files left)", len(entries), len(Files))
	}
	for _, name := range Files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || len(got) == 0 {
			t.Errorf("%s: written %d bytes differ from embedded %d", name, len(got), len(want))
		}
	}
	if _, err := ReadFile("missing.json"); err == nil {
		t.Error("ReadFile(missing.json): want an error")
	}
	// A path below a regular file cannot be created.
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	if err := WriteCheckpoint(filepath.Join(blocker, "sub")); err == nil {
		t.Error("WriteCheckpoint under a file: want an error")
	}
}

func TestCheckpointIsConsistent(t *testing.T) {
	raw, err := ReadFile("config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ModelType != "llama" || len(cfg.Architectures) != 1 || cfg.Architectures[0] != "LlamaForCausalLM" {
		t.Errorf("architecture %v / %s", cfg.Architectures, cfg.ModelType)
	}
	if cfg.PromptTemplate != "English: {en}\nSpanish:" || fmt.Sprintf(PromptTemplate, "{en}") != cfg.PromptTemplate {
		t.Errorf("config prompt_template %q does not match PromptTemplate %q", cfg.PromptTemplate, PromptTemplate)
	}
	if cfg.ULS == nil || cfg.ULS.DefaultSchedule != "uls:2" {
		t.Errorf("%s checkpoint without uls:2 in config.json: %+v", Checkpoint, cfg.ULS)
	}

	// The tokenizer's vocabulary and specials agree with the config.
	var tok struct {
		Model struct {
			Vocab map[string]int `json:"vocab"`
		} `json:"model"`
		PostProcessor struct {
			Type string `json:"type"`
		} `json:"post_processor"`
	}
	raw, err = ReadFile("tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &tok); err != nil {
		t.Fatal(err)
	}
	if len(tok.Model.Vocab) != cfg.VocabSize || tok.Model.Vocab["<s>"] != cfg.BOS || tok.Model.Vocab["</s>"] != cfg.EOS {
		t.Errorf("tokenizer: %d tokens, <s>=%d </s>=%d; config: %d, %d, %d",
			len(tok.Model.Vocab), tok.Model.Vocab["<s>"], tok.Model.Vocab["</s>"], cfg.VocabSize, cfg.BOS, cfg.EOS)
	}
	if tok.PostProcessor.Type != "TemplateProcessing" {
		t.Errorf("post_processor %q, want TemplateProcessing (adds <s>)", tok.PostProcessor.Type)
	}

	// Every tensor of the config is present in F16 with the right shape.
	raw, err = ReadFile("model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	type tensor struct {
		DType   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	headDim := cfg.HiddenSize / cfg.NumHeads
	want := map[string][]int{
		"model.embed_tokens.weight": {cfg.VocabSize, cfg.HiddenSize},
		"model.norm.weight":         {cfg.HiddenSize},
	}
	if !cfg.TieWordEmbeddings {
		want["lm_head.weight"] = []int{cfg.VocabSize, cfg.HiddenSize}
	}
	for l := 0; l < cfg.NumLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		want[p+"input_layernorm.weight"] = []int{cfg.HiddenSize}
		want[p+"post_attention_layernorm.weight"] = []int{cfg.HiddenSize}
		want[p+"self_attn.q_proj.weight"] = []int{cfg.NumHeads * headDim, cfg.HiddenSize}
		want[p+"self_attn.k_proj.weight"] = []int{cfg.NumKVHeads * headDim, cfg.HiddenSize}
		want[p+"self_attn.v_proj.weight"] = []int{cfg.NumKVHeads * headDim, cfg.HiddenSize}
		want[p+"self_attn.o_proj.weight"] = []int{cfg.HiddenSize, cfg.NumHeads * headDim}
		want[p+"mlp.gate_proj.weight"] = []int{cfg.IntermediateSize, cfg.HiddenSize}
		want[p+"mlp.up_proj.weight"] = []int{cfg.IntermediateSize, cfg.HiddenSize}
		want[p+"mlp.down_proj.weight"] = []int{cfg.HiddenSize, cfg.IntermediateSize}
	}
	if len(header)-1 != len(want) {
		t.Errorf("%d tensors, want %d", len(header)-1, len(want))
	}
	var end int64
	for name, shape := range want {
		var ti tensor
		if err := json.Unmarshal(header[name], &ti); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		elems := int64(1)
		for _, d := range ti.Shape {
			elems *= int64(d)
		}
		if ti.DType != "F16" || fmt.Sprint(ti.Shape) != fmt.Sprint(shape) || ti.Offsets[1]-ti.Offsets[0] != 2*elems {
			t.Errorf("%s: %s %v %v, want F16 %v", name, ti.DType, ti.Shape, ti.Offsets, shape)
		}
		end = max(end, ti.Offsets[1])
	}
	if int64(len(raw)) != 8+int64(n)+end {
		t.Errorf("file is %d bytes, header says %d", len(raw), 8+int64(n)+end)
	}
}

func TestFormatPrompt(t *testing.T) {
	tests := []struct{ in, want string }{
		{"In the beginning God created the heaven and the earth.", "English: In the beginning God created the heaven and the earth.\nSpanish:"},
		{"  two\nlines\t here ", "English: two lines here\nSpanish:"},
		{"", "English: \nSpanish:"},
	}
	for _, tc := range tests {
		if got := FormatPrompt(tc.in); got != tc.want {
			t.Errorf("FormatPrompt(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(Version) {
		t.Errorf("Version = %q, want 12 hex digits", Version)
	}
	if version() != Version {
		t.Error("Version is not stable")
	}
}
