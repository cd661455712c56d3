// Package llama is the LLaMA architecture family (LLaMA 1/2/3, Mistral,
// Qwen2): its configuration, the per-layer ONNX graphs of a strata model
// package (docs/design.md, "The package format") and a plain-Go reference forward pass used to
// verify them.
package llama

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/strata-llm/strata/models/manifest"
)

// Family is the architecture family name written to manifest.json.
const Family = "llama"

// Config is the shape and numerics of a LLaMA-family model.
type Config struct {
	// ModelType is the Hugging Face model_type: "llama", "mistral" or "qwen2".
	ModelType             string
	NumLayers             int
	HiddenSize            int
	NumHeads              int
	NumKVHeads            int
	HeadDim               int // may differ from HiddenSize/NumHeads
	IntermediateSize      int
	VocabSize             int
	MaxPositionEmbeddings int
	RopeTheta             float64
	// RopeScaling is nil for plain RoPE, else "linear" or "llama3" scaling.
	RopeScaling       *manifest.RopeScaling
	RMSNormEps        float64
	TieWordEmbeddings bool
	// AttentionBias adds biases to the q, k and v projections (Qwen2).
	AttentionBias bool
	BOSID         int // -1 when the model has none
	EOSIDs        []int
}

// MaxPositions bounds max_position_embeddings: positions are int32 in the
// graphs. The KV buffer length actually allocated is bounded separately
// (manifest.MaxSeqLen).
const MaxPositions = 1 << 30

// maxTensorElems bounds the element count of any one weight matrix (2^36
// float32 values are 256 GiB), so products of in-range sizes cannot ask for
// more.
const maxTensorElems = 1 << 36

// Validate checks that the sizes are positive, within strata's limits
// (manifest.MaxLayers, manifest.MaxDim, manifest.MaxVocab, MaxPositions) and
// consistent. It names the config.json key of the first bad size.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
		max  int
	}{
		{"num_hidden_layers", c.NumLayers, manifest.MaxLayers}, {"hidden_size", c.HiddenSize, manifest.MaxDim},
		{"num_attention_heads", c.NumHeads, manifest.MaxDim}, {"num_key_value_heads", c.NumKVHeads, manifest.MaxDim},
		{"head_dim", c.HeadDim, manifest.MaxDim}, {"intermediate_size", c.IntermediateSize, manifest.MaxDim},
		{"vocab_size", c.VocabSize, manifest.MaxVocab}, {"max_position_embeddings", c.MaxPositionEmbeddings, MaxPositions},
	} {
		if f.v <= 0 || f.v > f.max {
			return fmt.Errorf("config %s = %d is out of range (1..%d)", f.name, f.v, f.max)
		}
	}
	for _, p := range []struct {
		name string
		a, b int
	}{
		{"num_attention_heads × head_dim", c.NumHeads, c.HeadDim},
		{"num_key_value_heads × head_dim", c.NumKVHeads, c.HeadDim},
	} {
		if int64(p.a)*int64(p.b) > manifest.MaxDim {
			return fmt.Errorf("config %s = %d is out of range (1..%d)", p.name, int64(p.a)*int64(p.b), manifest.MaxDim)
		}
	}
	for _, p := range []struct {
		name string
		a, b int
	}{
		{"vocab_size × hidden_size", c.VocabSize, c.HiddenSize},
		{"intermediate_size × hidden_size", c.IntermediateSize, c.HiddenSize},
	} {
		if n := int64(p.a) * int64(p.b); n > maxTensorElems {
			return fmt.Errorf("config %s = %d values in one weight matrix is above the limit of %d", p.name, n, int64(maxTensorElems))
		}
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("config num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumHeads, c.NumKVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("config head_dim %d is odd; rotary embeddings need an even head size", c.HeadDim)
	}
	if !(c.RopeTheta > 0) {
		return fmt.Errorf("config rope_theta %v, want > 0", c.RopeTheta)
	}
	if !(c.RMSNormEps > 0) {
		return fmt.Errorf("config rms_norm_eps %v, want > 0", c.RMSNormEps)
	}
	if s := c.RopeScaling; s != nil {
		switch s.Type {
		case "linear":
			if !(s.Factor > 0) {
				return fmt.Errorf("config rope_scaling factor %v, want > 0", s.Factor)
			}
		case "llama3":
			if !(s.Factor > 0) || !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || s.OriginalMaxPositionEmbeddings <= 0 {
				return fmt.Errorf("config rope_scaling llama3: factor %v, low_freq_factor %v, high_freq_factor %v, original_max_position_embeddings %d are inconsistent",
					s.Factor, s.LowFreqFactor, s.HighFreqFactor, s.OriginalMaxPositionEmbeddings)
			}
		default:
			return fmt.Errorf("config rope_scaling type %q is not supported (want linear or llama3)", s.Type)
		}
	}
	return nil
}

