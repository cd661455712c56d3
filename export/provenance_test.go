package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-llm/strata/export/synth"
	"github.com/strata-llm/strata/internal/version"
	"github.com/strata-llm/strata/models/manifest"
)

// readTree maps every file under dir to its content.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestExportProvenance exports one checkpoint twice: the packages are
// byte-identical and the manifest names the checkpoint's files and hash,
// strata's version, the settings and every file written.
func TestExportProvenance(t *testing.T) {
	tests := []struct {
		name   string
		in     func(t *testing.T) string
		format string
		opts   Options
	}{
		{"hf int4", func(t *testing.T) string { return checkpoint(t, synth.Llama2Like()) }, "hf", Options{DType: "int4", Reference: true}},
		{"hf sharded fp16", func(t *testing.T) string {
			s := synth.Qwen2Like()
			s.Shards = 2
			return checkpoint(t, s)
		}, "hf", Options{DType: "fp16"}},
		{"llama2.c", llama2cFile, "llama2c", Options{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in(t)
			var pkgs []map[string]string
			var res Result
			for _, name := range []string{"a", "b"} {
				opts := tc.opts
				opts.In, opts.Out, opts.MaxSeqLen = in, filepath.Join(t.TempDir(), name), 32
				var err error
				if res, err = Write(context.Background(), opts); err != nil {
					t.Fatal(err)
				}
				pkgs = append(pkgs, readTree(t, opts.Out))
			}
			if len(pkgs[0]) != len(pkgs[1]) {
				t.Fatalf("exports hold %d and %d files", len(pkgs[0]), len(pkgs[1]))
			}
			for name, data := range pkgs[0] {
				if pkgs[1][name] != data {
					t.Errorf("%s differs between two exports of one checkpoint", name)
				}
			}
			var m manifest.Manifest
			if err := json.Unmarshal([]byte(pkgs[0][manifest.FileName]), &m); err != nil {
				t.Fatal(err)
			}
			p := m.Provenance
			if p == nil {
				t.Fatal("manifest has no provenance")
			}
			if p.Strata != version.Version || p.Source.Format != tc.format || p.Export.DType != cmpOr(tc.opts.DType, "fp32") || p.Export.Compute != "fp32" || p.Export.MaxSeqLen != 32 || p.Export.Reference != tc.opts.Reference {
				t.Errorf("provenance %+v", p)
			}
			if (p.Export.Int4BlockSize != 0) != (tc.opts.DType == "int4") {
				t.Errorf("int4 block size %d for dtype %q", p.Export.Int4BlockSize, tc.opts.DType)
			}
			// The source hash is the checkpoint's files' hashes.
			dir := in
			if tc.format == "llama2c" {
				dir = filepath.Dir(in)
			}
			for _, f := range p.Source.Files {
				data, err := os.ReadFile(filepath.Join(dir, f.Name))
				if err != nil || sha256Hex(data) != f.SHA256 || int64(len(data)) != f.Bytes {
					t.Errorf("source file %+v: %v", f, err)
				}
			}
			if p.Source.SHA256 != manifest.SourceDigest(p.Source.Files) || !strings.HasPrefix(p.Source.SHA256, "sha256:") {
				t.Errorf("source sha256 %s", p.Source.SHA256)
			}
			names := map[string]bool{}
			for _, f := range p.Source.Files {
				names[f.Name] = true
			}
			if tc.format == "hf" && (!names["config.json"] || len(names) < 2) {
				t.Errorf("hf source files %v lack config.json or weights", names)
			}
			if tc.format == "llama2c" && !names["model.bin"] {
				t.Errorf("llama2.c source files %v lack model.bin", names)
			}
			// Every file but the manifest is listed with its hash.
			var total int64
			for name, data := range pkgs[0] {
				total += int64(len(data))
				if name == manifest.FileName {
					continue
				}
				if p.Files[filepath.ToSlash(name)] != sha256Hex([]byte(data)) {
					t.Errorf("provenance files[%s] = %q, want the file's sha256", name, p.Files[name])
				}
			}
			if len(p.Files) != len(pkgs[0])-1 {
				t.Errorf("provenance lists %d files, the package holds %d besides the manifest", len(p.Files), len(pkgs[0])-1)
			}
			if res.Bytes != total || res.UpToDate {
				t.Errorf("result bytes %d (files %d), up to date %v", res.Bytes, total, res.UpToDate)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestExportUpToDate re-runs an export onto the package it wrote: nothing is
// touched; other settings or a changed file still need Force.
func TestExportUpToDate(t *testing.T) {
	in := checkpoint(t, synth.Llama2Like())
	out := filepath.Join(t.TempDir(), "pkg")
	opts := Options{In: in, Out: out, DType: "fp16", MaxSeqLen: 32}
	first, err := Write(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	manifestPath := filepath.Join(out, manifest.FileName)
	os.Chtimes(manifestPath, old, old)
	again, err := Write(context.Background(), opts)
	if err != nil || !again.UpToDate || again.Bytes != first.Bytes || again.Manifest.Provenance.Source.SHA256 != first.Manifest.Provenance.Source.SHA256 {
		t.Fatalf("re-export: %+v, %v", again, err)
	}
	if st, _ := os.Stat(manifestPath); !st.ModTime().Equal(old) {
		t.Error("an up-to-date export rewrote manifest.json")
	}
	if extra := leftovers(t, filepath.Dir(out), "pkg"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
	other := opts
	other.DType = "fp32"
	if _, err := Write(context.Background(), other); !errors.Is(err, ErrOutputNotEmpty) {
		t.Errorf("export with other settings: %v, want ErrOutputNotEmpty", err)
	}
	layer := filepath.Join(out, first.Manifest.Files.Layers[0])
	data, _ := os.ReadFile(layer)
	data[len(data)-1] ^= 1
	os.WriteFile(layer, data, 0o644)
	if _, err := Write(context.Background(), opts); !errors.Is(err, ErrOutputNotEmpty) {
		t.Errorf("export onto a package with a changed layer: %v, want ErrOutputNotEmpty", err)
	}
	opts.Force = true
	if res, err := Write(context.Background(), opts); err != nil || res.UpToDate {
		t.Errorf("forced export onto a changed package: %+v, %v", res, err)
	}
}

// TestExportOutOverlapsIn refuses every way of naming an output that is the
// checkpoint, lies inside it or holds it, and leaves the checkpoint intact.
func TestExportOutOverlapsIn(t *testing.T) {
	root := t.TempDir()
	in := filepath.Join(root, "ckpt")
	if err := synth.Write(in, synth.Llama2Like()); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(in, link); err != nil {
		t.Fatal(err)
	}
	bin := llama2cFile(t)
	t.Chdir(root)
	before := readTree(t, in)
	tests := []struct{ name, in, out string }{
		{"out is in", in, in},
		{"out is in, by a symlink", in, link},
		{"out is in, relative", in, "ckpt"},
		{"out is in, relative with ..", "./ckpt", "ckpt/../ckpt/."},
		{"out inside in", in, filepath.Join(in, "pkg")},
		{"out inside in, through a symlink", in, filepath.Join(link, "pkg")},
		{"out inside in, relative", "ckpt", "ckpt/sub/pkg"},
		{"out holds in", in, root},
		{"out holds in, relative", "ckpt", "."},
		{"out is the llama2.c file", bin, bin},
		{"out holds the llama2.c file", bin, filepath.Dir(bin)},
	}
	for _, tc := range tests {
		_, err := Write(context.Background(), Options{In: tc.in, Out: tc.out, MaxSeqLen: 32, Force: true})
		if !errors.Is(err, ErrOutputOverlapsInput) {
			t.Errorf("%s: err = %v, want ErrOutputOverlapsInput", tc.name, err)
		}
	}
	after := readTree(t, in)
	if len(after) != len(before) {
		t.Fatalf("checkpoint had %d files, now %d", len(before), len(after))
	}
	for name, data := range before {
		if after[name] != data {
			t.Errorf("checkpoint file %s changed", name)
		}
	}
	if _, err := os.Stat(bin); err != nil {
		t.Errorf("llama2.c checkpoint: %v", err)
	}
	if _, err := Write(context.Background(), Options{In: "ckpt", Out: "pkg", MaxSeqLen: 32}); err != nil {
		t.Errorf("export next to the checkpoint: %v", err)
	}
}

// TestExportOutLocked: while one export holds the output's lock another
// fails at once and leaves nothing behind; once released it succeeds.
func TestExportOutLocked(t *testing.T) {
	in := checkpoint(t, synth.Llama2Like())
	parent := t.TempDir()
	out := filepath.Join(parent, "pkg")
	unlock, err := lockOut(out)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Write(context.Background(), Options{In: in, Out: out, MaxSeqLen: 32, Force: true})
	if !errors.Is(err, ErrOutputBusy) || strings.Count(err.Error(), "\n") > 0 {
		t.Errorf("export into a locked output: %v, want ErrOutputBusy", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output exists after a refused export: %v", err)
	}
	// The same directory through a link to its parent, a link to itself
	// and a relative path.
	linkParent := filepath.Join(t.TempDir(), "parent-link")
	os.Symlink(parent, linkParent)
	t.Chdir(parent)
	for _, via := range []string{filepath.Join(linkParent, "pkg"), "pkg", "./pkg/"} {
		if _, err := Write(context.Background(), Options{In: in, Out: via, MaxSeqLen: 32, Force: true}); !errors.Is(err, ErrOutputBusy) {
			t.Errorf("export into the locked output as %s: %v, want ErrOutputBusy", via, err)
		}
	}
	unlock()
	if _, err := Write(context.Background(), Options{In: in, Out: out, MaxSeqLen: 32}); err != nil {
		t.Fatal(err)
	}
	outLink := filepath.Join(t.TempDir(), "pkg-link")
	os.Symlink(out, outLink)
	unlock, err = lockOut(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(context.Background(), Options{In: in, Out: outLink, MaxSeqLen: 32, Force: true}); !errors.Is(err, ErrOutputBusy) {
		t.Errorf("export into the locked output through a link to it: %v, want ErrOutputBusy", err)
	}
	unlock()
	res, err := Write(context.Background(), Options{In: in, Out: outLink, DType: "fp16", MaxSeqLen: 32, Force: true})
	if err != nil || res.Out != outLink {
		t.Fatalf("export through a link to the output: %+v, %v", res, err)
	}
	if m, err := manifest.Load(out); err != nil || m.DType != "fp16" {
		t.Errorf("the linked directory was not replaced: %+v, %v", m, err)
	}
	if st, err := os.Lstat(outLink); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link itself was replaced: %v", err)
	}
	if extra := leftovers(t, parent, "pkg"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}

// TestExportConcurrent runs two exports with different settings into one
// output: exactly one succeeds, and the package is the winner's.
func TestExportConcurrent(t *testing.T) {
	in := checkpoint(t, synth.Llama2Like())
	out := filepath.Join(t.TempDir(), "pkg")
	errs := make(chan error, 2)
	for _, dtype := range []string{"fp32", "fp16"} {
		go func() {
			_, err := Write(context.Background(), Options{In: in, Out: out, DType: dtype, MaxSeqLen: 32})
			errs <- err
		}()
	}
	var failed []error
	for range 2 {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) != 1 || !(errors.Is(failed[0], ErrOutputBusy) || errors.Is(failed[0], ErrOutputNotEmpty)) {
		t.Fatalf("two exports into one output: errors %v, want exactly one busy or not-empty", failed)
	}
	if _, err := manifest.Load(out); err != nil {
		t.Error(err)
	}
}

// TestExportUnusedTensors: a config.json describing fewer layers than the
// weights hold is an error naming the tensors it would drop.
func TestExportUnusedTensors(t *testing.T) {
	in := checkpoint(t, synth.Llama2Like())
	path := filepath.Join(in, "config.json")
	data, _ := os.ReadFile(path)
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["num_hidden_layers"] = cfg["num_hidden_layers"].(float64) - 1
	data, _ = json.Marshal(cfg)
	os.WriteFile(path, data, 0o644)
	parent := t.TempDir()
	_, err := Write(context.Background(), Options{In: in, Out: filepath.Join(parent, "pkg"), MaxSeqLen: 32})
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "not used by its config.json") || !strings.Contains(err.Error(), `"model.layers.`) {
		t.Fatalf("err = %v", err)
	}
	if extra := leftovers(t, parent); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}
