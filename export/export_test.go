package export

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/export/llama2c"
	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/export/synth"
	"github.com/strata-llm/strata/internal/filelock"
	"github.com/strata-llm/strata/models/family"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

// checkpoint writes a synthetic checkpoint and returns its directory.
func checkpoint(t *testing.T, s synth.Spec) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := synth.Write(dir, s); err != nil {
		t.Fatal(err)
	}
	return dir
}

// llama2cFile writes a llama2.c checkpoint next to a tokenizer.json.
func llama2cFile(t *testing.T) string {
	t.Helper()
	h := llama2c.Header{Dim: 64, HiddenDim: 96, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 64, Shared: false, SeqLen: 64}
	dir := t.TempDir()
	p := filepath.Join(dir, "model.bin")
	if err := llama2c.Write(p, h, llama.RandomWeights(h.Config(), 3)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"model":{}}`), 0o644)
	return p
}

// leftovers lists the entries of dir other than keep.
func leftovers(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if !slices.Contains(keep, e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestExport(t *testing.T) {
	sharded := synth.Qwen2Like()
	sharded.Shards = 3
	sharded.ULS = map[string]any{"ratios": []float64{2}, "default_schedule": "uls:2"}
	bf16 := synth.MistralLike()
	bf16.DType = safetensors.BF16
	tests := []struct {
		name      string
		in        func(t *testing.T) string
		dtype     string
		full, ref bool
		tokenizer bool
		uls       string
	}{
		{name: "llama2 fp32 full+ref", in: func(t *testing.T) string { return checkpoint(t, synth.Llama2Like()) }, dtype: "fp32", full: true, ref: true},
		{name: "qwen2 sharded fp16", in: func(t *testing.T) string { return checkpoint(t, sharded) }, dtype: "fp16", uls: "uls:2"},
		{name: "mistral bf16 int4", in: func(t *testing.T) string { return checkpoint(t, bf16) }, dtype: "int4", ref: true},
		{name: "llama2.c fp32", in: llama2cFile, dtype: "", tokenizer: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in(t)
			parent := t.TempDir()
			out := filepath.Join(parent, "pkg")
			var calls, last, total int
			err := Export(context.Background(), Options{In: in, Out: out, DType: tc.dtype, MaxSeqLen: 64, Full: tc.full, Reference: tc.ref,
				Progress: func(d, n int) { calls++; last, total = d, n }})
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.dtype
			if want == "" {
				want = "fp32"
			}
			if m.DType != want || m.MaxSeqLen != 64 || len(m.Files.Layers) != m.NumLayers {
				t.Errorf("manifest %+v", m)
			}
			if (m.Files.Full != "") != tc.full || (m.Files.Reference != "") != tc.ref || (m.Files.Tokenizer != "") != tc.tokenizer {
				t.Errorf("files %+v", m.Files)
			}
			if m.ULS.DefaultSchedule != tc.uls {
				t.Errorf("uls %+v, want %q", m.ULS, tc.uls)
			}
			for _, f := range append([]string{m.Files.Embed, m.Files.Head, m.Files.Full, m.Files.Reference, m.Files.Tokenizer}, m.Files.Layers...) {
				if f == "" {
					continue
				}
				if _, err := manifest.Resolve(out, f); err != nil {
					t.Error(err)
				}
			}
			if last != total || calls != total || total < m.NumLayers+3 {
				t.Errorf("progress: %d calls, last %d of %d", calls, last, total)
			}
			if extra := leftovers(t, parent, "pkg"); len(extra) > 0 {
				t.Errorf("left behind: %v", extra)
			}
			if tc.ref {
				c, err := safetensors.OpenCheckpoint(filepath.Join(out, ReferenceFile))
				if err != nil {
					t.Fatal(err)
				}
				model, err := family.FromConfig(m.Architecture, []byte(c.Metadata(configKey)))
				if err != nil || model.NumLayers() != m.NumLayers {
					t.Errorf("reference config %+v %v", model, err)
				}
				info, _ := c.Info(llama.EmbedName)
				if info.DType != safetensors.F32 {
					t.Errorf("reference dtype %s", info.DType)
				}
				c.Close()
			}
		})
	}
}

func TestExportQwenSpecials(t *testing.T) {
	in := checkpoint(t, synth.Qwen2Like())
	out := filepath.Join(t.TempDir(), "pkg")
	if err := Export(context.Background(), Options{In: in, Out: out, MaxSeqLen: 32}); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.BOSID != 1 || !slices.Equal(m.EOSIDs, []int{2, 3}) || m.PadID != -1 || m.NumKVHeads != 2 {
		t.Errorf("manifest %+v", m)
	}
	if _, err := os.Stat(filepath.Join(out, "generation_config.json")); err != nil {
		t.Error("generation_config.json not copied")
	}
}

// TestExportInt4Block: the block size reaches the manifest and the graphs
// (block 16 stores twice the scales of 32: larger weight files), and is
// refused for other dtypes and for sizes MatMulNBits does not take.
func TestExportInt4Block(t *testing.T) {
	in := checkpoint(t, synth.Llama2Like())
	layerBytes := map[int]int64{}
	for _, block := range []int{0, 16} {
		out := filepath.Join(t.TempDir(), "pkg")
		if err := Export(context.Background(), Options{In: in, Out: out, DType: "int4", Int4Block: block, MaxSeqLen: 32}); err != nil {
			t.Fatal(err)
		}
		m, err := manifest.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if want := cmp.Or(block, 32); m.Int4BlockSize != want || m.Int4Block() != want {
			t.Errorf("block %d: manifest int4_block_size %d", block, m.Int4BlockSize)
		}
		st, err := os.Stat(filepath.Join(out, m.Files.Layers[0]+".data"))
		if err != nil {
			t.Fatal(err)
		}
		layerBytes[block] = st.Size()
	}
	if layerBytes[16] <= layerBytes[0] {
		t.Errorf("layer weights: %d bytes at block 16, %d at 32", layerBytes[16], layerBytes[0])
	}
	for _, o := range []Options{{DType: "fp16", Int4Block: 64}, {DType: "int4", Int4Block: 48}} {
		o.In, o.Out = in, filepath.Join(t.TempDir(), "bad")
		if err := Export(context.Background(), o); err == nil || !strings.Contains(err.Error(), "block size") {
			t.Errorf("%+v: error %v", o, err)
		}
		if _, err := os.Stat(o.Out); err == nil {
			t.Errorf("%+v: %s left behind", o, o.Out)
		}
	}
}

func TestExportErrors(t *testing.T) {
	editJSON := func(file, old, new string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, file)
			b, _ := os.ReadFile(p)
			if !strings.Contains(string(b), old) {
				t.Fatalf("%s lacks %q", file, old)
			}
			os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
		}
	}
	tests := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		opts   func(o *Options)
		want   string
	}{
		{name: "missing config key", mutate: editJSON("config.json", `"vocab_size"`, `"vocab_sizes"`), want: "vocab_size"},
		{name: "unknown architecture", mutate: func(t *testing.T, dir string) {
			editJSON("config.json", `"llama"`, `"gpt_neox"`)(t, dir)
			editJSON("config.json", `"LlamaForCausalLM"`, `"GPTNeoXForCausalLM"`)(t, dir)
		}, want: "unsupported architecture"},
		{name: "shape mismatch", mutate: editJSON("config.json", `"intermediate_size": 128`, `"intermediate_size": 96`), want: "shape"},
		{name: "truncated safetensors", mutate: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()/2)
		}, want: "truncated"},
		{name: "header length beyond file", mutate: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			f, _ := os.OpenFile(p, os.O_WRONLY, 0)
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], 1<<20)
			f.WriteAt(b[:], 0)
			f.Close()
		}, want: "beyond the file size"},
		{name: "NaN weight", mutate: poke("model.layers.1.mlp.up_proj.weight", 5, float32(math.NaN())), want: `tensor "model.layers.1.mlp.up_proj.weight" holds a non-finite value (NaN at element 5)`},
		{name: "Inf weight", mutate: poke("model.norm.weight", 0, float32(math.Inf(-1))), want: `tensor "model.norm.weight" holds a non-finite value (-Inf at element 0)`},
		{name: "trailing garbage", mutate: func(t *testing.T, dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, "model.safetensors"), os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte("garbage"))
			f.Close()
		}, want: "7 bytes of trailing data"},
		{name: "absurd layer count", mutate: editJSON("config.json", `"num_hidden_layers": 4`, `"num_hidden_layers": 100000000`), want: "num_hidden_layers = 100000000 is out of range"},
		{name: "absurd max sequence length", opts: func(o *Options) { o.MaxSeqLen = 1 << 40 }, want: "max sequence length 1099511627776 is out of range"},
		{name: "bad dtype", opts: func(o *Options) { o.DType = "int8" }, want: "int8"},
		{name: "missing input", opts: func(o *Options) { o.In += "-nope" }, want: "no such file"},
		{name: "file of an HF checkpoint", opts: func(o *Options) { o.In = filepath.Join(o.In, "model.safetensors") }, want: "checkpoint directory"},
		{name: "garbage .bin", mutate: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "x.bin"), []byte("not a checkpoint at all, just text"), 0o644)
		}, opts: func(o *Options) { o.In = filepath.Join(o.In, "x.bin") }, want: "llama2.c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := checkpoint(t, synth.Llama2Like())
			if tc.mutate != nil {
				tc.mutate(t, in)
			}
			parent := t.TempDir()
			o := Options{In: in, Out: filepath.Join(parent, "pkg"), MaxSeqLen: 32}
			if tc.opts != nil {
				tc.opts(&o)
			}
			err := Export(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if extra := leftovers(t, parent); len(extra) > 0 {
				t.Errorf("left behind: %v", extra)
			}
		})
	}
}

// poke overwrites one float32 element of a tensor in dir/model.safetensors.
func poke(tensor string, index int, v float32) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		if err := synth.SetFloat(dir, tensor, index, v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExportCleansStaleTemporaries checks that an export removes the
// temporary directory a killed export of the same output left behind, and
// only that: not one still locked by a live export, not one without the
// lock file, not one of another output.
func TestExportCleansStaleTemporaries(t *testing.T) {
	in := checkpoint(t, synth.Llama2Like())
	parent := t.TempDir()
	mk := func(name string, lock bool) string {
		dir := filepath.Join(parent, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "layer_00.onnx.data"), make([]byte, 1<<16), 0o644)
		if lock {
			os.WriteFile(filepath.Join(dir, lockName), []byte("12345\n"), 0o644)
		}
		return dir
	}
	dead := mk(".pkg.tmp-111", true)
	live := mk(".pkg.tmp-222", true)
	unknown := mk(".pkg.tmp-333", false)
	other := mk(".other.tmp-444", true)
	held, err := os.Open(filepath.Join(live, lockName))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := filelock.TryLock(held); err != nil {
		t.Fatal(err)
	}
	if err := Export(context.Background(), Options{In: in, Out: filepath.Join(parent, "pkg"), MaxSeqLen: 32}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale temporary %s is still there (%v)", dead, err)
	}
	for _, d := range []string{live, unknown, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "pkg", lockName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the package holds the export lock file (%v)", err)
	}
}

func TestExportOutput(t *testing.T) {
	in := checkpoint(t, synth.Llama2Like())
	parent := t.TempDir()
	out := filepath.Join(parent, "pkg")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "keep.txt"), []byte("x"), 0o644)
	err := Export(context.Background(), Options{In: in, Out: out, MaxSeqLen: 32})
	if !errors.Is(err, ErrOutputNotEmpty) || strings.Contains(err.Error(), "--") {
		t.Fatalf("non-empty out: err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "keep.txt")); err != nil {
		t.Fatal("existing output was touched")
	}
	if err := Export(context.Background(), Options{In: in, Out: out, MaxSeqLen: 32, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "keep.txt")); err == nil {
		t.Error("forced export kept the old content")
	}
	if _, err := manifest.Load(out); err != nil {
		t.Error(err)
	}
	if extra := leftovers(t, parent, "pkg"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
	file := filepath.Join(parent, "file")
	os.WriteFile(file, nil, 0o644)
	if err := Export(context.Background(), Options{In: in, Out: file, Force: true}); err == nil {
		t.Error("output that is a file: no error")
	}
	empty := filepath.Join(parent, "empty")
	os.Mkdir(empty, 0o755)
	if err := Export(context.Background(), Options{In: in, Out: empty, MaxSeqLen: 32}); err != nil {
		t.Errorf("empty output dir: %v", err)
	}
}

func TestExportCancel(t *testing.T) {
	in := checkpoint(t, synth.Llama2Like())
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := Export(ctx, Options{In: in, Out: filepath.Join(parent, "pkg"), MaxSeqLen: 32,
		Progress: func(done, total int) {
			if done == 2 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if extra := leftovers(t, parent); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}
