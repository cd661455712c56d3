// Package bloom is the BLOOM architecture family (BloomForCausalLM: BLOOM,
// BLOOMZ and their fine-tunes): its configuration, the per-layer ONNX graphs
// of a strata model package with the same inputs and outputs as every other
// family (models/graph), and a plain-Go reference forward pass used to
// verify them.
//
// BLOOM has no position table: ALiBi adds slope_h·j to head h's score of
// key position j, so a package's max_seq_len only bounds the KV buffer.
package bloom

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/strata-llm/strata/models/manifest"
)

// Family is the architecture family name written to manifest.json.
const Family = "bloom"

// Architecture is the Hugging Face architectures entry of the family.
const Architecture = "BloomForCausalLM"

// Config is the shape and numerics of a BLOOM model.
type Config struct {
	NumLayers    int
	HiddenSize   int
	NumHeads     int
	VocabSize    int
	LayerNormEps float64
	// ResidualPostLayerNorm is apply_residual_connection_post_layernorm: the
	// residual of each block is the block's normed input instead of its input.
	ResidualPostLayerNorm bool
	BOSID                 int // -1 when the model has none
	EOSIDs                []int
}

// HeadDim is the size of one attention head.
func (c Config) HeadDim() int {
	if c.NumHeads == 0 {
		return 0
	}
	return c.HiddenSize / c.NumHeads
}

// IntermediateSize is the MLP width, four times the hidden size.
func (c Config) IntermediateSize() int { return 4 * c.HiddenSize }

// Validate checks that the sizes are positive and consistent.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"n_layer", c.NumLayers}, {"hidden_size", c.HiddenSize}, {"n_head", c.NumHeads}, {"vocab_size", c.VocabSize}} {
		if f.v <= 0 {
			return fmt.Errorf("config %s = %d, want > 0", f.name, f.v)
		}
	}
	if c.HiddenSize%c.NumHeads != 0 {
		return fmt.Errorf("config hidden_size %d is not a multiple of n_head %d", c.HiddenSize, c.NumHeads)
	}
	if !(c.LayerNormEps > 0) {
		return fmt.Errorf("config layer_norm_epsilon %v, want > 0", c.LayerNormEps)
	}
	return nil
}

// Manifest fills the model fields of a package manifest from the config
// (files, dtype, max_seq_len, pad id and ULS are the exporter's). BLOOM has
// no rotary embeddings, so the rope fields stay empty.
func (c Config) Manifest() manifest.Manifest {
	return manifest.Manifest{
		Format:           manifest.Format,
		Architecture:     Family,
		NumLayers:        c.NumLayers,
		HiddenSize:       c.HiddenSize,
		NumHeads:         c.NumHeads,
		NumKVHeads:       c.NumHeads,
		HeadDim:          c.HeadDim(),
		IntermediateSize: c.IntermediateSize(),
		VocabSize:        c.VocabSize,
		NormEps:          c.LayerNormEps,
		BOSID:            c.BOSID,
		EOSIDs:           slices.Clone(c.EOSIDs),
	}
}

