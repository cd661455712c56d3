package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/bench"
	"github.com/strata-llm/strata/engine/ortlib"
	"github.com/strata-llm/strata/engine/placement"
	"github.com/strata-llm/strata/models/manifest"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show what a model package holds and what it can do",
		ArgsUsage: "PKG",
		Description: "Prints the package's family and shapes, weight and compute types, the ratios and schedule it\n" +
			"was fine-tuned for, its calibration, files and bytes, the weight bytes a decoded token reads\n" +
			"at each ratio, its provenance (checkpoint hash, strata version, export settings) and whether\n" +
			"every node of its graphs has a kernel on cpu, cuda and webgpu. Nothing is loaded into ONNX Runtime.\n\n" +
			"   strata inspect /tmp/tinyllama --json",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON object instead of text"},
		},
		Action: runInspect,
	}
}

// inspectReport is what strata inspect --json prints.
type inspectReport struct {
	Package string `json:"package"`
	// ContentHash identifies the package as batch result files record it.
	ContentHash   string     `json:"content_hash"`
	Family        string     `json:"family"`
	Shapes        shapes     `json:"shapes"`
	DType         string     `json:"dtype"`
	Int4BlockSize int        `json:"int4_block_size,omitempty"`
	ComputeType   string     `json:"compute_type"`
	ULS           ulsInfo    `json:"uls"`
	Calibration   calInfo    `json:"calibration"`
	Files         []fileInfo `json:"files"`
	Bytes         int64      `json:"bytes"`
	// DecodeBytes is the weight bytes one decoded token reads (batch 1)
	// at each ratio (engine/bench.StepBytes).
	DecodeBytes []decodeBytes `json:"decode_weight_bytes"`
	// Provenance is manifest.json's (null for packages exported before
	// strata recorded it).
	Provenance *manifest.Provenance `json:"provenance"`
	// Placement says, per device, whether every node has a kernel in the
	// ONNX Runtime build strata uses there (engine/placement).
	Placement map[string]placementInfo `json:"placement"`
}

type shapes struct {
	Layers           int `json:"num_layers"`
	HiddenSize       int `json:"hidden_size"`
	NumHeads         int `json:"num_heads"`
	NumKVHeads       int `json:"num_kv_heads"`
	HeadDim          int `json:"head_dim"`
	IntermediateSize int `json:"intermediate_size"`
	VocabSize        int `json:"vocab_size"`
	MaxSeqLen        int `json:"max_seq_len"`
}

type ulsInfo struct {
	// Ratios are the ratios the checkpoint was fine-tuned for.
	Ratios []float64 `json:"ratios"`
	// DefaultSchedule is what generation uses without --speedup or
	// --schedule ("full" for full depth).
	DefaultSchedule string `json:"default_schedule"`
}

type calInfo struct {
	Present bool `json:"present"`
	// Modified and AgeSeconds date calibration.json (absent when missing).
	Modified   *time.Time `json:"modified,omitempty"`
	AgeSeconds float64    `json:"age_seconds,omitempty"`
	Device     string     `json:"device,omitempty"`
	Threads    int        `json:"threads,omitempty"`
	Points     int        `json:"points,omitempty"`
	// Error says why a calibration.json that is present cannot be used.
	Error string `json:"error,omitempty"`
}

type fileInfo struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

type decodeBytes struct {
	Ratio      float64 `json:"ratio"`
	KeptLayers int     `json:"kept_layers"`
	Bytes      int64   `json:"bytes"`
}

type placementInfo struct {
	OK bool `json:"ok"`
	// Summary is the check's one line; Missing counts nodes without a kernel.
	Summary string `json:"summary"`
	Missing int    `json:"missing"`
	// Error says why the check could not run.
	Error string `json:"error,omitempty"`
}

