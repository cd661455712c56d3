package requests

import (
	"math"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine"
)

func TestDecode(t *testing.T) {
	defaults := engine.Request{MaxTokens: 16, Schedule: "uls"}
	for _, tc := range []struct {
		line string
		want string // error text; "" for a request
	}{
		{`{"id": "a", "prompt_ids": [1, 2]}`, ""},
		{`  {"id": "a", "prompt": "x", "max_tokens": 3, "top_p": 0.5, "speedup": 2}  `, ""},
		{`{"id": "a", "prompt_ids": [1]} {"id": "b", "prompt_ids": [2]}`, "text after the request object"},
		{`{"id": "a", "prompt_ids": [1]}{"id": "b", "prompt_ids": [2]}`, "text after the request object"},
		{`{"id": "a", "prompt_ids": [1]} trailing`, "text after the request object"},
		{`{"id": "a", "prompt_ids": [1]},`, "text after the request object"},
		{`[{"id": "a"}]`, "not a JSON object"},
		{`null`, "not a JSON object"},
		{"\xef\xbb\xbf{\"id\": \"a\"}", "byte order mark"},
		{`{"id": "a", "prompt_ids": [1], "max_tokens": 0}`, "max_tokens 0: must be at least 1"},
		{`{"id": "a", "prompt_ids": [1], "max_tokens": -4}`, "max_tokens -4"},
		{`{"id": "a", "prompt_ids": [1], "top_p": 0}`, "top_p 0"},
		{`{"id": "a", "prompt_ids": [1], "speedup": 0.5}`, "speedup 0.5"},
		{`{"id": "a", "prompt_ids": [1], "temprature": 1}`, "unknown field"},
		{`{"id": "a", "prompt_ids": [1]`, "unexpected EOF"},
	} {
		req, err := Decode([]byte(tc.line), defaults)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.line, err)
		case tc.want == "" && (req.ID != "a" || req.Schedule != "uls"):
			t.Errorf("%s: %+v, want id a over the defaults", tc.line, req)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.line, err, tc.want)
		}
	}
	if req, _ := Decode([]byte(`{"id": "a", "prompt_ids": [1]}`), defaults); req.MaxTokens != 16 {
		t.Errorf("max_tokens left out: %d, want the default 16", req.MaxTokens)
	}
}

func TestStripBOM(t *testing.T) {
	if got := string(StripBOM([]byte("\xef\xbb\xbf{}"))); got != "{}" {
		t.Errorf("StripBOM = %q", got)
	}
	if got := string(StripBOM([]byte("{}"))); got != "{}" {
		t.Errorf("StripBOM without a mark = %q", got)
	}
}

func TestCheckDefaults(t *testing.T) {
	ok := engine.Request{MaxTokens: 8}
	for _, tc := range []struct {
		name   string
		edit   func(*engine.Request)
		layers int
		want   string
	}{
		{"defaults", func(*engine.Request) {}, 4, ""},
		{"uls without a ratio", func(r *engine.Request) { r.Schedule = "uls" }, 4, ""},
		{"layers on an unknown package", func(r *engine.Request) { r.Schedule = "layers:0,3" }, 0, ""},
		{"speedup NaN", func(r *engine.Request) { r.Speedup = math.NaN() }, 4, "speedup NaN"},
		{"speedup Inf", func(r *engine.Request) { r.Speedup = math.Inf(1) }, 0, "speedup +Inf"},
		{"schedule zigzag", func(r *engine.Request) { r.Schedule = "zigzag" }, 0, `unknown schedule "zigzag"`},
		{"schedule zigzag, known package", func(r *engine.Request) { r.Schedule = "zigzag" }, 4, `unknown schedule "zigzag"`},
		{"layer outside the model", func(r *engine.Request) { r.Schedule = "layers:0,9" }, 4, "outside 0..3"},
		{"max tokens 0", func(r *engine.Request) { r.MaxTokens = 0 }, 4, "max-tokens 0"},
		{"temperature NaN", func(r *engine.Request) { r.Temperature = math.NaN() }, 4, "temperature"},
	} {
		r := ok
		tc.edit(&r)
		err := CheckDefaults(r, tc.layers)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCheckPromptBytes(t *testing.T) {
	if err := CheckPromptBytes(strings.Repeat("a", MaxPromptBytes(64)), 64); err != nil {
		t.Errorf("a prompt at the bound: %v", err)
	}
	err := CheckPromptBytes(strings.Repeat("a", MaxPromptBytes(64)+1), 64)
	if err == nil || !strings.Contains(err.Error(), "max_seq_len of 64") {
		t.Errorf("a prompt over the bound: %v", err)
	}
}
