// Package hf opens a Hugging Face checkpoint directory: config.json,
// generation_config.json, the tokenizer files and the safetensors weights
// (single file or sharded with model.safetensors.index.json).
package hf

import (
	"github.com/strata-llm/strata/internal/limitread"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/models/family"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// MaxConfigBytes bounds config.json and generation_config.json (real ones
// are a few KB).
const MaxConfigBytes = 16 << 20

// TokenizerFiles are the files copied into a model package when present.
var TokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"}

// Checkpoint is an open Hugging Face checkpoint of any supported family. It
// implements graph.WeightSource over its safetensors weights, by the
// family's canonical tensor names.
type Checkpoint struct {
	Dir string
	// Model is the checkpoint's configuration.
	Model family.Model
	// Config is the configuration of a LLaMA-family checkpoint (zero for
	// other families).
	Config llama.Config
	// BOSID, EOSIDs and PadID come from generation_config.json when it sets
	// them, else from config.json; -1 / nil when absent.
	BOSID  int
	EOSIDs []int
	PadID  int
	// ULS is config.json's optional "uls" object (empty when absent).
	ULS manifest.ULS
	// PromptTemplate is config.json's optional "prompt_template" (strata's
	// training scripts write it), e.g. "English: {en}\nSpanish:".
	PromptTemplate string
	// Files lists which of TokenizerFiles exist in Dir.
	Files   []string
	Weights *safetensors.Checkpoint
}

// Open reads the checkpoint in dir and checks that its weights hold every
// tensor the config needs, with the right shapes, before any data is read.
func Open(dir string) (*Checkpoint, error) {
	data, err := limitread.ReadFile(filepath.Join(dir, "config.json"), MaxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	model, err := family.ParseHFConfig(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	m := model.Manifest()
	c := &Checkpoint{Dir: dir, Model: model, BOSID: m.BOSID, EOSIDs: m.EOSIDs, PadID: -1}
	if cfg, ok := model.Config().(llama.Config); ok {
		c.Config = cfg
	}
	var extra struct {
		ULS            *manifest.ULS   `json:"uls"`
		PadID          json.RawMessage `json:"pad_token_id"`
		PromptTemplate string          `json:"prompt_template"`
	}
	if err := json.Unmarshal(data, &extra); err != nil {
		return nil, fmt.Errorf("checkpoint %s: config.json: %w", dir, err)
	}
	c.PromptTemplate = extra.PromptTemplate
	if extra.ULS != nil {
		c.ULS = *extra.ULS
		for _, r := range c.ULS.Ratios {
			if !(r >= 1) {
				return nil, fmt.Errorf("checkpoint %s: config.json: uls ratio %v must be >= 1", dir, r)
			}
		}
	}
	if ids, err := manifest.ParseTokenIDs("pad_token_id", extra.PadID); err != nil {
		return nil, fmt.Errorf("checkpoint %s: config.json: %w", dir, err)
	} else if len(ids) > 0 {
		c.PadID = ids[0]
	}
	if err := c.readGenerationConfig(); err != nil {
		return nil, err
	}
	for _, f := range TokenizerFiles {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil && st.Mode().IsRegular() {
			c.Files = append(c.Files, f)
		}
	}
	if c.Weights, err = safetensors.OpenCheckpoint(dir); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := CheckShapes(model, c.Weights); err != nil {
		c.Weights.Close()
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return c, nil
}

// readGenerationConfig applies generation_config.json's special token ids.
func (c *Checkpoint) readGenerationConfig() error {
	data, err := limitread.ReadFile(filepath.Join(c.Dir, "generation_config.json"), MaxConfigBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.Dir, err)
	}
	var g struct {
		BOS json.RawMessage `json:"bos_token_id"`
		EOS json.RawMessage `json:"eos_token_id"`
		Pad json.RawMessage `json:"pad_token_id"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		return fmt.Errorf("checkpoint %s: generation_config.json: %w", c.Dir, err)
	}
	for _, f := range []struct {
		key string
		raw json.RawMessage
		set func([]int)
	}{
		{"bos_token_id", g.BOS, func(ids []int) { c.BOSID = ids[0] }},
		{"eos_token_id", g.EOS, func(ids []int) { c.EOSIDs = ids }},
		{"pad_token_id", g.Pad, func(ids []int) { c.PadID = ids[0] }},
	} {
		ids, err := manifest.ParseTokenIDs(f.key, f.raw)
		if err != nil {
			return fmt.Errorf("checkpoint %s: generation_config.json: %w", c.Dir, err)
		}
		if len(ids) > 0 {
			f.set(ids)
		}
	}
	for _, id := range append([]int{c.BOSID, c.PadID}, c.EOSIDs...) {
		if vocab := c.Model.Manifest().VocabSize; id < -1 || id >= vocab {
			return fmt.Errorf("checkpoint %s: special token id %d is outside the vocabulary (%d)", c.Dir, id, vocab)
		}
	}
	return nil
}

// Shaper describes tensors without reading them.
type Shaper interface {
	Info(name string) (safetensors.TensorInfo, bool)
}

// CheckShapes verifies that w holds every tensor m needs with its shape.
func CheckShapes(m family.Model, w Shaper) error {
	has := func(name string) bool { _, ok := w.Info(name); return ok }
	for _, want := range m.Weights() {
		info, ok := w.Info(m.StoredName(want.Name, has))
		if !ok {
			return fmt.Errorf("weights lack tensor %q", want.Name)
		}
		if !slices.Equal(info.Shape, want.Shape) {
			return fmt.Errorf("tensor %q has shape %v, the config needs %v", want.Name, info.Shape, want.Shape)
		}
		if !info.DType.Float() {
			return fmt.Errorf("tensor %q has dtype %s (want F32, F16 or BF16)", want.Name, info.DType)
		}
	}
	return nil
}

// Tensor implements graph.WeightSource.
func (c *Checkpoint) Tensor(name string) ([]float32, []int, error) {
	return c.Weights.Tensor(c.Model.StoredName(name, c.Weights.Has))
}

// Close releases the weight files.
func (c *Checkpoint) Close() error { return c.Weights.Close() }
