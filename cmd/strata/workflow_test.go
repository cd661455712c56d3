package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-llm/strata/engine/bench"
	"github.com/strata-llm/strata/export/synth"
	"github.com/strata-llm/strata/internal/version"
	"github.com/strata-llm/strata/models/manifest"
)

// TestScriptWorkflow is what an export pipeline does with the built binary,
// branching only on exit statuses and JSON: export, re-export (up to date),
// verify, inspect, and register the package in a registry file keyed by
// its content hash; the failures a pipeline must tell apart exit 2, 3 and 4.
func TestScriptWorkflow(t *testing.T) {
	dir := t.TempDir()
	ckpt, pkg := filepath.Join(dir, "ckpt"), filepath.Join(dir, "pkg")
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := runStrata(t, nil, args...)
		if code != want {
			t.Fatalf("strata %s: exit %d, want %d; stderr %q", strings.Join(args, " "), code, want, errOut)
		}
		if want != 0 && (strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "strata: ")) {
			t.Errorf("strata %s: stderr %q is not one line", strings.Join(args, " "), errOut)
		}
		return out
	}
	decode := func(out string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("stdout %q is not one JSON object: %v", out, err)
		}
	}
	run(0, "synth", "--shape", "tiny", "--out", ckpt)
	var exp exportReport
	decode(run(0, "export", "--in", ckpt, "--out", pkg, "--dtype", "fp16", "--max-seq-len", "64", "--reference", "--json"), &exp)
	if exp.UpToDate || exp.Package != pkg || exp.DType != "fp16" || exp.ComputeType != "fp32" || exp.Family != "llama" || exp.Layers != 4 ||
		!strings.HasPrefix(exp.ContentHash, "sha256:") || exp.Bytes <= 0 || exp.Strata != version.Version || !strings.HasPrefix(exp.SourceSHA256, "sha256:") {
		t.Errorf("export report %+v", exp)
	}
	var again exportReport
	decode(run(0, "export", "--in", ckpt, "--out", pkg, "--dtype", "fp16", "--max-seq-len", "64", "--reference", "--json"), &again)
	if !again.UpToDate || again.ContentHash != exp.ContentHash || again.Bytes != exp.Bytes {
		t.Errorf("re-export %+v, want up to date with the first's hash and bytes", again)
	}
	run(exitUsage, "export", "--in", ckpt, "--out", pkg, "--dtype", "int4", "--json")      // another package: needs --force
	run(exitUsage, "export", "--in", ckpt, "--out", filepath.Join(ckpt, "pkg"), "--force") // would destroy the checkpoint
	run(exitBadInput, "export", "--in", filepath.Join(dir, "missing"), "--out", filepath.Join(dir, "p2"))
	run(exitUsage, "export", "--in", ckpt, "--out", filepath.Join(dir, "p3"), "--dtype", "fp8")

	var ver struct {
		Pass bool `json:"pass"`
	}
	decode(run(0, "verify", "--model", pkg, "--steps", "2", "--json"), &ver)
	if !ver.Pass {
		t.Error("verify --json: pass is false")
	}
	run(0, "verify", "--model", pkg, "--placement")
	run(exitVerifyFailed, "verify", "--model", pkg, "--placement", "--device", "cuda") // float32 compute has no cuda attention kernel

	var ins inspectReport
	decode(run(0, "inspect", pkg, "--json"), &ins)
	if ins.ContentHash != exp.ContentHash || ins.Provenance == nil || ins.Provenance.Source.SHA256 != exp.SourceSHA256 ||
		!ins.Placement["cpu"].OK || ins.Placement["cuda"].OK || ins.Calibration.Present {
		t.Errorf("inspect %+v", ins)
	}
	run(exitBadInput, "inspect", filepath.Join(dir, "missing"), "--json")
	run(exitUsage, "inspect")

	// Register: the registry maps content hashes to packages and their
	// sources, from the JSON alone.
	registry := filepath.Join(dir, "registry.json")
	entry := map[string]any{"path": exp.Package, "source_sha256": ins.Provenance.Source.SHA256, "strata": ins.Provenance.Strata, "dtype": ins.DType, "cpu": ins.Placement["cpu"].OK}
	data, _ := json.Marshal(map[string]any{exp.ContentHash: entry})
	if err := os.WriteFile(registry, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var reg map[string]map[string]any
	data, _ = os.ReadFile(registry)
	if json.Unmarshal(data, &reg) != nil || reg[ins.ContentHash]["path"] != pkg {
		t.Errorf("registry %s", data)
	}
}

