// Package synth writes deterministic synthetic checkpoints in the real
// Hugging Face layout (config.json, generation_config.json, model.safetensors
// or sharded model-0000N-of-0000M.safetensors with an index) for tests and
// benchmarks. Weights are random with a realistic scale, generated one tensor
// at a time from the seed and the tensor name, so large checkpoints stream.
package synth

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-llm/strata/export/safetensors"
)

// Family names a model family; it picks config.json's model_type and architectures.
type Family string

// Supported families.
const (
	Llama   Family = "llama"
	Qwen2   Family = "qwen2"
	Mistral Family = "mistral"
	// Bloom is BloomForCausalLM: fused per-head query_key_value, LayerNorms
	// with biases, a 4×hidden GELU MLP, ALiBi and a tied head (KVHeads must
	// equal Heads, Intermediate 4×Hidden; MaxPos and RopeTheta are unused).
	Bloom Family = "bloom"
)

// Spec describes a synthetic checkpoint.
type Spec struct {
	Family       Family
	Layers       int
	Hidden       int
	Heads        int
	KVHeads      int
	HeadDim      int // 0: Hidden / Heads
	Intermediate int
	Vocab        int
	MaxPos       int
	RopeTheta    float64
	NormEps      float64
	QKVBias      bool // q/k/v projections have biases (Qwen2)
	Tied         bool // lm_head shares the embedding (no lm_head.weight)
	DType        safetensors.DType
	Shards       int // 0 or 1: model.safetensors; >1: sharded with an index
	Seed         uint64
	// Peaked makes greedy decoding robust: the head maps each token's
	// embedding to a fixed successor with a wide logit margin, and the layers'
	// output projections are scaled down, so small weight errors (int4) keep
	// the argmax.
	Peaked bool
	BOSID  int
	EOSIDs []int // written as a list when it has more than one element
	PadID  *int
	// ProjScale multiplies the projections' standard deviation (0: 1). Large
	// values let the layers, not a tied embedding's match with itself, pick
	// the greedy tokens.
	ProjScale float64
	// Unprefixed writes BLOOM tensors without the "transformer." prefix, as
	// checkpoints saved from BloomModel (the original bigscience ones) do.
	Unprefixed bool
	// ULS, when set, is written as config.json's "uls" object, as the ULS
	// training scripts do, e.g. {"ratios":[2],"default_schedule":"uls:2"}.
	ULS map[string]any
}

// Llama2Like is a small LLaMA-2 style spec: multi-head attention, untied head.
func Llama2Like() Spec {
	return Spec{Family: Llama, Layers: 4, Hidden: 64, Heads: 4, KVHeads: 4, Intermediate: 128,
		Vocab: 256, MaxPos: 128, RopeTheta: 10000, NormEps: 1e-5, DType: safetensors.F32,
		Seed: 1, BOSID: 1, EOSIDs: []int{2}}
}

// Qwen2Like is a small Qwen2 style spec: q/k/v biases, tied embeddings, GQA,
// several EOS ids.
func Qwen2Like() Spec {
	return Spec{Family: Qwen2, Layers: 3, Hidden: 64, Heads: 4, KVHeads: 2, Intermediate: 160,
		Vocab: 300, MaxPos: 256, RopeTheta: 1000000, NormEps: 1e-6, QKVBias: true, Tied: true,
		DType: safetensors.BF16, Seed: 2, BOSID: 1, EOSIDs: []int{2, 3}}
}

// MistralLike is a small Mistral style spec: grouped-query attention (8 heads
// over 2 KV heads), untied head.
//
// Every preset has a head size of 16, the smallest ONNX Runtime's
// GroupQueryAttention accepts.
func MistralLike() Spec {
	return Spec{Family: Mistral, Layers: 4, Hidden: 128, Heads: 8, KVHeads: 2, Intermediate: 192,
		Vocab: 320, MaxPos: 256, RopeTheta: 10000, NormEps: 1e-5, DType: safetensors.F16,
		Seed: 3, BOSID: 1, EOSIDs: []int{2}}
}

