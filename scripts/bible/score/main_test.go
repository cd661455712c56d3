package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hyp := write("hyp", "The dog bit the man.\nIt wasn't surprising.\nThe man had just bitten him.\n")
	ref1 := write("ref1", "The dog bit the man.\nIt was not unexpected.\nThe man bit him first.\n")
	ref2 := write("ref2", "The dog had bit the man.\nNo one was surprised.\nThe man had bitten the dog.\n")
	short := write("short", "one line\n")

	var out bytes.Buffer
	if err := run([]string{"-hyp", hyp, "-ref", ref1, "-ref", ref2}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "BLEU = 48.53 ") || !strings.Contains(out.String(), "chrF2 = ") {
		t.Errorf("output = %q", out.String())
	}
	out.Reset()
	if err := run([]string{"-hyp", hyp, "-ref", ref1, "-json"}, &out); err != nil || !strings.Contains(out.String(), `"segments":3`) {
		t.Errorf("json output = %q, err %v", out.String(), err)
	}
	for _, args := range [][]string{
		{"-hyp", hyp},
		{"-hyp", hyp, "-ref", short},
		{"-hyp", filepath.Join(dir, "missing"), "-ref", ref1},
	} {
		if err := run(args, &out); err == nil {
			t.Errorf("run(%v): want an error", args)
		}
	}
}
