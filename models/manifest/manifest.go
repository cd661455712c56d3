// Package manifest defines manifest.json, the contract between the exporter
// (package export) and the generator (package engine) for a strata model
// package (docs/design.md, "The package format").
package manifest

import (
	"github.com/strata-llm/strata/internal/limitread"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Format is the package format this version of strata writes and reads.
const Format = "strata/v1"

// FileName is the manifest's file name inside a package directory.
const FileName = "manifest.json"

// Rope describes rotary position embeddings.
type Rope struct {
	Theta float64 `json:"theta"`
	// Scaling is nil when no scaling is applied.
	Scaling *RopeScaling `json:"scaling,omitempty"`
}

// RopeScaling mirrors Hugging Face's rope_scaling config entry.
type RopeScaling struct {
	Type                          string  `json:"type"` // "linear" or "llama3"
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
}

// ULS records the Unified Layer Skipping fine-tuning of the checkpoint.
type ULS struct {
	// Ratios are the speedup ratios the checkpoint was fine-tuned for (empty: none).
	Ratios []float64 `json:"ratios,omitempty"`
	// DefaultSchedule is the schedule the generator uses when none is given,
	// e.g. "uls:2"; empty means full depth.
	DefaultSchedule string `json:"default_schedule,omitempty"`
}

// Files names every file of the package, relative to the package directory.
type Files struct {
	Embed  string   `json:"embed"`
	Layers []string `json:"layers"`
	Head   string   `json:"head"`
	// HeadLast is an optional head graph computing logits for the last position only.
	HeadLast string `json:"head_last,omitempty"`
	// Full is the optional monolithic graph (embedding, all layers, head).
	Full string `json:"full,omitempty"`
	// Tokenizer is tokenizer.json, if the checkpoint had one.
	Tokenizer string `json:"tokenizer,omitempty"`
	// Reference holds the checkpoint weights as fp32 for `strata verify`, if exported.
	Reference string `json:"reference,omitempty"`
}

// Manifest is the content of manifest.json.
type Manifest struct {
	Format           string  `json:"format"`
	Architecture     string  `json:"architecture"` // family, e.g. "llama"
	NumLayers        int     `json:"num_layers"`
	HiddenSize       int     `json:"hidden_size"`
	NumHeads         int     `json:"num_heads"`
	NumKVHeads       int     `json:"num_kv_heads"`
	HeadDim          int     `json:"head_dim"`
	IntermediateSize int     `json:"intermediate_size"`
	VocabSize        int     `json:"vocab_size"`
	MaxSeqLen        int     `json:"max_seq_len"`
	Rope             Rope    `json:"rope"`
	NormEps          float64 `json:"norm_eps"`
	DType            string  `json:"dtype"` // fp32 | fp16 | int4
	// Int4BlockSize is the int4 weights' block size along K (0 in packages
	// written before it was recorded: 32).
	Int4BlockSize int `json:"int4_block_size,omitempty"`
	// ComputeType is the element type of the graphs' activations: hidden
	// states, the KV cache, attention and norms ("fp32", or "fp16" for the
	// GPU providers, whose attention kernels take float16 only). Logits
	// are float32 in both. Empty in packages written before it was
	// recorded: fp32.
	ComputeType string `json:"compute_type,omitempty"`
	BOSID       int    `json:"bos_id"`
	EOSIDs      []int  `json:"eos_ids"`
	PadID       int    `json:"pad_id"`
	Files       Files  `json:"files"`
	ULS         ULS    `json:"uls"`
	// PromptTemplate, when set, wraps a text prompt: its one {placeholder}
	// is replaced by the user's text (e.g. "English: {en}\nSpanish:").
	PromptTemplate string `json:"prompt_template,omitempty"`
	// Provenance records the checkpoint and settings the package was
	// exported from (nil in packages written before it was recorded).
	Provenance *Provenance `json:"provenance,omitempty"`
}

// DefaultInt4BlockSize is the int4 block size along K of packages that do
// not choose one: one scale per 32 weights, as llama.cpp's Q4_0.
const DefaultInt4BlockSize = 32

// CheckInt4Block returns an error unless block is an int4 block size
// strata writes and ONNX Runtime's MatMulNBits takes: a power of two from
// 16 to 256.
func CheckInt4Block(block int) error {
	if block < 16 || block > 256 || block&(block-1) != 0 {
		return fmt.Errorf("int4 block size %d is not one of 16, 32, 64, 128, 256", block)
	}
	return nil
}

// Compute types of an exported package (Manifest.ComputeType).
const (
	ComputeFP32 = "fp32"
	ComputeFP16 = "fp16"
)

// CheckComputeType returns an error unless compute is a compute type
// strata writes.
func CheckComputeType(compute string) error {
	switch compute {
	case ComputeFP32, ComputeFP16:
		return nil
	}
	return fmt.Errorf("compute type %q is not one of fp32, fp16", compute)
}

// CheckCompute returns an error unless compute is a compute type strata
// writes and the weight dtype can be computed in it: float16 compute
// needs fp16 or int4 weights (fp32 ones would be rounded to float16).
func CheckCompute(dtype, compute string) error {
	if err := CheckComputeType(compute); err != nil {
		return err
	}
	if compute == ComputeFP16 && dtype == "fp32" {
		return errors.New("compute type fp16 needs dtype fp16 or int4 (fp32 weights would be rounded to float16)")
	}
	return nil
}

// Compute returns the compute type: ComputeType, or ComputeFP32 when the
// manifest does not record one.
func (m *Manifest) Compute() string {
	if m.ComputeType == "" {
		return ComputeFP32
	}
	return m.ComputeType
}

// Int4Block returns the int4 block size: Int4BlockSize, or
// DefaultInt4BlockSize when the manifest does not record one.
func (m *Manifest) Int4Block() int {
	if m.Int4BlockSize == 0 {
		return DefaultInt4BlockSize
	}
	return m.Int4BlockSize
}

var placeholder = regexp.MustCompile(`\{[A-Za-z_][A-Za-z0-9_]*\}`)

// FormatPrompt applies the prompt template to text (text itself when the
// package has no template).
func (m *Manifest) FormatPrompt(text string) string {
	loc := placeholder.FindStringIndex(m.PromptTemplate)
	if loc == nil {
		return text
	}
	return m.PromptTemplate[:loc[0]] + text + m.PromptTemplate[loc[1]:]
}

// Load reads and validates dir/manifest.json.
func Load(dir string) (*Manifest, error) {
	data, err := limitread.ReadFile(filepath.Join(dir, FileName), 16<<20)
	if err != nil {
		return nil, fmt.Errorf("read model package %s: %w", dir, err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("model package %s: %w", dir, err)
	}
	return m, nil
}

// Parse decodes and validates a manifest.
func Parse(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Save writes the manifest to dir/manifest.json.
func (m *Manifest) Save(dir string) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, FileName), append(data, '\n'), 0o644)
}

