// Package export turns a checkpoint (a Hugging Face directory or a llama2.c
// .bin) into a strata model package (docs/design.md, "The package format"): one ONNX graph for the
// embedding, one per layer and one for the head, manifest.json and the
// tokenizer files. It also verifies a package against the plain-Go
// reference forward pass (Verify).
package export

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/internal/version"
	"github.com/strata-llm/strata/models/family"
	"github.com/strata-llm/strata/models/graph"
	"github.com/strata-llm/strata/models/manifest"
)

// ErrOutputNotEmpty is wrapped by the error for an output directory that
// exists and holds files while Options.Force is off.
var ErrOutputNotEmpty = errors.New("exists and is not empty")

// ErrBadInput is wrapped by the errors for a checkpoint that cannot be
// exported as it is: unreadable or inconsistent files, tensors that are
// missing, misshapen or non-finite, or tensors the export would not use.
var ErrBadInput = errors.New("bad checkpoint")

// inputError is an error about the checkpoint: its text is err's and it
// matches both err and ErrBadInput.
type inputError struct{ err error }

func (e inputError) Error() string   { return e.err.Error() }
func (e inputError) Unwrap() []error { return []error{e.err, ErrBadInput} }

// badInput marks err as the checkpoint's fault (ErrBadInput).
func badInput(err error) error {
	if err == nil || errors.Is(err, ErrBadInput) {
		return err
	}
	return inputError{err}
}

// inputSource marks every error reading a tensor as the checkpoint's.
type inputSource struct{ graph.WeightSource }

func (s inputSource) Tensor(name string) ([]float32, []int, error) {
	data, shape, err := s.WeightSource.Tensor(name)
	return data, shape, badInput(err)
}

// ReferenceFile is the name of the optional fp32 copy of the weights.
const ReferenceFile = "reference.safetensors"

// configKey is the reference file's metadata key holding the model config.
const configKey = "strata.config"

// Options configure Export.
type Options struct {
	In, Out string
	// DType of the graph weights: "fp32" (default), "fp16" or "int4".
	DType string
	// Int4Block is the int4 block size along K (0: graph.Int4BlockSize).
	Int4Block int
	// Compute is the graphs' activation type: "fp32" (default) or "fp16"
	// (graph.Options.Compute; what the GPU providers run).
	Compute string
	// MaxSeqLen is the KV buffer length; 0 takes the model's
	// max_position_embeddings, capped at graph.DefaultMaxSeqLen (models
	// without a position table, such as BLOOM, take graph.DefaultMaxSeqLen).
	MaxSeqLen int
	// Full also writes model_full.onnx (embedding, every layer, head in one graph).
	Full bool
	// Reference also writes reference.safetensors for `strata verify`.
	Reference bool
	// Force replaces an existing non-empty output directory.
	Force bool
	// Progress, when set, is called after each step with done of total steps.
	Progress func(done, total int)
}

// Result describes the package an export wrote or found up to date.
type Result struct {
	// Out is the package directory.
	Out string
	// UpToDate reports that Out already held the package this export
	// would write (same checkpoint, strata version and settings, files
	// unchanged): nothing was written.
	UpToDate bool
	// Manifest is the package's manifest.
	Manifest *manifest.Manifest
	// Bytes is the size of the package's files, manifest.json included.
	Bytes int64
}

// Export writes the package for opts.In into opts.Out (Write without its
// result).
func Export(ctx context.Context, opts Options) error {
	_, err := Write(ctx, opts)
	return err
}

