package manifest_test

import (
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
)

func TestProvenanceValidate(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	files := []manifest.SourceFile{{Name: "model.safetensors", SHA256: sum, Bytes: 10}, {Name: "config.json", SHA256: sum, Bytes: 2}}
	good := func() *manifest.Provenance {
		return &manifest.Provenance{
			Strata: "1.0.0",
			Source: manifest.Source{Format: "hf", SHA256: manifest.SourceDigest(files), Files: files},
			Export: manifest.ExportSettings{DType: "fp32", Compute: "fp32", MaxSeqLen: 64},
			Files:  map[string]string{"embed.onnx": sum},
		}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good provenance: %v", err)
	}
	// The digest does not depend on the order files are listed in.
	swapped := []manifest.SourceFile{files[1], files[0]}
	if manifest.SourceDigest(swapped) != manifest.SourceDigest(files) {
		t.Error("source digest depends on file order")
	}
	if manifest.SourceDigest(files[:1]) == manifest.SourceDigest(files) {
		t.Error("source digest ignores a file")
	}
	tests := []struct {
		name string
		edit func(p *manifest.Provenance)
		want string
	}{
		{"no strata version", func(p *manifest.Provenance) { p.Strata = "" }, "no strata version"},
		{"unknown source format", func(p *manifest.Provenance) { p.Source.Format = "gguf" }, `source format "gguf"`},
		{"short source hash", func(p *manifest.Provenance) { p.Source.Files = []manifest.SourceFile{{Name: "x", SHA256: "abc"}} }, "not 64 hex digits"},
		{"digest of other files", func(p *manifest.Provenance) { p.Source.SHA256 = manifest.SourceDigest(files[:1]) }, "does not match its files"},
		{"file outside the package", func(p *manifest.Provenance) { p.Files["../x"] = sum }, "leaves the package directory"},
		{"file hash in upper case", func(p *manifest.Provenance) { p.Files["embed.onnx"] = strings.ToUpper(sum) }, "not 64 hex digits"},
	}
	for _, tc := range tests {
		p := good()
		tc.edit(p)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