// Manifest fills the model fields of a package manifest from the config
// (files, dtype, max_seq_len, pad id and ULS are the exporter's).
func (c Config) Manifest() manifest.Manifest {
	return manifest.Manifest{
		Format:           manifest.Format,
		Architecture:     Family,
		NumLayers:        c.NumLayers,
		HiddenSize:       c.HiddenSize,
		NumHeads:         c.NumHeads,
		NumKVHeads:       c.NumKVHeads,
		HeadDim:          c.HeadDim,
		IntermediateSize: c.IntermediateSize,
		VocabSize:        c.VocabSize,
		Rope:             manifest.Rope{Theta: c.RopeTheta, Scaling: c.RopeScaling},
		NormEps:          c.RMSNormEps,
		BOSID:            c.BOSID,
		EOSIDs:           append([]int(nil), c.EOSIDs...),
	}
}

// ConfigFromManifest rebuilds the Config of an exported llama-family
// package (for the reference forward of `strata verify`). The manifest does
// not record tied embeddings or q/k/v biases, so they are read off src (the
// package's reference weights): biases when layer 0 has a q_proj bias, tied
// when there is no lm_head.weight. A nil src means neither.
func ConfigFromManifest(m *manifest.Manifest, src WeightSource) (Config, error) {
	if m.Architecture != Family {
		return Config{}, fmt.Errorf("model package architecture %q is not %q", m.Architecture, Family)
	}
	c := Config{
		ModelType:             Family,
		NumLayers:             m.NumLayers,
		HiddenSize:            m.HiddenSize,
		NumHeads:              m.NumHeads,
		NumKVHeads:            m.NumKVHeads,
		HeadDim:               m.HeadDim,
		IntermediateSize:      m.IntermediateSize,
		VocabSize:             m.VocabSize,
		MaxPositionEmbeddings: m.MaxSeqLen,
		RopeTheta:             m.Rope.Theta,
		RopeScaling:           m.Rope.Scaling,
		RMSNormEps:            m.NormEps,
		BOSID:                 m.BOSID,
		EOSIDs:                append([]int(nil), m.EOSIDs...),
	}
	if src != nil {
		_, _, err := src.Tensor(LayerPrefix(0) + "self_attn.q_proj.bias")
		c.AttentionBias = err == nil
		_, _, err = src.Tensor(LMHeadName)
		c.TieWordEmbeddings = err != nil
	}
	return c, c.Validate()
}

// ErrUnsupportedArchitecture is returned (wrapped) by ParseHFConfig for a
// config.json of another family.
var ErrUnsupportedArchitecture = errors.New("unsupported architecture")

// architectures maps HF "architectures" entries to model types.
var architectures = map[string]string{
	"LlamaForCausalLM":   "llama",
	"MistralForCausalLM": "mistral",
	"Qwen2ForCausalLM":   "qwen2",
}

