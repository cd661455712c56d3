package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/export/synth"
)

func TestExportVerifyCLI(t *testing.T) {
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	s := synth.Llama2Like()
	s.Layers = 2
	if err := synth.Write(ckpt, s); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(t.TempDir(), "pkg")
	code, out, errOut := runCLI(t, "export", "--in", ckpt, "--out", pkg, "--max-seq-len", "32", "--reference")
	if code != 0 || !strings.Contains(out, "exported") {
		t.Fatalf("export: code %d, out %q, err %q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "export", "--in", ckpt, "--out", pkg)
	if code == 0 || strings.Count(errOut, "strata:") != 1 || !strings.Contains(errOut, "--force") {
		t.Fatalf("export over a package: code %d, err %q", code, errOut)
	}
	code, out, errOut = runCLI(t, "verify", "--model", pkg, "--prompt-ids", "1,2,3", "--steps", "4")
	if code != 0 || strings.Count(out, "decode") != 4 || !strings.Contains(out, "PASS") {
		t.Fatalf("verify: code %d, out %q, err %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, "verify", "--model", pkg, "--steps", "1", "--json")
	if code != 0 || !strings.Contains(out, `"pass": true`) {
		t.Fatalf("verify --json: code %d, out %q", code, out)
	}
	other := filepath.Join(t.TempDir(), "other")
	s.Seed = 42
	synth.Write(other, s)
	code, out, errOut = runCLI(t, "verify", "--model", pkg, "--checkpoint", other, "--steps", "1")
	if code != exitVerifyFailed || !strings.Contains(out, "FAIL") || !strings.Contains(errOut, "exceeds the tolerance") {
		t.Fatalf("verify against other weights: code %d, out %q, err %q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "verify", "--model", pkg, "--prompt-ids", "1,x")
	if code == 0 || !strings.Contains(errOut, "--prompt-ids") {
		t.Fatalf("bad prompt ids: code %d, err %q", code, errOut)
	}
}
