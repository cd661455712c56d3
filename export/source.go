package export

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-llm/strata/export/hf"
	"github.com/strata-llm/strata/export/llama2c"
	"github.com/strata-llm/strata/models/family"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// Source is an open checkpoint: its configuration, special tokens and
// weights in Hugging Face names and layout.
type Source struct {
	// Model is the checkpoint's configuration, whatever its family.
	Model family.Model
	// Config is the configuration of a LLaMA-family checkpoint (zero for
	// other families).
	Config  llama.Config
	Weights graph.WeightSource
	BOSID   int
	EOSIDs  []int
	PadID   int
	ULS     manifest.ULS
	// PromptTemplate is the checkpoint's prompt template, if it has one.
	PromptTemplate string
	// Files are paths of tokenizer/generation files to copy into the package.
	Files []string
	close func() error
}

// Close releases the checkpoint's files.
func (s *Source) Close() error { return s.close() }

// OpenSource opens a Hugging Face checkpoint directory or a legacy llama2.c
// .bin file.
func OpenSource(path string) (*Source, error) {
	if path == "" {
		return nil, errors.New("no input checkpoint given")
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("input checkpoint: %w", err)
	}
	if st.IsDir() {
		c, err := hf.Open(path)
		if err != nil {
			return nil, err
		}
		s := &Source{Model: c.Model, Config: c.Config, Weights: c, BOSID: c.BOSID, EOSIDs: c.EOSIDs, PadID: c.PadID, ULS: c.ULS, PromptTemplate: c.PromptTemplate, close: c.Close}
		for _, f := range c.Files {
			s.Files = append(s.Files, filepath.Join(path, f))
		}
		return s, nil
	}
	if ext := filepath.Ext(path); ext == ".safetensors" || ext == ".json" {
		return nil, fmt.Errorf("input %s: pass the Hugging Face checkpoint directory (the one holding config.json), not one of its files", path)
	}
	f, err := llama2c.Open(path)
	if err != nil {
		return nil, err
	}
	cfg := f.Config()
	s := &Source{Model: family.Llama(cfg), Config: cfg, Weights: f, BOSID: cfg.BOSID, EOSIDs: cfg.EOSIDs, PadID: -1, close: f.Close}
	// A llama2.c model may sit next to an HF tokenizer.json of its vocabulary.
	for _, name := range hf.TokenizerFiles {
		p := filepath.Join(filepath.Dir(path), name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			s.Files = append(s.Files, p)
		}
	}
	return s, nil
}
