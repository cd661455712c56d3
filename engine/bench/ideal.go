package bench

import (
	"fmt"

	"github.com/strata-llm/strata/models/family"
	"github.com/strata-llm/strata/models/manifest"
)

// Decode steps on a CPU are bound by reading weights, so the ideal ULS
// speedup is the ratio of weight bytes one decode step reads at full depth
// to the bytes it reads with the schedule. A step reads one embedding row
// per token, every kept layer's weights once (whatever the batch) and the
// head's weights once; the shapes are the package family's.

// LayerBytes is the weight bytes of one decoder layer, from the package's
// family (models/family.Bytes).
func LayerBytes(m *manifest.Manifest) (int64, error) {
	w, err := family.Bytes(m)
	return w.Layer, err
}

// HeadBytes is the weight bytes of the head: the final norm and the
// vocabulary projection.
func HeadBytes(m *manifest.Manifest) (int64, error) {
	w, err := family.Bytes(m)
	return w.Head, err
}

// StepBytes is the weight bytes one decode step of a batch reads when it
// runs kept layers: batch embedding rows, the rest of the embedding graph,
// kept layers and the head.
func StepBytes(m *manifest.Manifest, kept, batch int) (int64, error) {
	w, err := family.Bytes(m)
	if err != nil {
		return 0, err
	}
	return w.Step(kept, batch), nil
}

// IdealSpeedup is StepBytes at full depth divided by StepBytes with kept
// layers: the decode speedup a purely bandwidth-bound step would reach.
func IdealSpeedup(m *manifest.Manifest, kept, batch int) (float64, error) {
	if kept < 1 || kept > m.NumLayers {
		return 0, fmt.Errorf("ideal speedup: %d kept layers of %d", kept, m.NumLayers)
	}
	if batch < 1 {
		return 0, fmt.Errorf("ideal speedup: batch %d", batch)
	}
	full, err := StepBytes(m, m.NumLayers, batch)
	if err != nil {
		return 0, err
	}
	sched, err := StepBytes(m, kept, batch)
	if err != nil {
		return 0, err
	}
	return float64(full) / float64(sched), nil
}
