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
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// MaxConfigBytes bounds config.json and generation_config.json (real ones
// are a few KB).
const MaxConfigBytes = 16 << 20

// TokenizerFiles are the files copied into a model package when present.
var TokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"}

// Checkpoint is an open Hugging Face checkpoint. It implements
// llama.WeightSource over its safetensors weights.
type Checkpoint struct {
	Dir    string
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
	cfg, err := llama.ParseHFConfig(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	c := &Checkpoint{Dir: dir, Config: cfg, BOSID: cfg.BOSID, EOSIDs: cfg.EOSIDs, PadID: -1}
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
	if ids, err := llama.ParseTokenIDs("pad_token_id", extra.PadID); err != nil {
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
	if err := CheckShapes(cfg, c.Weights); err != nil {
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
		ids, err := llama.ParseTokenIDs(f.key, f.raw)
		if err != nil {
			return fmt.Errorf("checkpoint %s: generation_config.json: %w", c.Dir, err)
		}
		if len(ids) > 0 {
			f.set(ids)
		}
	}
	for _, id := range append([]int{c.BOSID, c.PadID}, c.EOSIDs...) {
		if id < -1 || id >= c.Config.VocabSize {
			return fmt.Errorf("checkpoint %s: special token id %d is outside the vocabulary (%d)", c.Dir, id, c.Config.VocabSize)
		}
	}
	return nil
}

// Shaper describes tensors without reading them.
type Shaper interface {
	Info(name string) (safetensors.TensorInfo, bool)
}

// CheckShapes verifies that w holds every tensor cfg needs with its shape.
func CheckShapes(cfg llama.Config, w Shaper) error {
	for _, want := range cfg.Weights() {
		info, ok := w.Info(want.Name)
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

// Tensor implements llama.WeightSource.
func (c *Checkpoint) Tensor(name string) ([]float32, []int, error) {
	return c.Weights.Tensor(name)
}

// Close releases the weight files.
func (c *Checkpoint) Close() error { return c.Weights.Close() }
