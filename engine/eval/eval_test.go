package eval

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/export"
	defaultmodel "github.com/strata-llm/strata/models/default"
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

// loadDefaultModel exports the built-in checkpoint in fp32 and loads it;
// the model closes when the test ends.
func loadDefaultModel(t *testing.T) *engine.Model {
	t.Helper()
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
	t.Cleanup(func() { m.Close() })
	return m
}

func TestRunOnDefaultModel(t *testing.T) {
	m := loadDefaultModel(t)
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

func TestReadExamplesForms(t *testing.T) {
	tests := []struct {
		in      string
		want    Example
		wantErr bool
	}{
		{`{"ref":"a","en":"Hello","es":"Hola"}`, Example{Ref: "a", Source: "Hello", Target: "Hola"}, false},
		{`{"prompt":"Q: 2+2?\nA:","reference":" 4"}`, Example{Prompt: "Q: 2+2?\nA:", Target: " 4"}, false},
		{`{"prompt":"P","response":"R"}`, Example{Prompt: "P", Target: "R"}, false},
		{`{"prompt":"P","reference":"R","response":"other"}`, Example{Prompt: "P", Target: "R"}, false},
		{`{"prompt":"P"}`, Example{}, true},
		{`{"prompt":"P","reference":"  "}`, Example{}, true},
		{`{"reference":"R"}`, Example{}, true},
		{`not json`, Example{}, true},
		{``, Example{}, true},
	}
	for _, tc := range tests {
		got, err := ReadExamples(strings.NewReader(tc.in))
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: accepted as %+v", tc.in, got)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestRunOwnPrompts runs raw prompts (no template) and checks exact match
// against the model's own full-depth outputs, then against wrong references.
func TestRunOwnPrompts(t *testing.T) {
	m := loadDefaultModel(t)
	ex := []Example{
		{Prompt: "English: In the beginning God created the heaven and the earth.\nSpanish:", Target: "x"},
		{Prompt: "English: And God said, Let there be light.\nSpanish:", Target: "x"},
	}
	opts := Options{Ratios: []float64{1}, MaxTokens: 8, Stop: []string{"\n"}}
	rows, err := Run(context.Background(), m, ex, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].ExactMatch != 0 || len(rows[0].Samples) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	for i := range ex {
		ex[i].Target = " " + rows[0].Samples[i] + " "
	}
	rows, err = Run(context.Background(), m, ex, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].ExactMatch != 1 || rows[0].BLEU < 99 {
		t.Errorf("references equal to the outputs: exact %v, BLEU %v", rows[0].ExactMatch, rows[0].BLEU)
	}
}

// TestRunLossless checks the lossless rows: output identical to full depth,
// acceptance and first-token agreement in (0, 1].
func TestRunLossless(t *testing.T) {
	m := loadDefaultModel(t)
	ex, _ := Tasks["bible-en-es"]()
	rows, err := Run(context.Background(), m, ex[:4], Options{Schedules: []string{"uls"}, Ratios: []float64{1, 2},
		MaxTokens: 16, BatchSize: 2, Stop: []string{"\n"}, Lossless: true, Draft: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[1].Lossless || !rows[2].Lossless {
		t.Fatalf("rows %+v", rows)
	}
	full, ll := rows[0], rows[2]
	if ll.BLEU != full.BLEU || ll.ChrF != full.ChrF || !reflect.DeepEqual(ll.Samples, full.Samples) {
		t.Errorf("lossless row differs from full depth: %+v vs %+v", ll, full)
	}
	if !(ll.Accepted > 0 && ll.Accepted <= 1) || !(ll.Agreement > 0 && ll.Agreement <= 1) {
		t.Errorf("lossless accepted %v, agreement %v", ll.Accepted, ll.Agreement)
	}
	if md := Markdown("t", rows); !strings.Contains(md, "uls (lossless)") || !strings.Contains(md, "draft accepted") {
		t.Errorf("markdown:\n%s", md)
	}
}

// TestReadExamplesRefuses checks that a test set is read as it is or
// refused naming the line: invalid UTF-8 is never turned into U+FFFD.
func TestReadExamplesRefuses(t *testing.T) {
	ok := `{"prompt": "a", "reference": "b"}`
	for _, tc := range []struct{ name, data, want string }{
		{"invalid UTF-8", ok + "\n" + "{\"prompt\": \"caf\xe9\", \"reference\": \"b\"}\n", "line 2 is not valid UTF-8 (at byte 15)"},
		{"byte order mark", "\xef\xbb\xbf" + ok + "\n", ""},
	} {
		ex, err := ReadExamples(strings.NewReader(tc.data))
		switch {
		case tc.want == "" && (err != nil || len(ex) != 1):
			t.Errorf("%s: %v, %v", tc.name, ex, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		schedules []string
		ratios    []float64
		want      string
	}{
		{[]string{"uls", "top"}, []float64{1, 2}, ""},
		{[]string{"uls", "", "top"}, []float64{1, 2}, "an empty item"},
		{[]string{"uls", "top", "uls"}, []float64{1, 2}, "uls is listed twice"},
		{[]string{"zigzag"}, []float64{1, 2}, `"zigzag" is not one of`},
		{[]string{"uls"}, []float64{2, 2}, "2 is listed twice"},
		{[]string{"uls"}, []float64{0.5}, "not a ratio"},
	} {
		err := Options{Schedules: tc.schedules, Ratios: tc.ratios}.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v %v: %v, want %q", tc.schedules, tc.ratios, err, tc.want)
		}
	}
}
