package manifest

import "testing"

func TestFormatPrompt(t *testing.T) {
	tests := []struct{ template, text, want string }{
		{"", "hello", "hello"},
		{"English: {en}\nSpanish:", "In the beginning", "English: In the beginning\nSpanish:"},
		{"{prompt}", "x {y} z", "x {y} z"},
		{"Q: {question} A:", "", "Q:  A:"},
	}
	for _, tc := range tests {
		m := &Manifest{PromptTemplate: tc.template}
		if got := m.FormatPrompt(tc.text); got != tc.want {
			t.Errorf("FormatPrompt(%q, %q) = %q, want %q", tc.template, tc.text, got, tc.want)
		}
	}
}

func TestPromptTemplateValidation(t *testing.T) {
	for _, tpl := range []string{"no placeholder", "{a} and {b}"} {
		m := &Manifest{Format: Format, NumLayers: 1, HiddenSize: 1, NumHeads: 1, NumKVHeads: 1, HeadDim: 1,
			IntermediateSize: 1, VocabSize: 2, MaxSeqLen: 1, DType: "fp32",
			Files: Files{Embed: "e", Head: "h", Layers: []string{"l"}}, PromptTemplate: tpl}
		if err := m.Validate(); err == nil {
			t.Errorf("template %q accepted", tpl)
		}
		m.PromptTemplate = "ok {x}"
		if err := m.Validate(); err != nil {
			t.Errorf("valid template rejected: %v", err)
		}
	}
}
