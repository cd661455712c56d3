package export

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/models/family"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

// OpenReference builds the plain-Go reference forward pass of the package
// described by m, whatever its family, from the weights at path: an HF
// checkpoint directory, a llama2.c .bin, or reference weights written by
// WriteReference (whose stored config is used; without one the config is
// rebuilt from the manifest). It checks that the weights describe the
// package's model.
func OpenReference(path string, m *manifest.Manifest) (family.Reference, error) {
	if st, err := os.Stat(path); err == nil && !st.IsDir() && strings.HasSuffix(path, ".safetensors") {
		c, err := safetensors.OpenCheckpoint(path)
		if err != nil {
			return nil, fmt.Errorf("reference weights: %w", err)
		}
		defer c.Close()
		var model family.Model
		if js := c.Metadata(configKey); js != "" {
			model, err = family.FromConfig(m.Architecture, []byte(js))
		} else {
			model, err = family.FromManifest(m, c.Has)
		}
		if err != nil {
			return nil, fmt.Errorf("reference weights: %w", err)
		}
		return newFamilyReference(model, c, m)
	}
	s, err := OpenSource(path)
	if err != nil {
		return nil, fmt.Errorf("reference weights: %w", err)
	}
	defer s.Close()
	return newFamilyReference(s.Model, s.Weights, m)
}

// newFamilyReference loads model's reference after checking it against the
// package manifest.
func newFamilyReference(model family.Model, src graph.WeightSource, m *manifest.Manifest) (family.Reference, error) {
	g := model.Manifest()
	if g.Architecture != m.Architecture {
		return nil, fmt.Errorf("reference weights are a %s model, the package a %s one", g.Architecture, m.Architecture)
	}
	if g.NumLayers != m.NumLayers || g.HiddenSize != m.HiddenSize || g.VocabSize != m.VocabSize ||
		g.NumHeads != m.NumHeads || g.NumKVHeads != m.NumKVHeads || g.HeadDim != m.HeadDim || g.IntermediateSize != m.IntermediateSize {
		return nil, errors.New("reference weights do not describe the package's model (layers, sizes or vocabulary differ)")
	}
	ref, err := model.NewReference(src)
	if err != nil {
		return nil, fmt.Errorf("reference weights: %w", err)
	}
	return ref, nil
}
