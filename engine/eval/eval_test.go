package eval

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/export"
	"github.com/strata-llm/strata/models/default"
)

func TestBibleTask(t *testing.T) {
	ex, err := Tasks["bible-en-es"]()
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) < 100 {
		t.Fatalf("%d test examples", len(ex))
	}
	for _, e := range ex {
		if strings.HasPrefix(e.Ref, "Gen.") {
			t.Fatalf("Genesis is in the training split, but %s is in the test set", e.Ref)
		}
	}
	if _, err := ReadExamples(strings.NewReader(`{"ref":"x","en":"a"}`)); err == nil {
		t.Error("an example without a target was accepted")
	}
}

func TestRunOnDefaultModel(t *testing.T) {
	tmp := t.TempDir()
	ckpt, pkg := filepath.Join(tmp, "ckpt"), filepath.Join(tmp, "pkg")
	if err := defaultmodel.WriteCheckpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	if err := export.Export(context.Background(), export.Options{In: ckpt, Out: pkg, DType: "fp32"}); err != nil {
		t.Fatal(err)
	}
	m, err := engine.Load(pkg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ex, _ := Tasks["bible-en-es"]()
	calls := 0
	rows, err := Run(context.Background(), m, ex[:4], Options{Schedules: []string{"uls", "top"}, Ratios: []float64{1, 2},
		MaxTokens: 12, BatchSize: 3, Progress: func(done, total int) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Schedule != "full" || rows[1].Schedule != "uls" || rows[2].Schedule != "top" {
		t.Fatalf("rows %+v", rows)
	}
	if rows[0].BLEUKept != 1 || len(rows[0].KeptLayers) != m.Manifest.NumLayers {
		t.Errorf("full-depth row %+v", rows[0])
	}
	if !reflect.DeepEqual(rows[2].KeptLayers, []int{0, 1, 2, 3}) {
		t.Errorf("top at 2× kept %v", rows[2].KeptLayers)
	}
	for _, r := range rows {
		if r.BLEU < 0 || r.BLEU > 100 || r.ChrF < 0 || r.ChrF > 100 || r.Sentences != 4 {
			t.Errorf("row %+v", r)
		}
	}
	if calls != 6 {
		t.Errorf("progress called %d times, want 6 (2 batches × 3 jobs)", calls)
	}
	md := Markdown("test", rows)
	if strings.Count(md, "\n| ") != 4 {
		t.Errorf("markdown:\n%s", md)
	}
}