// hfConfig is the subset of config.json we read; pointers detect absent keys.
type hfConfig struct {
	ModelType             string          `json:"model_type"`
	Architectures         []string        `json:"architectures"`
	NumLayers             *int            `json:"num_hidden_layers"`
	HiddenSize            *int            `json:"hidden_size"`
	NumHeads              *int            `json:"num_attention_heads"`
	NumKVHeads            *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	IntermediateSize      *int            `json:"intermediate_size"`
	VocabSize             *int            `json:"vocab_size"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	AttentionBias         *bool           `json:"attention_bias"`
	MLPBias               *bool           `json:"mlp_bias"`
	HiddenAct             string          `json:"hidden_act"`
	BOSID                 json.RawMessage `json:"bos_token_id"`
	EOSID                 json.RawMessage `json:"eos_token_id"`
}

// ParseHFConfig reads a Hugging Face config.json of a LlamaForCausalLM,
// MistralForCausalLM or Qwen2ForCausalLM checkpoint. Keys that
// transformers gives defaults (num_key_value_heads, head_dim, rope_theta,
// rms_norm_eps, max_position_embeddings, tie_word_embeddings) get the same
// defaults here; the size keys are required.
func ParseHFConfig(data []byte) (Config, error) {
	var h hfConfig
	if err := json.Unmarshal(data, &h); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	c := Config{ModelType: h.ModelType}
	if c.ModelType == "" || !knownType(c.ModelType) {
		c.ModelType = ""
		for _, a := range h.Architectures {
			if t, ok := architectures[a]; ok {
				c.ModelType = t
				break
			}
		}
	}
	if c.ModelType == "" {
		got := h.ModelType
		if len(h.Architectures) > 0 {
			got = strings.Join(h.Architectures, ", ")
		}
		if got == "" {
			got = "none given"
		}
		return Config{}, fmt.Errorf("config.json: %w (%s); the llama family reads LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM", ErrUnsupportedArchitecture, got)
	}
	required := []struct {
		key string
		src *int
		dst *int
	}{
		{"num_hidden_layers", h.NumLayers, &c.NumLayers},
		{"hidden_size", h.HiddenSize, &c.HiddenSize},
		{"num_attention_heads", h.NumHeads, &c.NumHeads},
		{"intermediate_size", h.IntermediateSize, &c.IntermediateSize},
		{"vocab_size", h.VocabSize, &c.VocabSize},
	}
	for _, r := range required {
		if r.src == nil {
			return Config{}, fmt.Errorf("config.json: missing required key %q", r.key)
		}
		*r.dst = *r.src
	}
	if h.HiddenAct != "" && h.HiddenAct != "silu" {
		return Config{}, fmt.Errorf("config.json: hidden_act %q is not supported (want silu)", h.HiddenAct)
	}
	if h.MLPBias != nil && *h.MLPBias {
		return Config{}, errors.New("config.json: mlp_bias = true is not supported")
	}
	c.NumKVHeads = deref(h.NumKVHeads, c.NumHeads)
	if c.NumHeads > 0 {
		c.HeadDim = deref(h.HeadDim, c.HiddenSize/c.NumHeads)
	}
	defaultMaxPos := map[string]int{"llama": 2048, "mistral": 4096 * 32, "qwen2": 32768}[c.ModelType]
	c.MaxPositionEmbeddings = deref(h.MaxPositionEmbeddings, defaultMaxPos)
	c.RopeTheta = deref(h.RopeTheta, 10000)
	c.RMSNormEps = deref(h.RMSNormEps, 1e-6)
	c.TieWordEmbeddings = deref(h.TieWordEmbeddings, false)
	switch c.ModelType {
	case "qwen2":
		c.AttentionBias = true
	case "llama":
		c.AttentionBias = deref(h.AttentionBias, false)
	}
	var err error
	if c.RopeScaling, err = parseRopeScaling(h.RopeScaling); err != nil {
		return Config{}, err
	}
	bos, err := ParseTokenIDs("bos_token_id", h.BOSID)
	if err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	c.BOSID = -1
	if len(bos) > 0 {
		c.BOSID = bos[0]
	}
	if c.EOSIDs, err = ParseTokenIDs("eos_token_id", h.EOSID); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	return c, nil
}

func knownType(t string) bool {
	for _, v := range architectures {
		if v == t {
			return true
		}
	}
	return false
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// ParseTokenIDs reads a Hugging Face token-id entry (manifest.ParseTokenIDs).
func ParseTokenIDs(key string, raw json.RawMessage) ([]int, error) {
	return manifest.ParseTokenIDs(key, raw)
}

func parseRopeScaling(raw json.RawMessage) (*manifest.RopeScaling, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var r struct {
		Type           string   `json:"type"`
		RopeType       string   `json:"rope_type"`
		Factor         *float64 `json:"factor"`
		LowFreqFactor  *float64 `json:"low_freq_factor"`
		HighFreqFactor *float64 `json:"high_freq_factor"`
		OriginalMax    *int     `json:"original_max_position_embeddings"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("config.json: rope_scaling: %w", err)
	}
	typ := r.RopeType
	if typ == "" {
		typ = r.Type
	}
	switch typ {
	case "default", "":
		return nil, nil
	case "linear", "llama3":
	default:
		return nil, fmt.Errorf("config.json: rope_scaling type %q is not supported (want linear or llama3)", typ)
	}
	if r.Factor == nil {
		return nil, fmt.Errorf("config.json: rope_scaling (%s) is missing required key \"factor\"", typ)
	}
	s := &manifest.RopeScaling{Type: typ, Factor: *r.Factor}
	if typ == "llama3" {
		for _, k := range []struct {
			name string
			ok   bool
		}{
			{"low_freq_factor", r.LowFreqFactor != nil},
			{"high_freq_factor", r.HighFreqFactor != nil},
			{"original_max_position_embeddings", r.OriginalMax != nil},
		} {
			if !k.ok {
				return nil, fmt.Errorf("config.json: rope_scaling (llama3) is missing required key %q", k.name)
			}
		}
		s.LowFreqFactor, s.HighFreqFactor = *r.LowFreqFactor, *r.HighFreqFactor
		s.OriginalMaxPositionEmbeddings = *r.OriginalMax
	}
	return s, nil
}

