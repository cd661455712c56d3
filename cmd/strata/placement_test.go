package main

import (
	"strings"
	"testing"
)

// TestVerifyPlacement runs verify --placement on the float32 test package:
// it places on the CPU and fails on CUDA (exit status 4, verification
// failed), one line per GroupQueryAttention node and a one-line summary,
// with no ONNX Runtime involved.
func TestVerifyPlacement(t *testing.T) {
	pkg := testPackage(t)
	for _, c := range []struct {
		device string
		code   int
		stdout []string // substrings of each stdout line, in order
		stderr string
	}{
		{"cpu", 0, []string{"every node of 6 graphs has a kernel on cpu (ORT 1.30.0)"}, ""},
		{"webgpu", 0, []string{"every node of 6 graphs has a kernel on webgpu (ORT 1.30.0)"}, ""},
		{"cuda", exitVerifyFailed, []string{
			"layer_00.onnx  GroupQueryAttention_3  com.microsoft:GroupQueryAttention  float,-,-,float,float,int32,int32,float,float  type float of input query is not allowed for T (bfloat16, float16)",
			"layer_01.onnx  ", "layer_02.onnx  ", "layer_03.onnx  ",
		}, "strata: 4 of "},
	} {
		t.Run(c.device, func(t *testing.T) {
			code, out, errOut := runCLI(t, "verify", "--model", pkg, "--device", c.device, "--placement")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != c.code || len(lines) != len(c.stdout) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %d lines", code, out, errOut, c.code, len(c.stdout))
			}
			for i, want := range c.stdout {
				if !strings.Contains(lines[i], want) {
					t.Errorf("line %d %q, want it to contain %q", i, lines[i], want)
				}
			}
			if c.stderr == "" && errOut != "" || !strings.HasPrefix(errOut, c.stderr) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
				t.Errorf("stderr %q, want one line starting %q", errOut, c.stderr)
			}
			if c.code != 0 && !strings.Contains(errOut, "graphs have no kernel on cuda (ORT 1.29.0)") {
				t.Errorf("stderr %q lacks the summary", errOut)
			}
		})
	}
}

// TestVerifyPlacementUsage: the comparison flags make no sense with
// --placement and are refused as usage errors.
func TestVerifyPlacementUsage(t *testing.T) {
	pkg := testPackage(t)
	for _, flag := range [][]string{{"--steps", "3"}, {"--checkpoint", pkg}, {"--tol", "0.1"}, {"--json"}, {"--prompt-ids", "1,2"}} {
		args := append([]string{"verify", "--model", pkg, "--placement"}, flag...)
		code, _, errOut := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(errOut, "it takes no "+flag[0]) {
			t.Errorf("%v: exit %d, stderr %q; want %d naming %s", args, code, errOut, exitUsage, flag[0])
		}
	}
}