// TestInspect checks inspect's report against the package it describes.
func TestInspect(t *testing.T) {
	dir := t.TempDir()
	ckpt, pkg := filepath.Join(dir, "ckpt"), filepath.Join(dir, "pkg")
	s := synth.Llama2Like()
	s.Layers = 6
	s.ULS = map[string]any{"ratios": []float64{2, 3}, "default_schedule": "uls:2"}
	if err := synth.Write(ckpt, s); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "export", "--in", ckpt, "--out", pkg, "--dtype", "int4", "--max-seq-len", "32"); code != 0 {
		t.Fatal(errOut)
	}
	m, err := manifest.Load(pkg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rep, err := inspectPackage(pkg, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Family != m.Architecture || rep.Shapes.Layers != m.NumLayers || rep.Shapes.HiddenSize != m.HiddenSize || rep.DType != "int4" ||
		rep.Int4BlockSize != manifest.DefaultInt4BlockSize || rep.ComputeType != "fp32" || rep.ULS.DefaultSchedule != "uls:2" || len(rep.ULS.Ratios) != 2 {
		t.Errorf("report %+v", rep)
	}
	var total int64
	for _, f := range rep.Files {
		st, err := os.Stat(filepath.Join(pkg, f.Name))
		if err != nil || st.Size() != f.Bytes {
			t.Errorf("file %+v: %v", f, err)
		}
		total += f.Bytes
	}
	if total != rep.Bytes {
		t.Errorf("bytes %d, files sum to %d", rep.Bytes, total)
	}
	// Full depth, then ratios 2 and 3: fewer layers, fewer bytes.
	if len(rep.DecodeBytes) != 3 || rep.DecodeBytes[0].Ratio != 1 || rep.DecodeBytes[0].KeptLayers != m.NumLayers {
		t.Fatalf("decode bytes %+v", rep.DecodeBytes)
	}
	for i := 1; i < len(rep.DecodeBytes); i++ {
		if d := rep.DecodeBytes[i]; d.KeptLayers >= rep.DecodeBytes[i-1].KeptLayers || d.Bytes >= rep.DecodeBytes[i-1].Bytes {
			t.Errorf("decode bytes do not fall with the ratio: %+v", rep.DecodeBytes)
		}
	}
	if full, _ := bench.StepBytes(m, m.NumLayers, 1); rep.DecodeBytes[0].Bytes != full {
		t.Errorf("full-depth bytes %d, bench.StepBytes %d", rep.DecodeBytes[0].Bytes, full)
	}
	if rep.Calibration.Present {
		t.Error("calibration present before bench --calibrate")
	}
	cal := bench.Calibration{Device: "cpu", Threads: 2, Points: []bench.CalibrationPoint{{Ratio: 1, Batch: 1, PrefillTPS: 100, DecodeTPS: 10}, {Ratio: 2, Batch: 1, PrefillTPS: 100, DecodeTPS: 18}}}
	if err := cal.Save(pkg); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(pkg, bench.CalibrationFile), old, old)
	rep, err = inspectPackage(pkg, now)
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Calibration; !c.Present || c.Points != 2 || c.Device != "cpu" || c.AgeSeconds < 7199 || c.AgeSeconds > 7201 || c.Error != "" {
		t.Errorf("calibration %+v", c)
	}
	os.WriteFile(filepath.Join(pkg, bench.CalibrationFile), []byte(`{"points":[]}`), 0o644)
	if rep, err = inspectPackage(pkg, now); err != nil || !rep.Calibration.Present || rep.Calibration.Error == "" {
		t.Errorf("broken calibration: %+v, %v", rep.Calibration, err)
	}
	code, out, _ := runCLI(t, "inspect", pkg)
	for _, want := range []string{"int4 (block 32), compute fp32", "ratios 2, 3; default schedule uls:2", "placement:     cpu: yes", "source:        hf sha256:"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("inspect text (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "strata "+version.Version) || !strings.Contains(out, "onnxruntime ") {
		t.Fatalf("version: exit %d, %q, %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, "version", "--json")
	var v versionReport
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Version != version.Version || len(v.ONNXRuntime) == 0 || v.ONNXRuntime[0].Devices[0] != "cpu" || len(v.ONNXRuntime[0].Files) == 0 {
		t.Errorf("version --json: exit %d, %q", code, out)
	}
	if code, _, _ := runCLI(t, "version", "extra"); code != exitUsage {
		t.Errorf("version with an argument: exit %d, want %d", code, exitUsage)
	}
}

// TestExportInterrupted stops `strata export` with SIGINT while it writes:
// it exits 130 with one line and leaves nothing behind.
func TestExportInterrupted(t *testing.T) {
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	s := synth.Llama2Like()
	s.Layers, s.Hidden, s.Intermediate, s.Vocab = 12, 256, 688, 4096
	if err := synth.Write(ckpt, s); err != nil {
		t.Fatal(err)
	}
	bin := strataBinary(t)
	for try := range 5 {
		parent := t.TempDir()
		cmd := exec.Command(bin, "export", "--in", ckpt, "--out", filepath.Join(parent, "pkg"), "--dtype", "int4")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The temporary package directory exists once the export writes.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if m, _ := filepath.Glob(filepath.Join(parent, ".pkg.tmp-*")); len(m) > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		if err == nil {
			t.Logf("try %d: the export finished before the signal", try)
			continue
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
			t.Fatalf("interrupted export: %v, stderr %q", err, stderr.String())
		}
		if msg := strings.TrimSpace(stderr.String()); strings.Count(msg, "\n") > 0 || !strings.Contains(msg, "export interrupted") {
			t.Errorf("stderr %q, want one line saying the export was interrupted", msg)
		}
		if entries, _ := os.ReadDir(parent); len(entries) > 0 {
			t.Errorf("left behind: %v", entries)
		}
		return
	}
	t.Fatal("every export finished before the signal")
}