// Bench is the benchmark shape: 24 layers, hidden 1024, 16 heads over 4 KV
// heads (head size 64), intermediate 2816, vocabulary 32000 (about 340 M
// parameters), stored bf16 as most released checkpoints are.
func Bench() Spec {
	return Spec{Family: Llama, Layers: 24, Hidden: 1024, Heads: 16, KVHeads: 4, Intermediate: 2816,
		Vocab: 32000, MaxPos: 4096, RopeTheta: 10000, NormEps: 1e-5, DType: safetensors.BF16, Shards: 2,
		Seed: 20240410, BOSID: 1, EOSIDs: []int{2}}
}

// TinyLlama is TinyLlama-1.1B's shape: 22 layers, hidden 2048, 32 heads over
// 4 KV heads, intermediate 5632, vocabulary 32000.
func TinyLlama() Spec {
	s := Bench()
	s.Layers, s.Hidden, s.Heads, s.KVHeads, s.Intermediate = 22, 2048, 32, 4, 5632
	return s
}

// Shapes maps the shape names of `strata synth` to their specs: tiny (a
// 4-layer LLaMA-2 style model of a few hundred KB), bench and tinyllama.
func Shapes() map[string]Spec {
	return map[string]Spec{"tiny": Llama2Like(), "bench": Bench(), "tinyllama": TinyLlama()}
}

// BloomLike is a small BLOOM spec with 6 heads, not a power of two, so
// both branches of ALiBi's slope formula are used.
func BloomLike() Spec {
	return Spec{Family: Bloom, Layers: 4, Hidden: 96, Heads: 6, KVHeads: 6, Intermediate: 384,
		Vocab: 256, NormEps: 1e-5, Tied: true, DType: safetensors.F32, Seed: 4, BOSID: 1, EOSIDs: []int{2}}
}

// Presets maps preset names to their specs.
func Presets() map[string]Spec {
	return map[string]Spec{"llama2": Llama2Like(), "qwen2": Qwen2Like(), "mistral": MistralLike(), "bloom": BloomLike()}
}

// headDim returns the per-head dimension.
func (s Spec) headDim() int {
	if s.HeadDim > 0 {
		return s.HeadDim
	}
	if s.Heads == 0 {
		return 0
	}
	return s.Hidden / s.Heads
}

// Validate checks that the sizes describe a real model.
func (s Spec) Validate() error {
	maxPos := s.MaxPos
	switch s.Family {
	case Llama, Qwen2, Mistral:
	case Bloom:
		if s.KVHeads != s.Heads || s.Intermediate != 4*s.Hidden || !s.Tied || s.HeadDim != 0 {
			return fmt.Errorf("synth: a BLOOM spec needs KVHeads = Heads, Intermediate = 4×Hidden, Tied and no HeadDim")
		}
		maxPos = 1 // no position table
	default:
		return fmt.Errorf("synth: unknown family %q", s.Family)
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"Layers", s.Layers}, {"Hidden", s.Hidden}, {"Heads", s.Heads}, {"KVHeads", s.KVHeads},
		{"Intermediate", s.Intermediate}, {"Vocab", s.Vocab}, {"MaxPos", maxPos}} {
		if c.v <= 0 {
			return fmt.Errorf("synth: %s = %d must be positive", c.name, c.v)
		}
	}
	if s.Heads%s.KVHeads != 0 {
		return fmt.Errorf("synth: Heads %d is not a multiple of KVHeads %d", s.Heads, s.KVHeads)
	}
	if s.HeadDim == 0 && s.Hidden%s.Heads != 0 {
		return fmt.Errorf("synth: Hidden %d is not a multiple of Heads %d", s.Hidden, s.Heads)
	}
	if s.headDim()%2 != 0 {
		return fmt.Errorf("synth: head dim %d must be even for rotary embeddings", s.headDim())
	}
	if !s.DType.Float() {
		return fmt.Errorf("synth: dtype %q is not F32, F16 or BF16", s.DType)
	}
	for _, id := range append([]int{s.BOSID}, s.EOSIDs...) {
		if id < 0 || id >= s.Vocab {
			return fmt.Errorf("synth: special token id %d is outside the vocabulary %d", id, s.Vocab)
		}
	}
	return nil
}

