package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine/tokenizer"
	"github.com/strata-llm/strata/export/hf"
)

func TestRunWithTokenizer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ck")
	if err := run("llama2", 6, 9, true, dir); err != nil {
		t.Fatal(err)
	}
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Weights.Close()
	if ck.Config.NumLayers != 6 {
		t.Errorf("%d layers, want 6", ck.Config.NumLayers)
	}
	tk, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	const text = "rev abc = cba"
	enc, err := tk.Encode(text, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc.IDs) != len(text)+1 || enc.IDs[0] != 1 || enc.IDs[1] != int('r'-' ')+3 {
		t.Errorf("ids %v", enc.IDs)
	}
	if got := tk.Decode(enc.IDs, true); got != text {
		t.Errorf("decode %q, want %q", got, text)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ preset, out, want string }{
		{"llama2", "", "-out"},
		{"gpt9", filepath.Join(dir, "a"), "unknown preset"},
	} {
		err := run(tc.preset, 0, 0, false, tc.out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v", tc, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Error("an unknown preset left a directory")
	}
}
