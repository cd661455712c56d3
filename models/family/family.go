// Package family dispatches over the model families strata exports
// (models/llama, models/bloom): it reads a Hugging Face config.json or a
// package's stored config into a family-neutral Model, which the exporter
// writes graphs and reference weights from and the verifier builds its
// reference forward pass from, without knowing the family.
package family

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/strata-llm/strata/models/bloom"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// Model is one checkpoint's configuration, whatever its family.
type Model interface {
	// Family is the manifest architecture ("llama", "bloom").
	Family() string
	// Config is the family's own config (llama.Config, bloom.Config); it
	// marshals to the JSON that FromConfig reads back.
	Config() any
	// NumLayers is the number of decoder layers.
	NumLayers() int
	// MaxPositions bounds the sequence length (0: no position table, as
	// with ALiBi, so only the KV buffer bounds it).
	MaxPositions() int
	// Manifest fills the model fields of a package manifest.
	Manifest() manifest.Manifest
	// Weights lists every tensor the model needs, by canonical name.
	Weights() []graph.WeightInfo
	// StoredName is the name a checkpoint holding the tensors has
	// (has reports which exist) stores the canonical name under.
	StoredName(name string, has func(string) bool) string
	// Decoder builds the package graphs.
	Decoder() graph.Decoder
	// NewReference loads the plain-Go reference forward pass.
	NewReference(src graph.WeightSource) (Reference, error)
}

// Reference is a family's plain-Go forward pass (llama.Reference,
// bloom.Reference): Forward appends tokens, running only the given layers
// (nil: all), and returns the logits of every new token.
type Reference interface {
	Forward(tokens, layers []int) ([][]float32, error)
	Reset()
}

// Llama wraps a LLaMA-family config.
func Llama(c llama.Config) Model { return llamaModel{c} }

// Bloom wraps a BLOOM config.
func Bloom(c bloom.Config) Model { return bloomModel{c} }

// ParseHFConfig reads a Hugging Face config.json of any supported family,
// chosen by its architectures and model_type.
func ParseHFConfig(data []byte) (Model, error) {
	if bloom.IsHFConfig(data) {
		c, err := bloom.ParseHFConfig(data)
		if err != nil {
			return nil, err
		}
		return Bloom(c), nil
	}
	c, err := llama.ParseHFConfig(data)
	if errors.Is(err, llama.ErrUnsupportedArchitecture) {
		return nil, fmt.Errorf("%w, the bloom family %s", err, bloom.Architecture)
	}
	if err != nil {
		return nil, err
	}
	return Llama(c), nil
}

// FromConfig rebuilds a Model from the JSON of its Config (as an export's
// reference weights store it) for the family named by a manifest's
// architecture.
func FromConfig(architecture string, js []byte) (Model, error) {
	switch architecture {
	case llama.Family:
		var c llama.Config
		if err := json.Unmarshal(js, &c); err != nil {
			return nil, fmt.Errorf("llama config: %w", err)
		}
		return Llama(c), c.Validate()
	case bloom.Family:
		var c bloom.Config
		if err := json.Unmarshal(js, &c); err != nil {
			return nil, fmt.Errorf("bloom config: %w", err)
		}
		return Bloom(c), c.Validate()
	}
	return nil, fmt.Errorf("model architecture %q is not supported (want %s or %s)", architecture, llama.Family, bloom.Family)
}

// FromManifest rebuilds a Model from a package manifest alone (for
// reference weights without a stored config): has reports which tensors the
// reference weights hold, for what the manifest does not record (llama's
// q/k/v biases and tied head; BLOOM's residual placement, which has no
// tensor of its own, is taken as false, as in every released BLOOM).
func FromManifest(m *manifest.Manifest, has func(string) bool) (Model, error) {
	switch m.Architecture {
	case bloom.Family:
		c, err := bloom.ConfigFromManifest(m, false)
		if err != nil {
			return nil, err
		}
		return Bloom(c), nil
	case llama.Family:
		c := llama.Config{
			ModelType: llama.Family, NumLayers: m.NumLayers, HiddenSize: m.HiddenSize, NumHeads: m.NumHeads,
			NumKVHeads: m.NumKVHeads, HeadDim: m.HeadDim, IntermediateSize: m.IntermediateSize,
			VocabSize: m.VocabSize, MaxPositionEmbeddings: m.MaxSeqLen, RopeTheta: m.Rope.Theta,
			RopeScaling: m.Rope.Scaling, RMSNormEps: m.NormEps, TieWordEmbeddings: !has(llama.LMHeadName),
			AttentionBias: has(llama.LayerPrefix(0) + "self_attn.q_proj.bias"), BOSID: m.BOSID, EOSIDs: m.EOSIDs,
		}
		return Llama(c), c.Validate()
	}
	return nil, fmt.Errorf("model package architecture %q is not supported (want %s or %s)", m.Architecture, llama.Family, bloom.Family)
}

type llamaModel struct{ c llama.Config }

func (m llamaModel) Family() string                                  { return llama.Family }
func (m llamaModel) Config() any                                     { return m.c }
func (m llamaModel) NumLayers() int                                  { return m.c.NumLayers }
func (m llamaModel) MaxPositions() int                               { return m.c.MaxPositionEmbeddings }
func (m llamaModel) Manifest() manifest.Manifest                     { return m.c.Manifest() }
func (m llamaModel) Weights() []graph.WeightInfo                     { return m.c.Weights() }
func (m llamaModel) StoredName(n string, _ func(string) bool) string { return n }
func (m llamaModel) Decoder() graph.Decoder                          { return m.c.Decoder() }
func (m llamaModel) NewReference(src graph.WeightSource) (Reference, error) {
	r, err := llama.NewReference(m.c, src)
	if err != nil {
		return nil, err
	}
	return r, nil
}

type bloomModel struct{ c bloom.Config }

func (m bloomModel) Family() string              { return bloom.Family }
func (m bloomModel) Config() any                 { return m.c }
func (m bloomModel) NumLayers() int              { return m.c.NumLayers }
func (m bloomModel) MaxPositions() int           { return 0 }
func (m bloomModel) Manifest() manifest.Manifest { return m.c.Manifest() }
func (m bloomModel) Weights() []graph.WeightInfo { return m.c.Weights() }
func (m bloomModel) Decoder() graph.Decoder      { return m.c.Decoder() }

// StoredName maps to the unprefixed name of checkpoints saved from
// BloomModel (the original bigscience ones) when the canonical one is absent.
func (m bloomModel) StoredName(n string, has func(string) bool) string {
	if !has(n) && has(bloom.Unprefixed(n)) {
		return bloom.Unprefixed(n)
	}
	return n
}

func (m bloomModel) NewReference(src graph.WeightSource) (Reference, error) {
	r, err := bloom.NewReference(m.c, src)
	if err != nil {
		return nil, err
	}
	return r, nil
}