// Tensors lists the checkpoint's tensors in Hugging Face names and layout
// ([out, in] for projections), in the order they are written.
func (s Spec) Tensors() []safetensors.Spec {
	d, q, kv := s.Hidden, s.Heads*s.headDim(), s.KVHeads*s.headDim()
	t := func(name string, shape ...int) safetensors.Spec {
		return safetensors.Spec{Name: name, DType: s.DType, Shape: shape}
	}
	if s.Family == Bloom {
		return s.bloomTensors(t)
	}
	out := []safetensors.Spec{t("model.embed_tokens.weight", s.Vocab, d)}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		out = append(out,
			t(p+"input_layernorm.weight", d),
			t(p+"self_attn.q_proj.weight", q, d),
			t(p+"self_attn.k_proj.weight", kv, d),
			t(p+"self_attn.v_proj.weight", kv, d))
		if s.QKVBias {
			out = append(out, t(p+"self_attn.q_proj.bias", q), t(p+"self_attn.k_proj.bias", kv), t(p+"self_attn.v_proj.bias", kv))
		}
		out = append(out,
			t(p+"self_attn.o_proj.weight", d, q),
			t(p+"post_attention_layernorm.weight", d),
			t(p+"mlp.gate_proj.weight", s.Intermediate, d),
			t(p+"mlp.up_proj.weight", s.Intermediate, d),
			t(p+"mlp.down_proj.weight", d, s.Intermediate))
	}
	out = append(out, t("model.norm.weight", d))
	if !s.Tied {
		out = append(out, t("lm_head.weight", s.Vocab, d))
	}
	return out
}

// bloomTensors lists a BloomForCausalLM checkpoint's tensors.
func (s Spec) bloomTensors(t func(string, ...int) safetensors.Spec) []safetensors.Spec {
	pre := "transformer."
	if s.Unprefixed {
		pre = ""
	}
	d, f := s.Hidden, s.Intermediate
	out := []safetensors.Spec{t(pre+"word_embeddings.weight", s.Vocab, d),
		t(pre+"word_embeddings_layernorm.weight", d), t(pre+"word_embeddings_layernorm.bias", d)}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("%sh.%d.", pre, l)
		out = append(out,
			t(p+"input_layernorm.weight", d), t(p+"input_layernorm.bias", d),
			t(p+"self_attention.query_key_value.weight", 3*d, d), t(p+"self_attention.query_key_value.bias", 3*d),
			t(p+"self_attention.dense.weight", d, d), t(p+"self_attention.dense.bias", d),
			t(p+"post_attention_layernorm.weight", d), t(p+"post_attention_layernorm.bias", d),
			t(p+"mlp.dense_h_to_4h.weight", f, d), t(p+"mlp.dense_h_to_4h.bias", f),
			t(p+"mlp.dense_4h_to_h.weight", d, f), t(p+"mlp.dense_4h_to_h.bias", d))
	}
	return append(out, t(pre+"ln_f.weight", d), t(pre+"ln_f.bias", d))
}

// Bytes returns the total size of the stored weights.
func (s Spec) Bytes() int64 {
	var n int64
	for _, t := range s.Tensors() {
		n += numel(t.Shape) * int64(s.DType.Size())
	}
	return n
}

func numel(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

// rng returns the generator of one tensor: the same seed and name always
// give the same values, whatever else the checkpoint holds.
func (s Spec) rng(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(strings.TrimPrefix(name, "transformer."))) // the same values under BLOOM's two namings
	return rand.New(rand.NewPCG(s.Seed, h.Sum64()))
}

func normal(r *rand.Rand, n int64, mean, std float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(mean + std*r.NormFloat64())
	}
	return out
}

