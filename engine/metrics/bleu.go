// Package metrics scores translations the way sacreBLEU does by default: corpus
// BLEU (13a tokenization, 4-gram, brevity penalty, 'exp' smoothing) and chrF
// (character 6-grams, no word n-grams, beta 2, white space ignored).
package metrics

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
)

// MaxOrder is the largest word n-gram order of BLEU.
const MaxOrder = 4

var tok13a = []struct {
	re   *regexp.Regexp
	repl string
}{
	// Punctuation and symbols of the ASCII ranges {-~ [-` space-& (-+ :-@ and /.
	{regexp.MustCompile("([{-~\\[-` -&(-+:-@/])"), " $1 "},
	// Period and comma unless preceded by a digit.
	{regexp.MustCompile(`([^0-9])([.,])`), "$1 $2 "},
	// Period and comma unless followed by a digit.
	{regexp.MustCompile(`([.,])([^0-9])`), " $1 $2"},
	// Dash when preceded by a digit.
	{regexp.MustCompile(`([0-9])(-)`), "$1 $2 "},
}

// Tokenize13a applies the mteval-v13a tokenization that sacreBLEU uses by default
// and returns the tokens.
func Tokenize13a(line string) []string {
	line = strings.ReplaceAll(line, "<skipped>", "")
	line = strings.ReplaceAll(line, "-\n", "")
	line = strings.ReplaceAll(line, "\n", " ")
	if strings.Contains(line, "&") {
		line = strings.ReplaceAll(line, "&quot;", `"`)
		line = strings.ReplaceAll(line, "&amp;", "&")
		line = strings.ReplaceAll(line, "&lt;", "<")
		line = strings.ReplaceAll(line, "&gt;", ">")
	}
	line = " " + line + " "
	for _, r := range tok13a {
		line = r.re.ReplaceAllString(line, r.repl)
	}
	return strings.Fields(line)
}

// BLEU holds a corpus BLEU score and its statistics.
type BLEU struct {
	Score      float64           // 0..100
	Counts     [MaxOrder]int     // matching n-grams per order
	Totals     [MaxOrder]int     // hypothesis n-grams per order
	Precisions [MaxOrder]float64 // smoothed precisions, in percent
	BP         float64           // brevity penalty
	SysLen     int               // hypothesis length in tokens
	RefLen     int               // effective reference length in tokens
}

// String formats the score as sacreBLEU prints it.
func (b BLEU) String() string {
	ratio := 0.0
	if b.RefLen > 0 {
		ratio = float64(b.SysLen) / float64(b.RefLen)
	}
	return fmt.Sprintf("BLEU = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %d ref_len = %d)",
		b.Score, b.Precisions[0], b.Precisions[1], b.Precisions[2], b.Precisions[3], b.BP, ratio, b.SysLen, b.RefLen)
}

// checkRefs verifies that every reference stream has one line per hypothesis.
func checkRefs(hyps []string, refs [][]string) error {
	if len(refs) == 0 {
		return errors.New("metrics: no reference stream")
	}
	for k, r := range refs {
		if len(r) != len(hyps) {
			return fmt.Errorf("metrics: reference stream %d has %d lines, want %d (one per hypothesis)", k, len(r), len(hyps))
		}
	}
	return nil
}

func ngrams(tokens []string, n int) map[string]int {
	out := map[string]int{}
	for i := 0; i+n <= len(tokens); i++ {
		out[strings.Join(tokens[i:i+n], "\x00")]++
	}
	return out
}

// CorpusBLEU computes sacreBLEU's default corpus BLEU. refs holds reference
// streams as sacreBLEU takes them: refs[k][i] is the k-th reference of hyps[i].
func CorpusBLEU(hyps []string, refs [][]string) (BLEU, error) {
	var b BLEU
	if err := checkRefs(hyps, refs); err != nil {
		return b, err
	}
	for i, hyp := range hyps {
		ht := Tokenize13a(hyp)
		b.SysLen += len(ht)
		closest, bestDiff := -1, -1
		maxRef := make([]map[string]int, MaxOrder)
		for n := range maxRef {
			maxRef[n] = map[string]int{}
		}
		for _, stream := range refs {
			rt := Tokenize13a(stream[i])
			diff := len(rt) - len(ht)
			if diff < 0 {
				diff = -diff
			}
			// Closest reference length; ties go to the shorter reference.
			if bestDiff < 0 || diff < bestDiff || (diff == bestDiff && len(rt) < closest) {
				bestDiff, closest = diff, len(rt)
			}
			for n := 1; n <= MaxOrder; n++ {
				for g, c := range ngrams(rt, n) {
					if c > maxRef[n-1][g] {
						maxRef[n-1][g] = c
					}
				}
			}
		}
		b.RefLen += closest
		for n := 1; n <= MaxOrder; n++ {
			for g, c := range ngrams(ht, n) {
				b.Counts[n-1] += min(c, maxRef[n-1][g])
			}
			b.Totals[n-1] += max(0, len(ht)-n+1)
		}
	}
	b.compute()
	return b, nil
}

// compute fills Precisions, BP and Score from the statistics with 'exp' smoothing:
// the k-th order without any match gets precision 100/(2^k · total).
func (b *BLEU) compute() {
	smooth := 1.0
	logSum := 0.0
	for n := 0; n < MaxOrder; n++ {
		if b.Totals[n] == 0 {
			// No n-grams of this order at all: sacreBLEU stops and the score is 0.
			logSum = math.Inf(-1)
			break
		}
		if b.Counts[n] == 0 {
			smooth *= 2
			b.Precisions[n] = 100 / (smooth * float64(b.Totals[n]))
		} else {
			b.Precisions[n] = 100 * float64(b.Counts[n]) / float64(b.Totals[n])
		}
		logSum += math.Log(b.Precisions[n])
	}
	switch {
	case b.SysLen == 0:
		b.BP = 0
	case b.SysLen < b.RefLen:
		b.BP = math.Exp(1 - float64(b.RefLen)/float64(b.SysLen))
	default:
		b.BP = 1
	}
	if math.IsInf(logSum, -1) {
		b.Score = 0
		return
	}
	b.Score = b.BP * math.Exp(logSum/MaxOrder)
}
