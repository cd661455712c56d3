package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-llm/strata/export/hf"
	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/models/manifest"
)

// sourceFiles lists the files an export reads from the checkpoint at in:
// for a Hugging Face directory its config files, safetensors index and
// shards and tokenizer files, named relative to the directory; for a
// llama2.c .bin the file and the tokenizer files next to it, by name.
func sourceFiles(in string, src *Source) (format, dir string, names []string) {
	c, ok := src.Weights.(*hf.Checkpoint)
	if !ok {
		dir = filepath.Dir(in)
		names = append(names, filepath.Base(in))
		for _, f := range src.Files {
			names = append(names, filepath.Base(f))
		}
		return "llama2c", dir, names
	}
	dir = c.Dir
	add := func(p string) {
		if rel, err := filepath.Rel(dir, p); err == nil && filepath.IsLocal(rel) {
			names = append(names, filepath.ToSlash(rel))
		}
	}
	for _, name := range []string{"config.json", "generation_config.json", safetensors.IndexFile} {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil && st.Mode().IsRegular() {
			names = append(names, name)
		}
	}
	for _, p := range c.Weights.Paths() {
		add(p)
	}
	for _, f := range src.Files {
		add(f)
	}
	slices.Sort(names)
	return "hf", dir, slices.Compact(names)
}

// hashSource hashes the checkpoint's files (manifest.Source).
func hashSource(ctx context.Context, in string, src *Source) (manifest.Source, error) {
	format, dir, names := sourceFiles(in, src)
	s := manifest.Source{Format: format, Files: make([]manifest.SourceFile, 0, len(names))}
	for _, name := range names {
		sum, n, err := hashFile(ctx, filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return manifest.Source{}, fmt.Errorf("hash checkpoint: %w", err)
		}
		s.Files = append(s.Files, manifest.SourceFile{Name: name, SHA256: sum, Bytes: n})
	}
	s.SHA256 = manifest.SourceDigest(s.Files)
	return s, nil
}

// hashFile returns the sha256 (hex) and size of the file at path.
func hashFile(ctx context.Context, path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ctxReader stops a long read once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// packageFiles lists every file of the package in dir that m names, with
// the external data files next to its graphs, by package path.
func packageFiles(dir string, m *manifest.Manifest) []string {
	var names []string
	for _, f := range append([]string{m.Files.Embed, m.Files.Head, m.Files.HeadLast, m.Files.Full, m.Files.Tokenizer, m.Files.Reference}, m.Files.Layers...) {
		if f == "" {
			continue
		}
		names = append(names, f)
		if strings.HasSuffix(f, ".onnx") {
			if st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f)+".data")); err == nil && st.Mode().IsRegular() {
				names = append(names, f+".data")
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		// Tokenizer and generation files copied from the checkpoint.
		if slices.Contains(hf.TokenizerFiles, e.Name()) && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// hashPackage hashes the files of the package in dir (Provenance.Files) and
// returns their total size.
func hashPackage(ctx context.Context, dir string, m *manifest.Manifest) (map[string]string, int64, error) {
	sums := map[string]string{}
	var total int64
	for _, name := range packageFiles(dir, m) {
		sum, n, err := hashFile(ctx, filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return nil, 0, err
		}
		sums[name] = sum
		total += n
	}
	return sums, total, nil
}

// upToDate reports whether the package in out is the one an export with
// want (provenance without Files) would write: its manifest records the
// same strata version, checkpoint and settings, and every file it lists
// still has the recorded hash. It returns the package's manifest and size.
func upToDate(ctx context.Context, out string, want *manifest.Provenance) (*manifest.Manifest, int64, bool) {
	m, err := manifest.Load(out)
	if err != nil || m.Provenance == nil || len(m.Provenance.Files) == 0 {
		return nil, 0, false
	}
	got := *m.Provenance
	if got.Strata != want.Strata || got.Export != want.Export || got.Source.SHA256 != want.Source.SHA256 {
		return nil, 0, false
	}
	sums, total, err := hashPackage(ctx, out, m)
	if err != nil || len(sums) != len(got.Files) {
		return nil, 0, false
	}
	for name, sum := range sums {
		if got.Files[name] != sum {
			return nil, 0, false
		}
	}
	st, err := os.Stat(filepath.Join(out, manifest.FileName))
	if err != nil {
		return nil, 0, false
	}
	return m, total + st.Size(), true
}

// unusedTensors returns the checkpoint tensors the export does not read, in
// checkpoint order (nil for a llama2.c file, whose layout is fixed by its
// header). Rotary inverse-frequency buffers, which some checkpoints store
// and strata recomputes from the config, are not counted.
func unusedTensors(src *Source) []string {
	c, ok := src.Weights.(*hf.Checkpoint)
	if !ok {
		return nil
	}
	has := c.Weights.Has
	used := map[string]bool{}
	for _, w := range src.Model.Weights() {
		used[src.Model.StoredName(w.Name, has)] = true
	}
	var unused []string
	for _, name := range c.Weights.Names() {
		if !used[name] && !strings.HasSuffix(name, "rotary_emb.inv_freq") {
			unused = append(unused, name)
		}
	}
	return unused
}
