// Package defaultmodel carries strata's built-in default model inside the binary:
// a small LLaMA-family English→Spanish verse translator trained from scratch with
// the ULS recipe (scripts/train, docs/default-model.md). The checkpoint is in
// Hugging Face layout (config.json, generation_config.json, model.safetensors in
// F16, tokenizer.json) and is written out with WriteCheckpoint, typically once
// into a user cache directory keyed by Version, then exported like any other
// checkpoint.
package defaultmodel

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Checkpoint is the embedded checkpoint directory: "uls123d" is the model
// fine-tuned for ULS at ratios 1, 2 and 3 with self-distillation, decoding at
// ratio 2 by default (config.json carries "uls"; docs/eval.md); "uls2" is
// fine-tuned for ratio 2 only, "base" the full-depth one.
const Checkpoint = "uls123d"

// Name identifies the default model in logs and cache paths.
const Name = "strata-default-en-es-" + Checkpoint

// PromptTemplate is the training prompt; %s is the English text. The tokenizer's
// post-processor (TemplateProcessing) adds <s> (id 1) in front, as Hugging Face's
// encode does by default; the model answers with the Spanish text and then </s> (id 2).
const PromptTemplate = "English: %s\nSpanish:"

// Files are the checkpoint's file names, in the order WriteCheckpoint writes them.
var Files = []string{"config.json", "generation_config.json", "tokenizer.json", "model.safetensors"}

//go:embed uls123d/config.json uls123d/generation_config.json uls123d/tokenizer.json uls123d/model.safetensors
var checkpointFS embed.FS

// Version is a short hash (12 hex digits) of the embedded files' names and
// contents; it changes whenever the checkpoint does, so it can key a cache.
var Version = version()

func version() string {
	h := sha256.New()
	for _, name := range Files {
		b, err := checkpointFS.ReadFile(Checkpoint + "/" + name)
		if err != nil {
			// The embed directive and Files name the same files; a miss is a build error.
			panic(fmt.Sprintf("defaultmodel: embedded %s missing: %v", name, err))
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// FS returns the checkpoint files as a read-only file system (file names as in Files).
func FS() fs.FS {
	sub, err := fs.Sub(checkpointFS, Checkpoint)
	if err != nil {
		panic(fmt.Sprintf("defaultmodel: %v", err)) // Checkpoint is a valid constant path
	}
	return sub
}

// ReadFile returns the contents of one checkpoint file (e.g. "config.json").
func ReadFile(name string) ([]byte, error) {
	b, err := fs.ReadFile(FS(), name)
	if err != nil {
		return nil, fmt.Errorf("defaultmodel: %w", err)
	}
	return b, nil
}

// WriteCheckpoint writes the checkpoint files into dir (created if needed). Each
// file is written to a temporary name and renamed, so a reader never sees a
// partial file; existing files are replaced.
func WriteCheckpoint(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("defaultmodel: create %s: %w", dir, err)
	}
	for _, name := range Files {
		b, err := ReadFile(name)
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp(dir, "."+name+".*")
		if err != nil {
			return fmt.Errorf("defaultmodel: write %s: %w", name, err)
		}
		_, werr := tmp.Write(b)
		cerr := tmp.Close()
		if werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Rename(tmp.Name(), filepath.Join(dir, name))
		}
		if werr != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("defaultmodel: write %s: %w", name, werr)
		}
	}
	return nil
}

// FormatPrompt wraps English text in the training prompt template. White space
// runs (newlines included) become single spaces, since training prompts never
// contain line breaks in the English part.
func FormatPrompt(text string) string {
	return fmt.Sprintf(PromptTemplate, strings.Join(strings.Fields(text), " "))
}
