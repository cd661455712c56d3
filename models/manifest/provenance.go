package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Provenance records what a package was exported from and how
// (docs/design.md, "The package format"). It holds nothing that depends on
// the time or the place of the export, so two exports of one checkpoint
// with one strata version and the same flags are byte-identical.
type Provenance struct {
	// Strata is the version of strata that exported the package.
	Strata string `json:"strata"`
	// Source identifies the checkpoint.
	Source Source `json:"source"`
	// Export holds the export settings that shape the package.
	Export ExportSettings `json:"export"`
	// Files maps every file the export wrote, except manifest.json, to its
	// sha256 (hex).
	Files map[string]string `json:"files,omitempty"`
}

// Source identifies a checkpoint by the content of the files an export
// reads from it.
type Source struct {
	// Format is "hf" (a Hugging Face checkpoint directory) or "llama2c"
	// (a llama2.c .bin file).
	Format string `json:"format"`
	// SHA256 is SourceDigest of Files: one hash for the whole checkpoint.
	SHA256 string `json:"sha256"`
	// Files are the checkpoint's files, sorted by name.
	Files []SourceFile `json:"files"`
}

// SourceFile is one file of a checkpoint.
type SourceFile struct {
	// Name is the file's path relative to the checkpoint directory (the
	// file name for a llama2.c .bin and the files next to it).
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// ExportSettings are the settings an export ran with, as resolved (a
// default spelled out).
type ExportSettings struct {
	DType         string `json:"dtype"`
	Compute       string `json:"compute"`
	Int4BlockSize int    `json:"int4_block_size,omitempty"`
	MaxSeqLen     int    `json:"max_seq_len"`
	Full          bool   `json:"full,omitempty"`
	Reference     bool   `json:"reference,omitempty"`
}

// SourceDigest is the sha256 of the lines "<sha256>  <name>\n" of files
// sorted by name (what sha256sum prints), as "sha256:<hex>".
func SourceDigest(files []SourceFile) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b SourceFile) int { return strings.Compare(a.Name, b.Name) })
	h := sha256.New()
	for _, f := range sorted {
		fmt.Fprintf(h, "%s  %s\n", f.SHA256, f.Name)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate checks the provenance's hashes and paths.
func (p *Provenance) Validate() error {
	if p.Strata == "" {
		return fmt.Errorf("provenance: no strata version")
	}
	switch p.Source.Format {
	case "hf", "llama2c":
	default:
		return fmt.Errorf("provenance: source format %q is not one of hf, llama2c", p.Source.Format)
	}
	for _, f := range p.Source.Files {
		if !hexSHA256.MatchString(f.SHA256) {
			return fmt.Errorf("provenance: source file %q: sha256 %q is not 64 hex digits", f.Name, f.SHA256)
		}
	}
	if want := SourceDigest(p.Source.Files); p.Source.SHA256 != want {
		return fmt.Errorf("provenance: source sha256 %s does not match its files' (%s)", p.Source.SHA256, want)
	}
	for name, sum := range p.Files {
		if err := CheckRelPath(name); err != nil {
			return fmt.Errorf("provenance files: %w", err)
		}
		if !hexSHA256.MatchString(sum) {
			return fmt.Errorf("provenance files: %q: sha256 %q is not 64 hex digits", name, sum)
		}
	}
	return nil
}