// ConfigFromManifest rebuilds the Config of an exported BLOOM package. The
// manifest does not record apply_residual_connection_post_layernorm, which
// every released BLOOM model leaves false; postLN sets it.
func ConfigFromManifest(m *manifest.Manifest, postLN bool) (Config, error) {
	if m.Architecture != Family {
		return Config{}, fmt.Errorf("model package architecture %q is not %q", m.Architecture, Family)
	}
	c := Config{
		NumLayers: m.NumLayers, HiddenSize: m.HiddenSize, NumHeads: m.NumHeads, VocabSize: m.VocabSize,
		LayerNormEps: m.NormEps, ResidualPostLayerNorm: postLN, BOSID: m.BOSID, EOSIDs: slices.Clone(m.EOSIDs),
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	if m.NumKVHeads != m.NumHeads || m.HeadDim != c.HeadDim() || m.IntermediateSize != c.IntermediateSize() {
		return Config{}, fmt.Errorf("model package sizes (kv heads %d, head_dim %d, intermediate %d) are not BLOOM's", m.NumKVHeads, m.HeadDim, m.IntermediateSize)
	}
	return c, nil
}

// IsHFConfig reports whether a Hugging Face config.json describes a BLOOM
// model (architectures lists BloomForCausalLM, or model_type is "bloom").
func IsHFConfig(data []byte) bool {
	var h struct {
		ModelType     string   `json:"model_type"`
		Architectures []string `json:"architectures"`
	}
	if json.Unmarshal(data, &h) != nil {
		return false
	}
	return h.ModelType == Family || slices.Contains(h.Architectures, Architecture)
}

// ParseHFConfig reads the config.json of a BloomForCausalLM checkpoint. It
// accepts the key names transformers' BloomConfig does (n_layer or
// num_hidden_layers, n_head or num_attention_heads, hidden_size or n_embed)
// and its defaults for layer_norm_epsilon (1e-5) and
// apply_residual_connection_post_layernorm (false).
func ParseHFConfig(data []byte) (Config, error) {
	var h struct {
		NLayer    *int            `json:"n_layer"`
		NumLayers *int            `json:"num_hidden_layers"`
		NHead     *int            `json:"n_head"`
		NumHeads  *int            `json:"num_attention_heads"`
		Hidden    *int            `json:"hidden_size"`
		NEmbed    *int            `json:"n_embed"`
		Vocab     *int            `json:"vocab_size"`
		Eps       *float64        `json:"layer_norm_epsilon"`
		PostLN    *bool           `json:"apply_residual_connection_post_layernorm"`
		Tied      *bool           `json:"tie_word_embeddings"`
		BOS       json.RawMessage `json:"bos_token_id"`
		EOS       json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	first := func(ps ...*int) *int {
		for _, p := range ps {
			if p != nil {
				return p
			}
		}
		return nil
	}
	c := Config{LayerNormEps: 1e-5, BOSID: -1}
	for _, r := range []struct {
		key string
		src *int
		dst *int
	}{
		{"n_layer", first(h.NLayer, h.NumLayers), &c.NumLayers},
		{"n_head", first(h.NHead, h.NumHeads), &c.NumHeads},
		{"hidden_size", first(h.Hidden, h.NEmbed), &c.HiddenSize},
		{"vocab_size", h.Vocab, &c.VocabSize},
	} {
		if r.src == nil {
			return Config{}, fmt.Errorf("config.json: missing required key %q", r.key)
		}
		*r.dst = *r.src
	}
	if h.Eps != nil {
		c.LayerNormEps = *h.Eps
	}
	if h.PostLN != nil {
		c.ResidualPostLayerNorm = *h.PostLN
	}
	if h.Tied != nil && !*h.Tied {
		return Config{}, fmt.Errorf("config.json: tie_word_embeddings = false is not supported (BLOOM's head is its embedding matrix)")
	}
	bos, err := manifest.ParseTokenIDs("bos_token_id", h.BOS)
	if err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	if len(bos) > 0 {
		c.BOSID = bos[0]
	}
	if c.EOSIDs, err = manifest.ParseTokenIDs("eos_token_id", h.EOS); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	return c, nil
}

// Slopes returns the ALiBi slope of every head, as transformers'
// build_alibi_tensor computes them: for the largest power of two p ≤ n,
// slope_i = b^(i+1) with b = 2^(-8/p); the remaining n−p heads take the odd
// powers of 2^(-4/p). The values are rounded to float32 as torch stores them.
func Slopes(numHeads int) []float32 {
	p := 1 << int(math.Floor(math.Log2(float64(numHeads))))
	base := math.Pow(2, -math.Pow(2, -(math.Log2(float64(p))-3)))
	s := make([]float32, 0, numHeads)
	for i := 1; i <= p; i++ {
		s = append(s, float32(math.Pow(float64(float32(base)), float64(i))))
	}
	if p != numHeads {
		extra := math.Pow(2, -math.Pow(2, -(math.Log2(float64(2*p))-3)))
		for i, n := 0, min(p, numHeads-p); i < n; i++ {
			s = append(s, float32(math.Pow(float64(float32(extra)), float64(2*i+1))))
		}
	}
	return s
}