// Values returns the float32 values of one tensor (before rounding to DType).
func (s Spec) Values(t safetensors.Spec) []float32 {
	n := numel(t.Shape)
	r := s.rng(t.Name)
	name := t.Name
	switch {
	case hasSuffix(name, "layernorm.weight"), name == "model.norm.weight", hasSuffix(name, "ln_f.weight"):
		return normal(r, n, 1, 0.05)
	case hasSuffix(name, ".bias"):
		return normal(r, n, 0, 0.05)
	case name == "model.embed_tokens.weight", hasSuffix(name, "word_embeddings.weight"):
		return normal(r, n, 0, 0.5)
	case name == "lm_head.weight":
		if s.Peaked {
			return s.peakedHead()
		}
	}
	// A projection [out, in]: std ~ 0.5/sqrt(in), clamped to a realistic 0.02..0.1.
	in := t.Shape[len(t.Shape)-1]
	std := math.Min(0.1, math.Max(0.02, 0.5/math.Sqrt(float64(in))))
	if s.ProjScale > 0 {
		std *= s.ProjScale
	}
	if s.Peaked && (hasSuffix(name, "o_proj.weight") || hasSuffix(name, "down_proj.weight") ||
		hasSuffix(name, "self_attention.dense.weight") || hasSuffix(name, "dense_4h_to_h.weight")) {
		std *= 0.25
	}
	return normal(r, n, 0, std)
}

// peakedHead returns an lm_head whose row for token Successor(i) is the
// embedding of token i, scaled so greedy logits are well separated.
func (s Spec) peakedHead() []float32 {
	emb := s.Values(safetensors.Spec{Name: "model.embed_tokens.weight", Shape: []int{s.Vocab, s.Hidden}})
	out := make([]float32, len(emb))
	d := s.Hidden
	for i := 0; i < s.Vocab; i++ {
		j := s.Successor(i)
		for k := 0; k < d; k++ {
			out[j*d+k] = emb[i*d+k]
		}
	}
	return out
}

// Successor is the token a peaked, untied model predicts most strongly after
// token i (a fixed permutation of the vocabulary).
func (s Spec) Successor(i int) int {
	if s.Tied {
		return i
	}
	return (i + 7) % s.Vocab
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

// Write creates dir (if needed) and writes the checkpoint into it.
func Write(dir string, s Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), s.Config()); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "generation_config.json"), s.GenerationConfig()); err != nil {
		return err
	}
	return s.writeWeights(dir)
}

// Config returns the content of config.json as Hugging Face writes it.
func (s Spec) Config() map[string]any {
	if s.Family == Bloom {
		return s.bloomConfig()
	}
	arch := map[Family]string{Llama: "LlamaForCausalLM", Qwen2: "Qwen2ForCausalLM", Mistral: "MistralForCausalLM"}[s.Family]
	cfg := map[string]any{
		"architectures":           []string{arch},
		"model_type":              string(s.Family),
		"hidden_size":             s.Hidden,
		"intermediate_size":       s.Intermediate,
		"num_hidden_layers":       s.Layers,
		"num_attention_heads":     s.Heads,
		"num_key_value_heads":     s.KVHeads,
		"max_position_embeddings": s.MaxPos,
		"rms_norm_eps":            s.NormEps,
		"rope_theta":              s.RopeTheta,
		"vocab_size":              s.Vocab,
		"tie_word_embeddings":     s.Tied,
		"hidden_act":              "silu",
		"initializer_range":       0.02,
		"use_cache":               true,
		"bos_token_id":            s.BOSID,
		"eos_token_id":            s.eosValue(),
		"torch_dtype":             map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}[s.DType],
	}
	if s.HeadDim > 0 {
		cfg["head_dim"] = s.HeadDim
	}
	switch s.Family {
	case Llama:
		cfg["attention_bias"] = s.QKVBias
		cfg["mlp_bias"] = false
		cfg["pretraining_tp"] = 1
	case Qwen2:
		cfg["use_sliding_window"] = false
		cfg["sliding_window"] = s.MaxPos
		cfg["max_window_layers"] = s.Layers
	case Mistral:
		cfg["sliding_window"] = nil
	}
	if s.ULS != nil {
		cfg["uls"] = s.ULS
	}
	return cfg
}

