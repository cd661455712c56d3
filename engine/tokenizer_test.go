package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
)

// writeCharTokenizer writes a character-level BPE tokenizer.json whose
// vocabulary fills testConfig's 101 ids: <unk>, <s>, </s>, the 95 printable
// ASCII characters and three merges.
func writeCharTokenizer(t *testing.T, path string) {
	t.Helper()
	vocab := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2}
	for c := 32; c < 127; c++ {
		vocab[string(rune(c))] = len(vocab)
	}
	merges := []string{"t h", "th e", "a n"}
	for _, m := range merges {
		vocab[strings.ReplaceAll(m, " ", "")] = len(vocab)
	}
	if len(vocab) != 101 {
		t.Fatalf("vocab has %d entries", len(vocab))
	}
	tok := map[string]any{
		"version": "1.0",
		"added_tokens": []map[string]any{
			{"id": 0, "content": "<unk>", "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false},
			{"id": 1, "content": "<s>", "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false},
			{"id": 2, "content": "</s>", "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false},
		},
		"normalizer":    nil,
		"pre_tokenizer": nil,
		"post_processor": map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":           []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{"<s>": map[string]any{"id": "<s>", "ids": []int{1}, "tokens": []string{"<s>"}}},
		},
		"decoder": map[string]any{"type": "Fuse"},
		"model":   map[string]any{"type": "BPE", "unk_token": "<unk>", "vocab": vocab, "merges": merges, "fuse_unk": false, "byte_fallback": false},
	}
	data, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// packageWithTokenizer copies the test package's manifest into a new
// directory that links the graphs and adds a tokenizer.
func packageWithTokenizer(t *testing.T) string {
	t.Helper()
	src, _, _ := testPackage(t)
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(dir, manifest.FileName))
	man, err := manifest.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	man.Files.Tokenizer = "tokenizer.json"
	man.EOSIDs = nil
	writeCharTokenizer(t, filepath.Join(dir, "tokenizer.json"))
	if err := man.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTextPromptStreamingAndStop(t *testing.T) {
	// The graphs are symlinks into the shared test package, which lives
	// outside this directory: Resolve must refuse them.
	dir := packageWithTokenizer(t)
	if _, err := Load(dir, Options{}); err == nil || !strings.Contains(err.Error(), "outside the package") {
		t.Fatalf("symlinks leading out of the package: err = %v", err)
	}
	// Real copies instead.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if target, err := os.Readlink(p); err == nil {
			data, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(p)
			os.WriteFile(p, data, 0o644)
		}
	}
	m, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	var streamed strings.Builder
	res, err := m.GenerateStream(context.Background(), Request{Prompt: "the cat", MaxTokens: 24},
		func(tok Token) error { streamed.WriteString(tok.Text); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if streamed.String() != res.Text || res.Text != m.Tokenizer.Decode(res.TokenIDs) || res.Text == "" {
		t.Fatalf("streamed %q, result %q, decode %q", streamed.String(), res.Text, m.Tokenizer.Decode(res.TokenIDs))
	}
	// Stop at a string that appears in that output.
	stop := res.Text[len(res.Text)/2 : len(res.Text)/2+2]
	cut := strings.Index(res.Text, stop)
	streamed.Reset()
	res2, err := m.GenerateStream(context.Background(), Request{Prompt: "the cat", MaxTokens: 24, Stop: []string{stop}},
		func(tok Token) error { streamed.WriteString(tok.Text); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if res2.StopReason != StopString || res2.Text != res.Text[:cut] || streamed.String() != res2.Text {
		t.Errorf("stop %q: reason %q, text %q (streamed %q), want %q", stop, res2.StopReason, res2.Text, streamed.String(), res.Text[:cut])
	}
}