func runInspect(c *cli.Context) error {
	// Flags after PKG are allowed: strata inspect PKG --json.
	jsonOut := c.Bool("json")
	var dirs []string
	for _, a := range c.Args().Slice() {
		switch {
		case a == "--json" || a == "-json":
			jsonOut = true
		case strings.HasPrefix(a, "-"):
			return usageError(fmt.Errorf("flag provided but not defined: %s", a))
		default:
			dirs = append(dirs, a)
		}
	}
	if len(dirs) != 1 {
		return usageError(errors.New("strata inspect takes one argument, the package directory (strata inspect PKG [--json])"))
	}
	rep, err := inspectPackage(dirs[0], time.Now())
	if err != nil {
		return err
	}
	if jsonOut {
		return writeJSON(c.App.Writer, rep)
	}
	return writeInspect(c.App.Writer, rep)
}

// inspectPackage describes the package in dir; now dates the calibration.
func inspectPackage(dir string, now time.Time) (*inspectReport, error) {
	m, err := manifest.Load(dir)
	if err != nil {
		return nil, inputError(err)
	}
	id, err := packageIdentity(dir)
	if err != nil {
		return nil, inputError(err)
	}
	rep := &inspectReport{
		Package: dir, ContentHash: id, Family: m.Architecture,
		Shapes: shapes{m.NumLayers, m.HiddenSize, m.NumHeads, m.NumKVHeads, m.HeadDim, m.IntermediateSize, m.VocabSize, m.MaxSeqLen},
		DType:  m.DType, ComputeType: m.Compute(),
		ULS:        ulsInfo{Ratios: m.ULS.Ratios, DefaultSchedule: m.ULS.DefaultSchedule},
		Provenance: m.Provenance,
		Placement:  map[string]placementInfo{},
	}
	if m.DType == "int4" {
		rep.Int4BlockSize = m.Int4Block()
	}
	if rep.ULS.Ratios == nil {
		rep.ULS.Ratios = []float64{}
	}
	if rep.ULS.DefaultSchedule == "" {
		rep.ULS.DefaultSchedule = "full"
	}
	if rep.Files, rep.Bytes, err = listFiles(dir); err != nil {
		return nil, err
	}
	if rep.DecodeBytes, err = decodeWeightBytes(m); err != nil {
		return nil, inputError(err)
	}
	rep.Calibration = calibrationInfo(dir, m.NumLayers, now)
	for _, device := range ortlib.Devices {
		r, err := placement.Check(dir, device)
		if err != nil {
			rep.Placement[device] = placementInfo{Error: err.Error()}
			continue
		}
		rep.Placement[device] = placementInfo{OK: r.OK(), Summary: r.Summary(), Missing: len(r.Misses)}
	}
	return rep, nil
}

// decodeWeightBytes is the weight bytes a decoded token reads at full
// depth and at each ratio the package was fine-tuned for (2 and 3 when it
// was fine-tuned for none), under the uls schedule.
func decodeWeightBytes(m *manifest.Manifest) ([]decodeBytes, error) {
	ratios := []float64{1}
	ratios = append(ratios, m.ULS.Ratios...)
	if len(m.ULS.Ratios) == 0 {
		ratios = append(ratios, 2, 3)
	}
	slices.Sort(ratios)
	ratios = slices.Compact(ratios)
	var out []decodeBytes
	for _, r := range ratios {
		s, err := engine.ParseSchedule("uls", r, m.NumLayers)
		if err != nil {
			continue // a ratio this package is too shallow for
		}
		n, err := bench.StepBytes(m, len(s.Layers), 1)
		if err != nil {
			return nil, err
		}
		out = append(out, decodeBytes{Ratio: r, KeptLayers: len(s.Layers), Bytes: n})
	}
	return out, nil
}

// calibrationInfo describes the package's calibration.json.
func calibrationInfo(dir string, layers int, now time.Time) calInfo {
	st, err := os.Stat(filepath.Join(dir, bench.CalibrationFile))
	if err != nil {
		return calInfo{}
	}
	mod := st.ModTime().UTC().Truncate(time.Second)
	info := calInfo{Present: true, Modified: &mod, AgeSeconds: math.Max(0, math.Round(now.Sub(st.ModTime()).Seconds()))}
	cal, err := bench.LoadCalibration(dir, layers)
	if err != nil {
		info.Error = err.Error()
		return info
	}
	info.Device, info.Threads, info.Points = cal.Device, cal.Threads, len(cal.Points)
	return info
}