// bloomConfig is a BloomForCausalLM config.json, with BloomConfig's own key
// names (n_layer, n_head).
func (s Spec) bloomConfig() map[string]any {
	cfg := map[string]any{
		"architectures":      []string{"BloomForCausalLM"},
		"model_type":         "bloom",
		"n_layer":            s.Layers,
		"n_head":             s.Heads,
		"hidden_size":        s.Hidden,
		"vocab_size":         s.Vocab,
		"layer_norm_epsilon": s.NormEps,
		"apply_residual_connection_post_layernorm": false,
		"attention_dropout":                        0.0,
		"hidden_dropout":                           0.0,
		"initializer_range":                        0.02,
		"pretraining_tp":                           1,
		"slow_but_exact":                           false,
		"use_cache":                                true,
		"bos_token_id":                             s.BOSID,
		"eos_token_id":                             s.eosValue(),
		"torch_dtype":                              map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}[s.DType],
	}
	if s.ULS != nil {
		cfg["uls"] = s.ULS
	}
	return cfg
}

func (s Spec) eosValue() any {
	if len(s.EOSIDs) == 1 {
		return s.EOSIDs[0]
	}
	return s.EOSIDs
}

// GenerationConfig returns the content of generation_config.json.
func (s Spec) GenerationConfig() map[string]any {
	g := map[string]any{"bos_token_id": s.BOSID, "eos_token_id": s.eosValue(), "_from_model_config": true}
	if s.PadID != nil {
		g["pad_token_id"] = *s.PadID
	}
	return g
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("synth: %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// writeWeights writes the tensors, split into s.Shards files of about equal size.
func (s Spec) writeWeights(dir string) error {
	tensors := s.Tensors()
	shards := max(1, s.Shards)
	if shards > len(tensors) {
		return fmt.Errorf("synth: %d shards for %d tensors", shards, len(tensors))
	}
	// Cut the tensor list into contiguous groups of about total/shards bytes,
	// leaving at least one tensor for every remaining shard.
	total := s.Bytes()
	var groups [][]safetensors.Spec
	var cur []safetensors.Spec
	var acc int64
	for i, t := range tensors {
		cur = append(cur, t)
		acc += numel(t.Shape) * int64(s.DType.Size())
		left := len(tensors) - i - 1
		need := shards - len(groups) - 1
		if need > 0 && (acc*int64(shards) >= total*int64(len(groups)+1) || left == need) {
			groups = append(groups, cur)
			cur = nil
		}
	}
	groups = append(groups, cur)
	meta := map[string]string{"format": "pt"}
	index := safetensors.Index{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	for g, group := range groups {
		name := "model.safetensors"
		if shards > 1 {
			name = fmt.Sprintf("model-%05d-of-%05d.safetensors", g+1, shards)
		}
		w, err := safetensors.Create(filepath.Join(dir, name), group, meta)
		if err != nil {
			return fmt.Errorf("synth: %w", err)
		}
		for _, t := range group {
			if err := w.Write(t.Name, s.Values(t)); err != nil {
				w.Close()
				return fmt.Errorf("synth: %w", err)
			}
			index.WeightMap[t.Name] = name
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
	}
	if shards > 1 {
		return writeJSON(filepath.Join(dir, safetensors.IndexFile), index)
	}
	return nil
}

// SetFloat overwrites element index of the F32 tensor named tensor in
// dir/model.safetensors with v, in place: for making broken checkpoints
// (a NaN weight) in tests.
func SetFloat(dir, tensor string, index int, v float32) error {
	path := filepath.Join(dir, "model.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		return err
	}
	info, ok := f.Info(tensor)
	start := f.Header().DataStart
	f.Close()
	if !ok || info.DType != safetensors.F32 || index < 0 || int64(4*index) >= info.End-info.Begin {
		return fmt.Errorf("%s: no F32 tensor %s with an element %d", path, tensor, index)
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
	if _, err := w.WriteAt(b[:], start+info.Begin+int64(4*index)); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
