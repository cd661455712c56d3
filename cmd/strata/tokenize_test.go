package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine/tokenizer"
	defaultmodel "github.com/strata-llm/strata/models/default"
)

func TestTokenizeCommand(t *testing.T) {
	dir := t.TempDir()
	data, err := defaultmodel.ReadFile("tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	const text = "In the beginning God created the heaven and the earth."
	for _, tc := range []struct {
		args    []string
		special bool
	}{
		{[]string{"tokenize", "--tokenizer", path, "--text", text, "--json"}, true},
		{[]string{"tokenize", "--tokenizer", dir, "--text", text, "--json", "--no-special"}, false},
	} {
		code, out, errOut := runCLI(t, tc.args...)
		if code != 0 {
			t.Fatalf("%v: %s", tc.args, errOut)
		}
		var got struct {
			IDs    []int    `json:"ids"`
			Tokens []string `json:"tokens"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: output %q: %v", tc.args, out, err)
		}
		want, _ := tok.Encode(text, tc.special)
		if len(got.IDs) != len(want.IDs) || len(got.Tokens) != len(got.IDs) {
			t.Fatalf("%v: ids %v tokens %v, want ids %v", tc.args, got.IDs, got.Tokens, want.IDs)
		}
		for i := range want.IDs {
			if got.IDs[i] != want.IDs[i] {
				t.Fatalf("%v: ids %v, want %v", tc.args, got.IDs, want.IDs)
			}
		}
		if bos, _ := tok.BOS(); tc.special != (got.IDs[0] == bos) {
			t.Errorf("%v: first id %d, BOS %d", tc.args, got.IDs[0], bos)
		}
	}
	if code, _, errOut := runCLI(t, "tokenize", "--tokenizer", filepath.Join(dir, "missing.json"), "--text", "x"); code == 0 || !strings.Contains(errOut, "missing.json") {
		t.Errorf("missing tokenizer: exit %d, %q", code, errOut)
	}
}
