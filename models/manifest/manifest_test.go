package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// valid returns a small manifest that passes Validate.
func valid() *Manifest {
	return &Manifest{
		Format: Format, Architecture: "llama", NumLayers: 2, HiddenSize: 64, NumHeads: 4, NumKVHeads: 2,
		HeadDim: 16, IntermediateSize: 96, VocabSize: 100, MaxSeqLen: 32, Rope: Rope{Theta: 10000},
		NormEps: 1e-5, DType: "fp32", BOSID: 1, EOSIDs: []int{2}, PadID: 0,
		Files: Files{Embed: "embed.onnx", Layers: []string{"layer_00.onnx", "layer_01.onnx"}, Head: "head.onnx",
			Tokenizer: "tokenizer.json"},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(m *Manifest)
		want   string // "" means valid
	}{
		{"valid", func(*Manifest) {}, ""},
		{"newer format", func(m *Manifest) { m.Format = "strata/v2" }, "upgrade strata"},
		{"foreign format", func(m *Manifest) { m.Format = "gguf" }, "not a strata model package"},
		{"empty format", func(m *Manifest) { m.Format = "" }, "not a strata model package"},
		{"zero layers", func(m *Manifest) { m.NumLayers = 0; m.Files.Layers = nil }, "num_layers = 0 is out of range"},
		{"too many layers", func(m *Manifest) { m.NumLayers = 5000 }, "num_layers = 5000 is out of range"},
		{"negative hidden", func(m *Manifest) { m.HiddenSize = -1 }, "hidden_size = -1"},
		{"huge hidden", func(m *Manifest) { m.HiddenSize = 1 << 30 }, "hidden_size"},
		{"huge vocab", func(m *Manifest) { m.VocabSize = 1 << 25 }, "vocab_size"},
		{"huge max_seq_len", func(m *Manifest) { m.MaxSeqLen = 1 << 23 }, "max_seq_len"},
		{"zero kv heads", func(m *Manifest) { m.NumKVHeads = 0 }, "num_kv_heads = 0"},
		{"heads not multiple", func(m *Manifest) { m.NumKVHeads = 3 }, "not a multiple"},
		{"unknown dtype", func(m *Manifest) { m.DType = "bf16" }, "dtype \"bf16\""},
		{"int4 block size not a power of two", func(m *Manifest) { m.Int4BlockSize = 48 }, "int4_block_size: int4 block size 48"},
		{"unknown compute type", func(m *Manifest) { m.ComputeType = "bf16" }, `compute_type: compute type "bf16"`},
		{"fp16 compute over fp32 weights", func(m *Manifest) { m.DType, m.ComputeType = "fp32", "fp16" }, "compute_type: compute type fp16 needs dtype fp16 or int4"},
		{"layer count mismatch", func(m *Manifest) { m.Files.Layers = m.Files.Layers[:1] }, "lists 1 layer files for num_layers 2"},
		{"empty embed", func(m *Manifest) { m.Files.Embed = "" }, "required graph path is empty"},
		{"empty layer", func(m *Manifest) { m.Files.Layers[1] = "" }, "required graph path is empty"},
		{"head escapes", func(m *Manifest) { m.Files.Head = "../../etc/passwd" }, "leaves the package"},
		{"layer escapes through subdir", func(m *Manifest) { m.Files.Layers[0] = "sub/../../x.onnx" }, "leaves the package"},
		{"absolute tokenizer", func(m *Manifest) { m.Files.Tokenizer = "/etc/passwd" }, "must be relative"},
		{"backslash reference", func(m *Manifest) { m.Files.Reference = `..\..\secret` }, "must be relative"},
		{"drive letter full", func(m *Manifest) { m.Files.Full = "C:model.onnx" }, "must be relative"},
		{"dot head_last", func(m *Manifest) { m.Files.HeadLast = "." }, "leaves the package"},
		{"bos outside vocab", func(m *Manifest) { m.BOSID = 100 }, "outside the vocabulary"},
		{"eos negative", func(m *Manifest) { m.EOSIDs = []int{-2} }, "outside the vocabulary"},
		{"pad -1 allowed", func(m *Manifest) { m.PadID = -1 }, ""},
		{"subdirectory allowed", func(m *Manifest) { m.Files.Layers[0] = "layers/layer_00.onnx" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			tc.modify(m)
			err := m.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckRelPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"layer_00.onnx", true},
		{"sub/layer_00.onnx", true},
		{"./layer.onnx", true},
		{"a/../b.onnx", true},
		{"weights..data", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"../../etc/passwd", false},
		{"a/../../x", false},
		{"/etc/passwd", false},
		{`\\server\share\x`, false},
		{`sub\x.onnx`, false},
		{"C:/x.onnx", false},
		{"a/./../..", false},
	}
	for _, tc := range tests {
		err := CheckRelPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("CheckRelPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	pkg := filepath.Join(root, "pkg")
	outside := filepath.Join(root, "secret.txt")
	for _, dir := range []string{pkg, filepath.Join(pkg, "sub")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{outside, filepath.Join(pkg, "a.onnx"), filepath.Join(pkg, "sub", "b.onnx")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"out.onnx":      outside,                         // absolute link leaving the package
		"rel-out.onnx":  "../secret.txt",                 // relative link leaving the package
		"in.onnx":       "a.onnx",                        // link staying inside
		"sub/up.onnx":   "../a.onnx",                     // link inside, through ..
		"dirlink":       root,                            // directory link leaving the package
		"dangling.onnx": filepath.Join(root, "missing"),  // link to nothing
		"loop.onnx":     filepath.Join(pkg, "loop.onnx"), // link to itself
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(pkg, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		path string
		want string // "" means it resolves inside the package
	}{
		{"a.onnx", ""},
		{"sub/b.onnx", ""},
		{"in.onnx", ""},
		{"sub/up.onnx", ""},
		{"out.onnx", "outside the package"},
		{"rel-out.onnx", "outside the package"},
		{"dirlink/secret.txt", "outside the package"},
		{"dangling.onnx", "no such file"},
		{"loop.onnx", "too many links"},
		{"missing.onnx", "no such file"},
		{"../secret.txt", "leaves the package"},
		{outside, "must be relative"},
	}
	for _, tc := range tests {
		got, err := Resolve(pkg, tc.path)
		if tc.want == "" {
			if err != nil {
				t.Errorf("Resolve(%q) = %v", tc.path, err)
				continue
			}
			realPkg, _ := filepath.EvalSymlinks(pkg)
			if !strings.HasPrefix(got, realPkg+string(filepath.Separator)) {
				t.Errorf("Resolve(%q) = %q, not under %q", tc.path, got, realPkg)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%q) = %q, %v; want an error containing %q", tc.path, got, err, tc.want)
		}
	}
	// A package directory that is itself a symlink is followed once, as the root.
	alias := filepath.Join(root, "alias")
	if err := os.Symlink(pkg, alias); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(alias, "a.onnx"); err != nil {
		t.Errorf("Resolve through a linked package directory: %v", err)
	}
}

func TestLoadAndSaveRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m := valid()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(m)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Errorf("round trip changed the manifest:\n%s\n%s", a, b)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "read model package") {
		t.Errorf("Load of an empty directory: %v", err)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, FileName), []byte(`{"format": "strata/v1",`), 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "manifest.json") {
		t.Errorf("Load of truncated JSON: %v", err)
	}
}

// FuzzParse checks Parse never panics and that whatever it accepts is
// consistent: sizes in range and every path relative and inside.
func FuzzParse(f *testing.F) {
	seed, _ := json.Marshal(valid())
	f.Add(seed)
	f.Add([]byte(`{"format":"strata/v2"}`))
	f.Add([]byte(`{"format":"strata/v1","num_layers":1,"files":{"layers":["../../etc/passwd"]}}`))
	f.Add([]byte(`{"format":"strata/v1","num_layers":-1,"num_kv_heads":0}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if m != nil {
				t.Fatal("Parse returned a manifest with an error")
			}
			return
		}
		if m.NumLayers < 1 || m.NumLayers > MaxLayers || len(m.Files.Layers) != m.NumLayers {
			t.Fatalf("accepted %d layers with %d files", m.NumLayers, len(m.Files.Layers))
		}
		if m.NumKVHeads < 1 || m.NumHeads%m.NumKVHeads != 0 {
			t.Fatalf("accepted heads %d / kv heads %d", m.NumHeads, m.NumKVHeads)
		}
		for _, p := range append([]string{m.Files.Embed, m.Files.Head}, m.Files.Layers...) {
			if err := CheckRelPath(p); err != nil {
				t.Fatalf("accepted path: %v", err)
			}
		}
	})
}