// listFiles lists the regular files under dir, by path relative to it,
// and their total size.
func listFiles(dir string) ([]fileInfo, int64, error) {
	var files []fileInfo
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files = append(files, fileInfo{Name: filepath.ToSlash(rel), Bytes: st.Size()})
		total += st.Size()
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("model package %s: %w", dir, err)
	}
	return files, total, nil
}

func writeInspect(w io.Writer, r *inspectReport) error {
	var b strings.Builder
	line := func(key, format string, args ...any) {
		fmt.Fprintf(&b, "%-14s "+format+"\n", append([]any{key + ":"}, args...)...)
	}
	line("package", "%s", r.Package)
	line("content hash", "%s", r.ContentHash)
	s := r.Shapes
	line("family", "%s: %d layers, hidden %d, %d heads (%d kv) of %d, intermediate %d, vocab %d, max_seq_len %d",
		r.Family, s.Layers, s.HiddenSize, s.NumHeads, s.NumKVHeads, s.HeadDim, s.IntermediateSize, s.VocabSize, s.MaxSeqLen)
	dtype := r.DType
	if r.Int4BlockSize > 0 {
		dtype += fmt.Sprintf(" (block %d)", r.Int4BlockSize)
	}
	line("weights", "%s, compute %s", dtype, r.ComputeType)
	ratios := "none"
	if len(r.ULS.Ratios) > 0 {
		ratios = strings.Trim(strings.Join(strings.Fields(fmt.Sprint(r.ULS.Ratios)), ", "), "[]")
	}
	line("fine-tuned", "ratios %s; default schedule %s", ratios, r.ULS.DefaultSchedule)
	switch cal := r.Calibration; {
	case !cal.Present:
		line("calibration", "none (strata bench --model %s --calibrate)", r.Package)
	case cal.Error != "":
		line("calibration", "unusable: %s", cal.Error)
	default:
		line("calibration", "%d points on %s, %d threads, %s old", cal.Points, cal.Device, cal.Threads, time.Duration(cal.AgeSeconds)*time.Second)
	}
	for _, d := range r.DecodeBytes {
		line("decode bytes", "ratio %g: %d of %d layers, %s of weights per token", d.Ratio, d.KeptLayers, s.Layers, humanBytes(d.Bytes))
	}
	line("files", "%d, %s", len(r.Files), humanBytes(r.Bytes))
	for _, f := range r.Files {
		fmt.Fprintf(&b, "  %-30s %d\n", f.Name, f.Bytes)
	}
	if p := r.Provenance; p != nil {
		line("source", "%s %s (%d files)", p.Source.Format, p.Source.SHA256, len(p.Source.Files))
		e := p.Export
		line("exported by", "strata %s: --dtype %s --compute %s --max-seq-len %d%s", p.Strata, e.DType, e.Compute, e.MaxSeqLen, exportFlagText(e))
	} else {
		line("source", "not recorded (exported before strata recorded provenance)")
	}
	for _, device := range ortlib.Devices {
		p := r.Placement[device]
		switch {
		case p.Error != "":
			line("placement", "%s: not checked: %s", device, p.Error)
		case p.OK:
			line("placement", "%s: yes, %s", device, p.Summary)
		default:
			line("placement", "%s: no, %s", device, p.Summary)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// exportFlagText spells out the boolean and int4 export settings.
func exportFlagText(e manifest.ExportSettings) string {
	var s string
	if e.Int4BlockSize > 0 {
		s += fmt.Sprintf(" --int4-block-size %d", e.Int4BlockSize)
	}
	if e.Full {
		s += " --full"
	}
	if e.Reference {
		s += " --reference"
	}
	return s
}

// humanBytes is n in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i])
}
