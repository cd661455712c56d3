package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine/ortlib"
	"github.com/strata-llm/strata/export"
	"github.com/strata-llm/strata/export/synth"
)

// runStrata runs the built CLI with extra environment and returns its exit
// status, stdout and stderr. Each run loads ONNX Runtime afresh, which
// matters where the library comes from the environment.
func runStrata(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(strataBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("run strata: %v", err)
	return 0, "", ""
}

func pinnedLibs(t *testing.T) (cpu, cuda ortlib.Library) {
	t.Helper()
	cpu, err := ortlib.Resolve("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cuda, err = ortlib.FetchCUDA(ortlib.Progress); err != nil {
		t.Fatalf("the pinned CUDA build: %v", err)
	}
	return cpu, cuda
}

func TestRuntimeInfo(t *testing.T) {
	cpu, cuda := pinnedLibs(t)
	deps := ortlib.FindCUDADependencies()
	missing := 0
	for _, d := range deps {
		if !d.Found() {
			missing++
		}
	}
	tests := []struct {
		name string
		env  []string
		want []string
		not  []string
	}{
		{"cache", []string{ortlib.EnvLibrary + "="}, []string{
			"cpu, webgpu: ONNX Runtime " + ortlib.Version, cpu.Path, "matches strata's pinned " + ortlib.Version + " build",
			"cuda: ONNX Runtime " + ortlib.CUDAVersion, cuda.Path + " (user cache)", "matches strata's pinned " + ortlib.CUDAVersion + "-cuda build",
			"webgpu:    needs a GPU",
		}, []string{"not one of strata's pinned builds", "cannot run cuda"}},
		// The pinned file itself, named in the environment, is still strata's build.
		{"env names the pinned 1.30 file", []string{ortlib.EnvLibrary + "=" + cpu.Path}, []string{
			"library:   " + cpu.Path + " (env " + ortlib.EnvLibrary + ")", "matches strata's pinned " + ortlib.Version + " build",
			"no " + ortlib.CUDAProviderFile + " next to it: this library cannot run cuda",
		}, []string{"not one of strata's pinned builds"}},
		{"env names the CUDA build", []string{ortlib.EnvLibrary + "=" + cuda.Path}, []string{
			"cpu, webgpu: ONNX Runtime " + ortlib.CUDAVersion, "matches strata's pinned " + ortlib.CUDAVersion + "-cuda build",
		}, []string{"not one of strata's pinned builds", "cannot run cuda"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runStrata(t, tc.env, "runtime", "info")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
			for _, d := range deps {
				if !strings.Contains(out, d.Name) {
					t.Errorf("output does not report %s", d.Name)
				}
			}
			status := "every CUDA library it needs is present"
			if missing > 0 {
				status = fmt.Sprintf("cannot run here: %d of the %d CUDA libraries above are missing", missing, len(deps))
			}
			if !strings.Contains(out, status) {
				t.Errorf("output lacks %q:\n%s", status, out)
			}
		})
	}
}

func TestRuntimeFetch(t *testing.T) {
	_, cuda := pinnedLibs(t)
	code, out, errOut := runStrata(t, nil, "runtime", "fetch", "--provider", "cuda")
	if code != 0 || strings.TrimSpace(out) != cuda.Path {
		t.Errorf("runtime fetch --provider cuda: exit %d, stdout %q, stderr %q; want %s", code, out, errOut, cuda.Path)
	}
	code, _, errOut = runStrata(t, nil, "runtime", "fetch", "--provider", "tpu")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "want cpu, webgpu or cuda") {
		t.Errorf("runtime fetch --provider tpu: exit %d, stderr %q", code, errOut)
	}
}

// TestDeviceCUDAWithoutCUDA runs generate on cuda where the CUDA libraries
// are missing, with a package cuda can run (fp16 compute; an fp32-compute
// one is refused before, by the placement check): one line on stderr, no
// ORT log, exit 1.
func TestDeviceCUDAWithoutCUDA(t *testing.T) {
	allFound := true
	for _, d := range ortlib.FindCUDADependencies() {
		allFound = allFound && d.Found()
	}
	if allFound {
		t.Skip("every CUDA library is present: scripts/gpu-check.sh checks the GPU path")
	}
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if err := synth.Write(ckpt, synth.Llama2Like()); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(t.TempDir(), "pkg")
	if err := export.Export(context.Background(), export.Options{In: ckpt, Out: pkg, DType: "int4", Compute: "fp16", MaxSeqLen: 64}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runStrata(t, nil, "generate", "--model", pkg, "--prompt-ids", "1,5,9", "--max-tokens", "2", "--device", "cuda")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, errOut)
	}
	msg := strings.TrimSpace(errOut)
	if strings.Contains(msg, "\n") || strings.Contains(msg, "\x1b[") || !strings.Contains(msg, "CUDA") || strings.Contains(msg, "goroutine") {
		t.Errorf("stderr %q: want one plain line about CUDA", msg)
	}
	t.Log(msg)
}