// Write writes the package for opts.In into opts.Out, or leaves Out alone
// when it already holds that package (Result.UpToDate). The package is
// built in a temporary directory next to Out and renamed into place at the
// end; on any error or cancellation nothing is left behind. One export at a
// time writes to Out (ErrOutputBusy), and Out may not overlap the
// checkpoint (ErrOutputOverlapsInput).
func Write(ctx context.Context, opts Options) (res Result, err error) {
	if opts.DType == "" {
		opts.DType = graph.DTypeFP32
	}
	if err := graph.CheckDType(opts.DType); err != nil {
		return res, err
	}
	if opts.Compute == "" {
		opts.Compute = manifest.ComputeFP32
	}
	if err := manifest.CheckCompute(opts.DType, opts.Compute); err != nil {
		return res, err
	}
	if opts.Int4Block != 0 {
		if opts.DType != graph.DTypeInt4 {
			return res, fmt.Errorf("an int4 block size (%d) applies to int4 weights only, not %s", opts.Int4Block, opts.DType)
		}
		if err := manifest.CheckInt4Block(opts.Int4Block); err != nil {
			return res, err
		}
	}
	if opts.Out == "" {
		return res, errors.New("no output directory given")
	}
	if opts.MaxSeqLen < 0 || opts.MaxSeqLen > manifest.MaxSeqLen {
		return res, fmt.Errorf("max sequence length %d is out of range (1..%d)", opts.MaxSeqLen, manifest.MaxSeqLen)
	}
	given := filepath.Clean(opts.Out)
	if err := checkOverlap(opts.In, given); err != nil {
		return res, err
	}
	// Work on the directory --out names, whichever path names it: a
	// relative path, one through symbolic links, or a link to it lock,
	// check and replace the same directory.
	out, err := realPath(given)
	if err != nil {
		return res, fmt.Errorf("output %s: %w", given, err)
	}
	if err := checkOut(out, true); err != nil {
		return res, err
	}
	src, err := OpenSource(opts.In)
	if err != nil {
		return res, badInput(err)
	}
	defer src.Close()
	if unused := unusedTensors(src); len(unused) > 0 {
		return res, badInput(fmt.Errorf("checkpoint %s: %d tensors are not used by its config.json (%s): the config does not describe these weights", opts.In, len(unused), fewNames(unused, 3)))
	}
	model := src.Model
	maxPos := model.MaxPositions()
	maxSeq := opts.MaxSeqLen
	if maxSeq == 0 {
		maxSeq = graph.DefaultMaxSeqLen
		if maxPos > 0 {
			maxSeq = min(maxPos, graph.DefaultMaxSeqLen)
		}
	}
	if maxPos > 0 && maxSeq > maxPos {
		slog.Warn("max sequence length exceeds the model's max_position_embeddings", "max_seq_len", maxSeq, "max_position_embeddings", maxPos)
	}
	if err := checkMemory(model, maxSeq); err != nil {
		return res, err
	}
	prov := &manifest.Provenance{
		Strata: version.Version,
		Export: manifest.ExportSettings{DType: opts.DType, Compute: opts.Compute, MaxSeqLen: maxSeq, Full: opts.Full, Reference: opts.Reference},
	}
	if opts.DType == graph.DTypeInt4 {
		prov.Export.Int4BlockSize = cmp.Or(opts.Int4Block, graph.Int4BlockSize)
	}
	if prov.Source, err = hashSource(ctx, opts.In, src); err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		return res, badInput(err)
	}
	src.Weights = inputSource{finiteSource{src.Weights}}
	layers := model.NumLayers()
	dec := model.Decoder()

	parent := filepath.Dir(out)
	created, err := mkdirAll(parent)
	if err != nil {
		return res, fmt.Errorf("create output parent: %w", err)
	}
	unlockOut, err := lockOut(out)
	if err != nil {
		removeCreated(created)
		return res, err
	}
	defer unlockOut()
	if m, n, ok := upToDate(ctx, out, prov); ok {
		slog.Info("model package is up to date", "out", out)
		return Result{Out: given, UpToDate: true, Manifest: m, Bytes: n}, nil
	}
	if err := checkOut(out, opts.Force); err != nil {
		removeCreated(created)
		return res, err
	}
	cleanStale(out)
	tmp, err := os.MkdirTemp(parent, tmpPrefix(out))
	if err != nil {
		return res, fmt.Errorf("create temporary output: %w", err)
	}
	unlock := func() {}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			removeCreated(created)
		}
		unlock()
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return res, fmt.Errorf("create temporary output: %w", err)
	}
	release, err := lockTemp(tmp)
	if err != nil {
		return res, err
	}
	unlock = release

	total := layers + 3 // embed, layers, head, manifest
	if opts.Full {
		total++
	}
	if opts.Reference {
		total++
	}
	done := 0
	step := func() error {
		done++
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	gopts := graph.Options{DType: opts.DType, Compute: opts.Compute, MaxSeqLen: maxSeq, Int4Block: opts.Int4Block}
	m := model.Manifest()
	m.DType, m.MaxSeqLen = opts.DType, maxSeq
	if opts.Compute != manifest.ComputeFP32 {
		m.ComputeType = opts.Compute // fp32 packages keep the manifest they always had
	}
	if opts.DType == graph.DTypeInt4 {
		m.Int4BlockSize = cmp.Or(opts.Int4Block, graph.Int4BlockSize)
	}
	m.BOSID, m.EOSIDs, m.PadID, m.ULS = src.BOSID, src.EOSIDs, src.PadID, src.ULS
	m.PromptTemplate = src.PromptTemplate
	if m.EOSIDs == nil {
		m.EOSIDs = []int{}
	}
	write := func(what string, build func() (string, error)) (string, error) {
		file, err := build()
		if err != nil {
			return "", fmt.Errorf("export %s: %w", what, err)
		}
		name, err := filepath.Rel(tmp, file)
		if err != nil || !filepath.IsLocal(name) {
			name = filepath.Base(file)
		}
		if _, err := os.Stat(filepath.Join(tmp, name)); err != nil {
			return "", fmt.Errorf("export %s: graph file: %w", what, err)
		}
		return filepath.ToSlash(name), step()
	}
	if m.Files.Embed, err = write("embedding", func() (string, error) { return graph.WriteEmbed(tmp, dec, src.Weights, gopts) }); err != nil {
		return res, err
	}
	for l := 0; l < layers; l++ {
		name, err := write(fmt.Sprintf("layer %d", l), func() (string, error) { return graph.WriteLayer(tmp, dec, l, src.Weights, gopts) })
		if err != nil {
			return res, err
		}
		m.Files.Layers = append(m.Files.Layers, name)
	}
	if m.Files.Head, err = write("head", func() (string, error) { return graph.WriteHead(tmp, dec, src.Weights, gopts) }); err != nil {
		return res, err
	}
	if opts.Full {
		if m.Files.Full, err = write("full model", func() (string, error) { return graph.WriteFull(tmp, dec, src.Weights, gopts) }); err != nil {
			return res, err
		}
	}
	if opts.Reference {
		if err := WriteReference(filepath.Join(tmp, ReferenceFile), model, src.Weights); err != nil {
			return res, err
		}
		m.Files.Reference = ReferenceFile
		if err := step(); err != nil {
			return res, err
		}
	}
	for _, f := range src.Files {
		if err := copyFile(f, filepath.Join(tmp, filepath.Base(f))); err != nil {
			return res, fmt.Errorf("copy tokenizer files: %w", err)
		}
		if filepath.Base(f) == "tokenizer.json" {
			m.Files.Tokenizer = "tokenizer.json"
		}
	}
	if prov.Files, res.Bytes, err = hashPackage(ctx, tmp, &m); err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	m.Provenance = prov
	if err := m.Validate(); err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	if err := m.Save(tmp); err != nil {
		return res, fmt.Errorf("export: write manifest: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	unlock()
	unlock = func() {}
	if err := replace(tmp, out); err != nil {
		return res, err
	}
	done = total - 1
	step()
	slog.Info("exported model package", "out", out, "dtype", opts.DType, "architecture", model.Family(), "layers", layers, "max_seq_len", maxSeq)
	st, err := os.Stat(filepath.Join(out, manifest.FileName))
	if err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	return Result{Out: given, Manifest: &m, Bytes: res.Bytes + st.Size()}, nil
}

// fewNames is up to n of names, quoted and comma-separated, with "…" when
// there are more.
func fewNames(names []string, n int) string {
	var b strings.Builder
	for i, name := range names {
		if i == n {
			b.WriteString(", …")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", name)
	}
	return b.String()
}

// mkdirAll creates dir and its missing parents and returns the topmost
// directory it created ("" when dir existed).
func mkdirAll(dir string) (string, error) {
	top := ""
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		top = p
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return top, nil
}

// removeCreated removes the directories mkdirAll created for a failed
// export, as long as they are still empty.
func removeCreated(top string) {
	if top == "" {
		return
	}
	var dirs []string
	filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i]) // fails, harmlessly, on a directory that holds something
	}
}

