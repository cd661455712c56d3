package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/family"
	"github.com/strata-llm/strata/models/llama"
	"github.com/strata-llm/strata/models/manifest"
)

func smallManifest(dtype string) *manifest.Manifest {
	return &manifest.Manifest{Architecture: "llama", NumLayers: 4, HiddenSize: 64, NumHeads: 4, NumKVHeads: 2, HeadDim: 16,
		IntermediateSize: 128, VocabSize: 100, DType: dtype}
}

// The byte counts below are worked out by hand from the shapes:
// q 64×64, k and v 32×64, o 64×64, gate and up 128×64, down 64×128,
// two norms of 64 float32, head 100×64 plus a norm, embedding rows of 64.
func TestIdealSpeedupByHand(t *testing.T) {
	fp32 := smallManifest("fp32")
	for _, c := range []struct {
		name string
		got  func() (int64, error)
		want int64
	}{
		{"fp32 layer", func() (int64, error) { return LayerBytes(fp32) }, 36864*4 + 512},
		{"fp32 head", func() (int64, error) { return HeadBytes(fp32) }, 25600 + 256},
		{"fp16 layer (float32 at run time)", func() (int64, error) { return LayerBytes(smallManifest("fp16")) }, 36864*4 + 512},
		// int4: 20 bytes (16 of codes, one float32 scale) per block of 32 along K.
		{"int4 layer", func() (int64, error) { return LayerBytes(smallManifest("int4")) }, 2560 + 1280 + 1280 + 2560 + 5120 + 5120 + 5120 + 512},
		{"int4 head", func() (int64, error) { return HeadBytes(smallManifest("int4")) }, 4000 + 256},
		{"fp32 step, batch 1, 2 layers", func() (int64, error) { return StepBytes(fp32, 2, 1) }, 256 + 2*147968 + 25856},
	} {
		got, err := c.got()
		if err != nil || got != c.want {
			t.Errorf("%s: got %d, %v; want %d", c.name, got, err, c.want)
		}
	}
	if w, err := family.Bytes(smallManifest("int4")); err != nil || w.EmbedRow != 128 {
		t.Errorf("int4 embedding row: got %d bytes, %v; want 128 (float16 table)", w.EmbedRow, err)
	}

	for _, c := range []struct {
		dtype       string
		kept, batch int
		want        float64
	}{
		{"fp32", 2, 1, 617984.0 / 322048.0},
		{"fp32", 4, 1, 1},
		{"int4", 2, 8, 99488.0 / 52384.0},
	} {
		got, err := IdealSpeedup(smallManifest(c.dtype), c.kept, c.batch)
		if err != nil || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s kept %d batch %d: ideal %v, %v; want %v", c.dtype, c.kept, c.batch, got, err, c.want)
		}
	}
	// The head and embedding keep the ideal below the layer ratio.
	if got, _ := IdealSpeedup(fp32, 2, 1); got >= 2 {
		t.Errorf("ideal speedup %v for half the layers: the head must keep it below 2", got)
	}
	for _, bad := range []struct {
		m           *manifest.Manifest
		kept, batch int
	}{{fp32, 0, 1}, {fp32, 5, 1}, {fp32, 2, 0}, {smallManifest("bf16"), 2, 1}} {
		if _, err := IdealSpeedup(bad.m, bad.kept, bad.batch); err == nil {
			t.Errorf("IdealSpeedup(%s, %d, %d): no error", bad.m.DType, bad.kept, bad.batch)
		}
	}
}

func TestMedian(t *testing.T) {
	xs := []float64{5, 1, 3}
	if got := Median(xs); got != 3 {
		t.Errorf("median of %v = %v, want 3", xs, got)
	}
	if !slices.Equal(xs, []float64{5, 1, 3}) {
		t.Errorf("Median modified its input: %v", xs)
	}
	if got := Median([]float64{4, 1, 3, 10}); got != 3.5 {
		t.Errorf("median of an even count = %v, want 3.5", got)
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("median of nothing = %v, want NaN", got)
	}
}

