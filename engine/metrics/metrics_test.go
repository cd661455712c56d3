package metrics

import (
	"math"
	"strings"
	"testing"
)

func TestTokenize13a(t *testing.T) {
	tests := []struct{ in, want string }{
		{"The dog bit the man.", "The dog bit the man ."},
		{"It wasn't surprising.", "It wasn't surprising ."}, // the apostrophe is no 13a symbol
		{"3.14, 1,000 and 5-6", "3.14 , 1,000 and 5 - 6"},
		{"Tom &amp; Jerry &quot;x&quot;", `Tom & Jerry " x "`},
		{"¿Qué dijo Dios? «Sea la luz»", "¿Qué dijo Dios ? «Sea la luz»"},
		{"a-\nb <skipped>c", "ab c"},
		{"(hola)[x]{y}", "( hola ) [ x ] { y }"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := strings.Join(Tokenize13a(tc.in), " "); got != tc.want {
			t.Errorf("Tokenize13a(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestCorpusBLEU(t *testing.T) {
	tests := []struct {
		name  string
		hyps  []string
		refs  [][]string
		score float64
		check func(t *testing.T, b BLEU)
	}{
		{
			// sacreBLEU's README example: BLEU = 48.53 82.4/50.0/45.5/37.5
			// (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18).
			name: "sacrebleu readme",
			hyps: []string{"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."},
			refs: [][]string{
				{"The dog bit the man.", "It was not unexpected.", "The man bit him first."},
				{"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."},
			},
			score: 48.53,
			check: func(t *testing.T, b BLEU) {
				if b.SysLen != 17 || b.RefLen != 18 {
					t.Errorf("lengths %d/%d, want 17/18", b.SysLen, b.RefLen)
				}
				if got := b.String(); got != "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)" {
					t.Errorf("String() = %q", got)
				}
			},
		},
		{
			name:  "identical",
			hyps:  []string{"hello there general kenobi", "foo bar foobar"},
			refs:  [][]string{{"hello there general kenobi", "foo bar foobar"}, {"hello there !", "foo bar foobar"}},
			score: 100,
		},
		{
			// By hand: 5 tokens "a b c d e", ref "a b c d f": matches 4/5, 3/4, 2/3, 1/2,
			// BP 1: BLEU = 100·(4/5·3/4·2/3·1/2)^(1/4) = 100·0.2^0.25.
			name:  "by hand",
			hyps:  []string{"a b c d e"},
			refs:  [][]string{{"a b c d f"}},
			score: 100 * math.Pow(0.2, 0.25),
		},
		{
			// By hand, exp smoothing and brevity penalty: hyp "a b x c" vs ref "a b y c z":
			// 1-grams 3/4, 2-grams 1/3, 3-grams 0/2 → 100/(2·2)=25%, 4-grams 0/1 → 100/(4·1)=25%;
			// BP = exp(1 − 5/4).
			name:  "smoothing and brevity",
			hyps:  []string{"a b x c"},
			refs:  [][]string{{"a b y c z"}},
			score: math.Exp(1-5.0/4) * math.Exp((math.Log(75)+math.Log(100.0/3)+math.Log(25)+math.Log(25))/4),
		},
		{
			name:  "too short for 4-grams",
			hyps:  []string{"a b"},
			refs:  [][]string{{"a b"}},
			score: 0,
		},
		{
			name:  "empty hypothesis",
			hyps:  []string{""},
			refs:  [][]string{{"a b c d"}},
			score: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := CorpusBLEU(tc.hyps, tc.refs)
			if err != nil {
				t.Fatal(err)
			}
			tol := 1e-9
			if tc.name == "sacrebleu readme" {
				tol = 0.005
			}
			if !near(b.Score, tc.score, tol) {
				t.Errorf("score = %.6f, want %.6f", b.Score, tc.score)
			}
			if tc.check != nil {
				tc.check(t, b)
			}
		})
	}
}

func TestCorpusChrF(t *testing.T) {
	tests := []struct {
		name  string
		hyps  []string
		refs  [][]string
		score float64
		tol   float64
	}{
		{
			// Golden values from the Hugging Face chrF metric card (sacreBLEU CHRF defaults).
			name:  "metric card one sentence",
			hyps:  []string{"The relationship between Obama and Netanyahu is not exactly friendly."},
			refs:  [][]string{{"The ties between Obama and Netanyahu are not particularly friendly."}},
			score: 61.576379378113785,
			tol:   1e-9,
		},
		{
			name: "metric card corpus",
			hyps: []string{"The relationship between cats and dogs is not exactly friendly.", "a good bookshop is just a genteel black hole that knows how to read."},
			refs: [][]string{{"The relationship between dogs and cats is not exactly friendly.", "A good bookshop is just a genteel Black Hole that knows how to read."}},
			// 84.64214891738334
			score: 84.64214891738334,
			tol:   1e-9,
		},
		{
			// By hand: "ab" vs "ab" gives 1-grams 2/2, 2-grams 1/1, higher orders absent
			// on both sides (not effective), so P = R = 1 → 100.
			name:  "identical short",
			hyps:  []string{"a b"},
			refs:  [][]string{{"ab"}},
			score: 100,
			tol:   1e-9,
		},
		{
			// By hand: hyp "ab" vs ref "ac": 1-grams 1/2 match; 2-grams 0/1.
			// P = R = (1/2 + 0)/2 = 1/4 → F = 25.
			name:  "by hand",
			hyps:  []string{"ab"},
			refs:  [][]string{{"ac"}},
			score: 25,
			tol:   1e-9,
		},
		{
			name:  "no overlap",
			hyps:  []string{"xyz"},
			refs:  [][]string{{"abc"}},
			score: 0,
			tol:   1e-9,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CorpusChrF(tc.hyps, tc.refs)
			if err != nil {
				t.Fatal(err)
			}
			if !near(got, tc.score, tc.tol) {
				t.Errorf("chrF = %.12f, want %.12f", got, tc.score)
			}
		})
	}
}

func TestReferenceErrors(t *testing.T) {
	if _, err := CorpusBLEU([]string{"a"}, nil); err == nil {
		t.Error("CorpusBLEU without references: want an error")
	}
	if _, err := CorpusBLEU([]string{"a", "b"}, [][]string{{"a"}}); err == nil {
		t.Error("CorpusBLEU with a short reference stream: want an error")
	}
	if _, err := CorpusChrF([]string{"a"}, [][]string{{"a", "b"}}); err == nil {
		t.Error("CorpusChrF with a long reference stream: want an error")
	}
}