// checkOut refuses an output path that is a file, or a non-empty directory
// without force.
func checkOut(out string, force bool) error {
	st, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("output %s exists and is not a directory", out)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	if len(entries) > 0 && !force {
		return fmt.Errorf("output %s: %w", out, ErrOutputNotEmpty)
	}
	return nil
}

// replace renames the finished package tmp to out, moving an existing out
// aside first and deleting it only once the new package is in place.
func replace(tmp, out string) error {
	_, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tmp, out); err != nil {
			return fmt.Errorf("move package into place: %w", err)
		}
		return nil
	}
	old := tmp + ".old"
	if err := os.Rename(out, old); err != nil {
		return fmt.Errorf("move old output aside: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Rename(old, out)
		return fmt.Errorf("move package into place: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove old output: %w", err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// WriteReference stores every weight the model needs as F32 in a
// safetensors file, one tensor at a time, under their canonical names, with
// the family's config in its metadata (family.FromConfig reads it back).
func WriteReference(path string, model family.Model, src graph.WeightSource) error {
	ws := model.Weights()
	specs := make([]safetensors.Spec, len(ws))
	for i, w := range ws {
		specs[i] = safetensors.Spec{Name: w.Name, DType: safetensors.F32, Shape: w.Shape}
	}
	js, err := json.Marshal(model.Config())
	if err != nil {
		return fmt.Errorf("reference weights: %w", err)
	}
	w, err := safetensors.Create(path, specs, map[string]string{"format": "pt", configKey: string(js)})
	if err != nil {
		return fmt.Errorf("reference weights: %w", err)
	}
	for _, spec := range ws {
		data, err := graph.Load(src, spec.Name, spec.Shape)
		if err == nil {
			err = w.Write(spec.Name, data)
		}
		if err != nil {
			w.Close()
			return fmt.Errorf("reference weights: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("reference weights: %w", err)
	}
	return nil
}