func TestPromptsDeterministic(t *testing.T) {
	a, b := Prompts(7, 3, 10, 50), Prompts(7, 3, 10, 50)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different prompts")
	}
	if reflect.DeepEqual(a[0], a[1]) {
		t.Error("rows of a batch share a prompt")
	}
	for _, row := range a {
		for _, id := range row {
			if id < 0 || id >= 50 {
				t.Fatalf("id %d outside the vocabulary", id)
			}
		}
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, o := range []Options{
		{},
		{Model: "x", Ratios: []float64{0.5}},
		{Model: "x", Batches: []int{0}},
		{Model: "x", Schedule: "layers:0,1"},
		{Model: "x", Gen: 1},
		{Model: "x", Reps: -1},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v): no error", o)
		}
	}
	if _, err := Run(context.Background(), Options{Model: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("Run on a missing package: no error")
	}
}

func fptr(v float64) *float64 { return &v }

func TestReportShape(t *testing.T) {
	rep := &Report{
		Manifest: smallManifest("fp32"),
		Options:  Options{Model: "/tmp/pkg", Schedule: "uls", PromptLen: 8, Gen: 4, Reps: 3},
		Rows: []Row{
			{Ratio: 1, Schedule: "uls", Batch: 1, KeptLayers: []int{0, 1, 2, 3}, DecodeTPS: 10, Speedup: 1, IdealSpeedup: 1, Efficiency: 1,
				MonoDecodeTPS: fptr(11), OverheadPct: fptr(9.1)},
			{Ratio: 2, Schedule: "uls", Batch: 1, KeptLayers: []int{0, 3}, DecodeTPS: 18, Speedup: 1.8, IdealSpeedup: 1.9, Efficiency: 1.8 / 1.9},
			{Ratio: 1, Schedule: "uls", Batch: 8, KeptLayers: []int{0, 1, 2, 3}, DecodeTPS: 50, Speedup: 1, IdealSpeedup: 1, Efficiency: 1},
		},
		Notes: []string{"ratio 5 skipped"},
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, rep.Rows); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(js.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	want := []string{"ratio", "schedule", "batch", "kept_layers", "prefill_tps", "decode_tps", "ttft_ms", "speedup", "ideal_speedup", "efficiency", "kv_bytes"}
	for i, r := range rows {
		for _, k := range want {
			if _, ok := r[k]; !ok {
				t.Errorf("row %d lacks %q", i, k)
			}
		}
		_, mono := r["mono_decode_tps"]
		_, over := r["overhead_pct"]
		if mono != (i == 0) || over != (i == 0) {
			t.Errorf("row %d: mono_decode_tps present %v, overhead_pct present %v; want both only on the first row", i, mono, over)
		}
	}

	var md bytes.Buffer
	if err := WriteMarkdown(&md, rep); err != nil {
		t.Fatal(err)
	}
	text := md.String()
	for _, s := range []string{"| batch | full | 2× |", "| 1 | 10.00 | 18.00 (1.80×) |", "| 8 | 50.00 | – |", "| 1 | 1 | 4 |", "+9.1", "Note: ratio 5 skipped"} {
		if !strings.Contains(text, s) {
			t.Errorf("markdown lacks %q:\n%s", s, text)
		}
	}
	var txt bytes.Buffer
	if err := WriteText(&txt, rep); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(txt.String(), "\n"); lines != 1+len(rep.Rows)+len(rep.Notes) {
		t.Errorf("text table has %d lines:\n%s", lines, txt.String())
	}
	png := filepath.Join(t.TempDir(), "plot.png")
	if err := WritePlot(png, rep); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Errorf("plot is not a PNG (%v)", err)
	}
}

