package tokenizer

import "testing"

func TestFlattenClasses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{` ?[^(\s|[.,!?…。，、।۔،])]+`, ` ?[^(\s|.,!?…。，、।۔،)]+`}, // BLOOM
		{`[a[bc]d]`, `[abcd]`},
		{`[^[a-z][0-9]]x`, `[^a-z0-9]x`},
		{`[]a[b]]`, `[]ab]`},           // "]" first in a class is a literal
		{`\[[x]\]`, `\[[x]\]`},         // escaped brackets
		{`[\[a]`, `[\[a]`},             // an escaped bracket inside a class
		{`[[:alpha:]]`, `[[:alpha:]]`}, // POSIX bracket: left alone
		{`[^a[^b]]`, `[^a[^b]]`},       // nested negation: left alone
		{`'s|\p{L}+| ?[^\s\p{L}]+`, `'s|\p{L}+| ?[^\s\p{L}]+`},
	} {
		if got := flattenClasses(tc.in); got != tc.want {
			t.Errorf("flattenClasses(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBloomSplitPattern(t *testing.T) {
	m, err := newRegexMatcher(` ?[^(\s|[.,!?…。，、।۔،])]+`)
	if err != nil {
		t.Fatal(err)
	}
	text := "Hi there, (you)|me… ok।"
	var got []string
	for _, s := range m.find(text, nil) {
		got = append(got, text[s.start:s.end])
	}
	want := []string{"Hi", " there", "you", "me", " ok"} // ",", " (", ")|", "…", "।" are the gaps
	if len(got) != len(want) {
		t.Fatalf("matches %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("matches %q, want %q", got, want)
		}
	}
}
