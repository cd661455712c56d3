package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestRunFused: with Fuse every plain row has a fused twin of the same
// ratio and batch, with its gain over the per-layer row, at full depth its
// gain over the monolithic graph, and the process's resident memory; the
// fused and monolithic runs decode the per-layer tokens (no note says
// otherwise), and the reports show and encode them.
func TestRunFused(t *testing.T) {
	dir := writePackage(t)
	rep, err := Run(context.Background(), Options{Model: dir, Ratios: []float64{2}, Batches: []int{1, 2},
		PromptLen: 5, Gen: 8, Reps: 1, Threads: 1, NoRoofline: true, Fuse: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Notes) != 0 {
		t.Errorf("notes %q", rep.Notes)
	}
	type key struct {
		batch int
		ratio float64
	}
	plain, fused := map[key]Row{}, map[key]Row{}
	for _, r := range rep.Rows {
		if r.Fused {
			fused[key{r.Batch, r.Ratio}] = r
		} else {
			plain[key{r.Batch, r.Ratio}] = r
		}
	}
	if len(plain) != 4 || len(fused) != 4 {
		t.Fatalf("%d per-layer and %d fused rows, want 4 each", len(plain), len(fused))
	}
	for k, f := range fused {
		p, ok := plain[k]
		if !ok || f.FusedGain == nil || *f.FusedGain <= 0 || f.RSSBytes <= 0 || f.DecodeTPS <= 0 || f.Speedup <= 0 ||
			len(f.KeptLayers) != len(p.KeptLayers) || f.KVBytes != p.KVBytes {
			t.Errorf("fused row %+v, per-layer row %+v", f, p)
		}
		if p.FusedGain != nil || p.FusedMonoGain != nil {
			t.Errorf("per-layer row %+v has a fused gain", p)
		}
		if full := k.ratio == 1; full != (f.FusedMonoGain != nil) || (full && *f.FusedMonoGain <= 0) {
			t.Errorf("fused row %+v: gain over the monolithic graph %v", f, f.FusedMonoGain)
		}
	}
	var md, text strings.Builder
	if err := WriteMarkdown(&md, rep); err != nil || !strings.Contains(md.String(), "Fused decoding") || !strings.Contains(md.String(), "| vs mono |") {
		t.Errorf("markdown lacks the fused table (%v):\n%s", err, md.String())
	}
	if err := WriteText(&text, rep); err != nil || !strings.Contains(text.String(), "fused batch") || !strings.Contains(text.String(), "vs mono") {
		t.Errorf("text lacks the fused table (%v):\n%s", err, text.String())
	}
	data, err := json.Marshal(rep.Rows[0])
	if err != nil || !strings.Contains(string(data), `"fused":false`) {
		t.Errorf("JSON row %s (%v): want \"fused\": false", data, err)
	}
}