// writePackage writes a tiny package with model_full.onnx.
func writePackage(t *testing.T) string {
	t.Helper()
	cfg := llama.Config{ModelType: "llama", NumLayers: 4, HiddenSize: 64, NumHeads: 4, NumKVHeads: 2, HeadDim: 16,
		IntermediateSize: 96, VocabSize: 101, MaxPositionEmbeddings: 64, RopeTheta: 10000, RMSNormEps: 1e-5,
		BOSID: 1, EOSIDs: []int{2}}
	src := llama.RandomWeights(cfg, 3)
	dir := t.TempDir()
	opts := llama.GraphOptions{DType: "fp32", MaxSeqLen: 32}
	man := cfg.Manifest()
	man.DType, man.MaxSeqLen = "fp32", 32
	base := func(p string, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Base(p)
	}
	man.Files.Embed = base(llama.WriteEmbed(dir, cfg, src, opts))
	for i := 0; i < cfg.NumLayers; i++ {
		man.Files.Layers = append(man.Files.Layers, base(llama.WriteLayer(dir, cfg, i, src, opts)))
	}
	man.Files.Head = base(llama.WriteHead(dir, cfg, src, opts))
	man.Files.Full = base(llama.WriteFull(dir, cfg, src, opts))
	if err := man.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRunLossless: lossless rows carry their draft statistics, decode the
// full-depth tokens (no note says otherwise) and hold full-depth KV.
func TestRunLossless(t *testing.T) {
	dir := writePackage(t)
	rep, err := Run(context.Background(), Options{Model: dir, Ratios: []float64{2}, Batches: []int{1, 2},
		PromptLen: 5, Gen: 12, Reps: 1, Threads: 1, NoMono: true, NoRoofline: true, Lossless: true, Drafts: []int{2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Notes) != 0 {
		t.Errorf("notes %q", rep.Notes)
	}
	var lossless int
	full := map[int]Row{}
	for _, r := range rep.Rows {
		if !r.Lossless && r.Ratio == 1 {
			full[r.Batch] = r
		}
	}
	for _, r := range rep.Rows {
		if !r.Lossless {
			continue
		}
		lossless++
		if r.AcceptanceRate == nil || *r.AcceptanceRate < 0 || *r.AcceptanceRate > 1 || r.TokensPerPass == nil ||
			*r.TokensPerPass < 1 || len(r.DraftAgreement) != r.Draft || r.Speedup <= 0 || r.Ratio != 2 {
			t.Errorf("lossless row %+v", r)
		}
		if r.KVBytes != full[r.Batch].KVBytes {
			t.Errorf("lossless batch %d holds %d KV bytes, full depth %d", r.Batch, r.KVBytes, full[r.Batch].KVBytes)
		}
	}
	if lossless != 4 {
		t.Errorf("%d lossless rows, want 2 batches × 2 drafts", lossless)
	}
	var md strings.Builder
	if err := WriteMarkdown(&md, rep); err != nil || !strings.Contains(md.String(), "Lossless decoding") {
		t.Errorf("markdown lacks the lossless table (%v):\n%s", err, md.String())
	}
}

func TestRunSmallPackage(t *testing.T) {
	dir := writePackage(t)
	var progress []string
	rep, err := Run(context.Background(), Options{Model: dir, Ratios: []float64{2, 5}, Batches: []int{2, 1},
		PromptLen: 5, Gen: 20, Reps: 2, Warmup: 1, Threads: 1, Progress: func(s string) { progress = append(progress, s) }})
	if err != nil {
		t.Fatal(err)
	}
	// Ratio 1 is added as the baseline, 5 leaves 0 of 4 layers and is skipped.
	type key struct {
		batch int
		ratio float64
	}
	var got []key
	for _, r := range rep.Rows {
		got = append(got, key{r.Batch, r.Ratio})
	}
	if want := []key{{1, 1}, {1, 2}, {2, 1}, {2, 2}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	// The notes would also say so if the monolithic graph decoded other tokens.
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "ratio 5 skipped") {
		t.Errorf("notes %q: want one note, on ratio 5", rep.Notes)
	}
	// (1 warm-up + 2 rounds) × (2 batches × 2 ratios + 2 monolithic runs).
	if len(progress) != 18 || !strings.HasPrefix(progress[0], "warm-up 1/1 batch 1 monolithic") || !strings.HasPrefix(progress[17], "round 2/2 batch 2 uls ratio 2") {
		t.Errorf("%d progress lines, want 18 from warm-up 1/1 to round 2/2:\n%s", len(progress), strings.Join(progress, "\n"))
	}
	for _, r := range rep.Rows {
		if !(r.DecodeTPS > 0 && r.PrefillTPS > 0 && r.TTFTMillis > 0 && r.Speedup > 0) {
			t.Errorf("row %+v: non-positive measurement", r)
		}
		if r.Efficiency != r.Speedup/r.IdealSpeedup {
			t.Errorf("row %+v: efficiency is not speedup/ideal", r)
		}
		switch r.Ratio {
		case 1:
			if r.Speedup != 1 || r.IdealSpeedup != 1 || len(r.KeptLayers) != 4 {
				t.Errorf("full-depth row %+v", r)
			}
			if r.MonoDecodeTPS == nil || *r.MonoDecodeTPS <= 0 || r.OverheadPct == nil {
				t.Errorf("full-depth row lacks the monolithic comparison: %+v", r)
			}
		case 2:
			if !slices.Equal(r.KeptLayers, []int{0, 3}) || r.MonoDecodeTPS != nil {
				t.Errorf("ratio 2 row %+v", r)
			}
			if r.IdealSpeedup <= 1 || r.IdealSpeedup >= 2 {
				t.Errorf("ratio 2 ideal speedup %v, want in (1, 2)", r.IdealSpeedup)
			}
		}
		// KV: one pair per kept layer per row, plus a batch-wide scratch pair when layers are skipped.
		pair := int64(2 * 4 * 2 * 32 * 16)
		want := int64(r.Batch) * pair * int64(len(r.KeptLayers))
		if len(r.KeptLayers) < 4 {
			want += int64(r.Batch) * pair
		}
		if r.KVBytes != want {
			t.Errorf("batch %d ratio %g: kv_bytes %d, want %d", r.Batch, r.Ratio, r.KVBytes, want)
		}
		step, err := StepBytes(rep.Manifest, len(r.KeptLayers), r.Batch)
		if err != nil {
			t.Fatal(err)
		}
		roof := r.DecodeTPS * float64(step) / float64(r.Batch) / (r.BandwidthGBps * 1e9) * 100
		if r.WeightBytesPerToken != step/int64(r.Batch) || r.BandwidthGBps <= 0 || math.Abs(r.RooflinePct-roof) > 1e-9*roof {
			t.Errorf("batch %d ratio %g: roofline columns %d B/token, %.1f GB/s, %.2f %%", r.Batch, r.Ratio, r.WeightBytesPerToken, r.BandwidthGBps, r.RooflinePct)
		}
	}

	if _, err := Run(context.Background(), Options{Model: dir, PromptLen: 30, Gen: 5}); err == nil || !strings.Contains(err.Error(), "max_seq_len") {
		t.Errorf("prompt + gen beyond max_seq_len: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Options{Model: dir, Ratios: []float64{1}, Batches: []int{1}, PromptLen: 4, Gen: 4, Reps: 1}); err == nil {
		t.Error("a cancelled context: no error")
	}
}

// TestRunMixed: static and continuous batching run the same job (the same
// tokens), and continuous batching keeps rows busier.
func TestRunMixed(t *testing.T) {
	dir := writePackage(t)
	rows, err := RunMixed(context.Background(), MixedOptions{Model: dir, Requests: 9, Batches: []int{3},
		PromptMin: 2, PromptMax: 8, GenMin: 2, GenMax: 20, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Batching != "static" || rows[1].Batching != "continuous" {
		t.Fatalf("rows %+v", rows)
	}
	st, co := rows[0], rows[1]
	if st.Tokens != co.Tokens || st.Tokens == 0 || st.Requests != 9 {
		t.Errorf("static made %d tokens, continuous %d", st.Tokens, co.Tokens)
	}
	if co.Utilization <= st.Utilization || co.Utilization > 1 || st.Utilization <= 0 {
		t.Errorf("utilisation static %.2f, continuous %.2f", st.Utilization, co.Utilization)
	}
	if st.P50Millis <= 0 || st.P95Millis < st.P50Millis || co.P95Millis < co.P50Millis {
		t.Errorf("latencies %+v", rows)
	}
}

// TestRunProfile: with a profile directory every graph writes an ORT trace,
// and the summary attributes the session runs to operator types.
func TestRunProfile(t *testing.T) {
	dir := writePackage(t)
	prof := t.TempDir()
	rep, err := Run(context.Background(), Options{Model: dir, Ratios: []float64{1}, Batches: []int{1},
		PromptLen: 5, Gen: 4, Reps: 1, Threads: 1, NoMono: true, NoRoofline: true, ProfileDir: prof})
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Profile
	if p == nil || len(p.SessionFile) != 4+2 || p.Runs == 0 || p.RunMicros <= 0 {
		t.Fatalf("profile %+v", p)
	}
	ops := map[string]bool{}
	var sum int64
	for _, o := range p.Ops {
		ops[o.Op] = o.Runs > 0 && o.Micros >= 0
		sum += o.Micros
	}
	if !ops["GroupQueryAttention"] || !ops["MatMul"] || sum+p.OutsideOps != p.RunMicros {
		t.Errorf("ops %v (sum %d + outside %d, runs %d µs)", ops, sum, p.OutsideOps, p.RunMicros)
	}
}

// TestRooflineAbove100 checks that a roofline above 100 % — decoding faster
// than the bandwidth allows — makes a cached bandwidth be measured again,
// once, and that a figure still above 100 % is flagged, never shown as real.
func TestRooflineAbove100(t *testing.T) {
	rows := []Row{{Batch: 1, DecodeTPS: 100}, {Batch: 2, DecodeTPS: 100}, {Batch: 1, DecodeTPS: 1e6, Lossless: true}}
	step := func(r Row) (int64, error) { return 1e9, nil } // 100 tok/s × 1 GB: 100 GB/s at batch 1, 50 at batch 2
	for _, tc := range []struct {
		name      string
		bw        Bandwidth
		again     float64 // GB/s a second measurement gives
		measured  int
		suspect   []bool
		shownGBps float64
	}{
		{"fresh figure within bounds", Bandwidth{GBps: 200}, 0, 0, []bool{false, false, false}, 200},
		{"cached low figure, measured again", Bandwidth{GBps: 20, Cached: true}, 150, 1, []bool{false, false, false}, 150},
		{"cached, still low when measured again", Bandwidth{GBps: 20, Cached: true}, 80, 1, []bool{true, false, false}, 80},
		{"fresh low figure: not measured twice", Bandwidth{GBps: 20}, 150, 0, []bool{true, true, false}, 20},
	} {
		rs := append([]Row(nil), rows...)
		measured := 0
		bw, err := applyRoofline(rs, step, tc.bw, func() Bandwidth { measured++; return Bandwidth{GBps: tc.again} })
		if err != nil {
			t.Fatal(err)
		}
		if measured != tc.measured || bw.GBps != tc.shownGBps {
			t.Errorf("%s: measured %d times, bandwidth %g; want %d, %g", tc.name, measured, bw.GBps, tc.measured, tc.shownGBps)
		}
		for i, r := range rs {
			if r.RooflineSuspect != tc.suspect[i] || (r.RooflineSuspect && rooflineCell(r) != "?") {
				t.Errorf("%s: row %d roofline %.0f %%, suspect %v, cell %q", tc.name, i, r.RooflinePct, r.RooflineSuspect, rooflineCell(r))
			}
		}
	}
}