// InvFreq returns the rotary inverse frequencies (HeadDim/2 of them) with
// the config's scaling applied, as transformers' rope init functions do.
func (c Config) InvFreq() []float64 {
	half := c.HeadDim / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
	}
	s := c.RopeScaling
	if s == nil {
		return inv
	}
	switch s.Type {
	case "linear":
		for i := range inv {
			inv[i] /= s.Factor
		}
	case "llama3":
		old := float64(s.OriginalMaxPositionEmbeddings)
		lowWavelen := old / s.LowFreqFactor
		highWavelen := old / s.HighFreqFactor
		for i, f := range inv {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen < highWavelen:
			case wavelen > lowWavelen:
				inv[i] = f / s.Factor
			default:
				smooth := (old/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				inv[i] = (1-smooth)*f/s.Factor + smooth*f
			}
		}
	}
	return inv
}

// RopeCache returns the cos and sin tables, each [maxSeqLen][HeadDim/2]
// flattened, used both by the graphs (GroupQueryAttention's cos_cache and
// sin_cache) and by the reference, so the two agree exactly.
func (c Config) RopeCache(maxSeqLen int) (cos, sin []float32) {
	inv := c.InvFreq()
	half := len(inv)
	cos = make([]float32, 0, maxSeqLen*half)
	sin = make([]float32, 0, maxSeqLen*half)
	for p := 0; p < maxSeqLen; p++ {
		c, s := ropeAt(inv, p)
		cos, sin = append(cos, c...), append(sin, s...)
	}
	return cos, sin
}