// Limits that keep a hostile manifest (or checkpoint config, or export
// option) from asking for absurd allocations. They are far above any released
// model: 1024 layers, 2^20 for a width, 2^24 vocabulary entries, 2^22
// positions of KV cache.
const (
	MaxLayers = 1024
	MaxDim    = 1 << 20
	MaxVocab  = 1 << 24
	MaxSeqLen = 1 << 22
)

// Validate checks the manifest's format, sizes and paths.
func (m *Manifest) Validate() error {
	if m.Format != Format {
		if strings.HasPrefix(m.Format, "strata/") {
			return fmt.Errorf("manifest format %q is not supported by this strata (it reads %q); upgrade strata", m.Format, Format)
		}
		return fmt.Errorf("manifest format %q is not a strata model package (want %q)", m.Format, Format)
	}
	checks := []struct {
		name string
		v    int
		max  int
	}{
		{"num_layers", m.NumLayers, MaxLayers},
		{"hidden_size", m.HiddenSize, MaxDim},
		{"num_heads", m.NumHeads, MaxDim},
		{"num_kv_heads", m.NumKVHeads, MaxDim},
		{"head_dim", m.HeadDim, MaxDim},
		{"intermediate_size", m.IntermediateSize, MaxDim},
		{"vocab_size", m.VocabSize, MaxVocab},
		{"max_seq_len", m.MaxSeqLen, MaxSeqLen},
	}
	for _, c := range checks {
		if c.v <= 0 || c.v > c.max {
			return fmt.Errorf("manifest %s = %d is out of range (1..%d)", c.name, c.v, c.max)
		}
	}
	if kv := int64(m.NumKVHeads) * int64(m.HeadDim) * int64(m.MaxSeqLen); kv > 1<<36 {
		return fmt.Errorf("manifest num_kv_heads × head_dim × max_seq_len = %d: one layer's KV cache would exceed 2^36 values", kv)
	}
	if m.NumHeads%m.NumKVHeads != 0 {
		return fmt.Errorf("manifest num_heads %d is not a multiple of num_kv_heads %d", m.NumHeads, m.NumKVHeads)
	}
	switch m.DType {
	case "fp32", "fp16", "int4":
	default:
		return fmt.Errorf("manifest dtype %q is not one of fp32, fp16, int4", m.DType)
	}
	if m.Int4BlockSize != 0 {
		if err := CheckInt4Block(m.Int4BlockSize); err != nil {
			return fmt.Errorf("manifest int4_block_size: %w", err)
		}
	}
	if err := CheckCompute(m.DType, m.Compute()); err != nil {
		return fmt.Errorf("manifest compute_type: %w", err)
	}
	if len(m.Files.Layers) != m.NumLayers {
		return fmt.Errorf("manifest lists %d layer files for num_layers %d", len(m.Files.Layers), m.NumLayers)
	}
	paths := append([]string{m.Files.Embed, m.Files.Head}, m.Files.Layers...)
	for _, p := range paths {
		if p == "" {
			return errors.New("manifest files: a required graph path is empty")
		}
	}
	paths = append(paths, m.Files.HeadLast, m.Files.Full, m.Files.Tokenizer, m.Files.Reference)
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := CheckRelPath(p); err != nil {
			return fmt.Errorf("manifest files: %w", err)
		}
	}
	if m.PromptTemplate != "" && len(placeholder.FindAllString(m.PromptTemplate, -1)) != 1 {
		return fmt.Errorf("manifest prompt_template %q must hold exactly one {placeholder}", m.PromptTemplate)
	}
	for _, id := range append([]int{m.BOSID, m.PadID}, m.EOSIDs...) {
		if id < -1 || id >= m.VocabSize {
			return fmt.Errorf("manifest special token id %d is outside the vocabulary (%d)", id, m.VocabSize)
		}
	}
	if m.Provenance != nil {
		if err := m.Provenance.Validate(); err != nil {
			return fmt.Errorf("manifest %w", err)
		}
	}
	return nil
}

// CheckRelPath reports an error unless p is a plain relative path that stays
// inside the package directory (no absolute path, no "..", no backslashes).
func CheckRelPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	if filepath.IsAbs(p) || strings.HasPrefix(p, "/") || strings.Contains(p, `\`) || strings.Contains(p, ":") {
		return fmt.Errorf("path %q must be relative to the package directory", p)
	}
	clean := filepath.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
		return fmt.Errorf("path %q leaves the package directory", p)
	}
	return nil
}

// Resolve joins a manifest path onto the package directory and checks that,
// after following symbolic links, it still lies inside that directory.
func Resolve(dir, p string) (string, error) {
	if err := CheckRelPath(p); err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("model package %s: %w", dir, err)
	}
	full, err := filepath.EvalSymlinks(filepath.Join(root, p))
	if err != nil {
		return "", fmt.Errorf("model package file %s: %w", p, err)
	}
	rel, err := filepath.Rel(root, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("model package file %s resolves outside the package directory", p)
	}
	return full, nil
}

// KVHeadsPerGroup returns num_heads / num_kv_heads.
func (m *Manifest) KVHeadsPerGroup() int { return m.NumHeads / m.NumKVHeads }
