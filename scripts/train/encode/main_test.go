package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const tok = "../../../models/default/base"

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		bible   bool
		check   func(t *testing.T, rec map[string]any)
		wantErr string
	}{
		{name: "text", in: `{"prompt":"English: Hello.\nSpanish:","response":"Hola.","ref":"x"}`, check: func(t *testing.T, rec map[string]any) {
			p, r := rec["prompt_ids"].([]any), rec["response_ids"].([]any)
			if len(p) < 3 || p[0] != float64(1) || len(r) == 0 || r[0] == float64(1) || rec["ref"] != "x" {
				t.Errorf("record %v", rec)
			}
		}},
		{name: "bible", bible: true, in: `{"ref":"Gen.1.1","en":"Hello.","es":"Hola."}`, check: func(t *testing.T, rec map[string]any) {
			if rec["prompt"] != "English: Hello.\nSpanish:" || rec["response"] != "Hola." || rec["en"] != nil || rec["prompt_ids"] == nil {
				t.Errorf("record %v", rec)
			}
		}},
		{name: "ids pass through", in: `{"prompt_ids":[1,5],"response_ids":[7]}`, check: func(t *testing.T, rec map[string]any) {
			if len(rec["prompt_ids"].([]any)) != 2 || len(rec["response_ids"].([]any)) != 1 {
				t.Errorf("record %v", rec)
			}
		}},
		{name: "empty response", in: `{"prompt":"a","response":""}`, check: func(t *testing.T, rec map[string]any) {
			if r, ok := rec["response_ids"].([]any); !ok || len(r) != 0 {
				t.Errorf("record %v", rec)
			}
		}},
		{name: "missing response", in: `{"prompt":"a"}`, wantErr: "line 1: record needs"},
		{name: "bible without es", bible: true, in: `{"en":"a"}`, wantErr: "line 1: verse pair"},
		{name: "not json", in: "\n{", wantErr: "line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(tok, tc.bible, strings.NewReader(tc.in), &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var rec map[string]any
			if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
				t.Fatalf("output %q: %v", out.String(), err)
			}
			tc.check(t, rec)
		})
	}
	if err := run("", false, strings.NewReader(""), &bytes.Buffer{}); err == nil {
		t.Error("no tokenizer accepted")
	}
}
