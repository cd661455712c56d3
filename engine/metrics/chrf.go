package metrics

import (
	"strings"
	"unicode/utf8"
)

// ChrF parameters, sacreBLEU's defaults.
const (
	ChrOrder = 6
	ChrBeta  = 2
)

// chrStats holds, per character n-gram order, the hypothesis count, reference
// count and matched count.
type chrStats [ChrOrder][3]int

func charNgrams(s string, n int) map[string]int {
	runes := []rune(s)
	out := map[string]int{}
	for i := 0; i+n <= len(runes); i++ {
		out[string(runes[i:i+n])]++
	}
	return out
}

func sentenceChrStats(hyp, ref string) chrStats {
	// White space is not part of the character n-grams.
	hyp = strings.Join(strings.Fields(hyp), "")
	ref = strings.Join(strings.Fields(ref), "")
	var st chrStats
	for n := 1; n <= ChrOrder; n++ {
		hg, rg := charNgrams(hyp, n), charNgrams(ref, n)
		st[n-1][0] = max(0, utf8.RuneCountInString(hyp)-n+1)
		st[n-1][1] = max(0, utf8.RuneCountInString(ref)-n+1)
		for g, c := range hg {
			st[n-1][2] += min(c, rg[g])
		}
	}
	return st
}

// fScore is sacreBLEU's chrF from summed statistics: precision and recall are
// averaged over the orders where both sides have n-grams, then combined with beta.
func (st chrStats) fScore() float64 {
	const eps = 1e-16
	factor := float64(ChrBeta * ChrBeta)
	avgP, avgR := 0.0, 0.0
	effective := 0
	for _, s := range st {
		nHyp, nRef, nMatch := s[0], s[1], s[2]
		p, r := eps, eps
		if nHyp > 0 {
			p = float64(nMatch) / float64(nHyp)
		}
		if nRef > 0 {
			r = float64(nMatch) / float64(nRef)
		}
		if nHyp > 0 && nRef > 0 {
			effective++
		}
		avgP += p
		avgR += r
	}
	if effective == 0 {
		return 0
	}
	avgP /= float64(effective)
	avgR /= float64(effective)
	if avgP+avgR == 0 {
		return 0
	}
	return 100 * (1 + factor) * avgP * avgR / (factor*avgP + avgR)
}

// CorpusChrF computes sacreBLEU's default corpus chrF (0..100). refs holds
// reference streams: refs[k][i] is the k-th reference of hyps[i]; with several
// references each sentence uses the one with the best sentence chrF.
func CorpusChrF(hyps []string, refs [][]string) (float64, error) {
	if err := checkRefs(hyps, refs); err != nil {
		return 0, err
	}
	var total chrStats
	for i, hyp := range hyps {
		var best chrStats
		bestF := -1.0
		for _, stream := range refs {
			st := sentenceChrStats(hyp, stream[i])
			if f := st.fScore(); f > bestF {
				best, bestF = st, f
			}
		}
		for n := range total {
			for j := range total[n] {
				total[n][j] += best[n][j]
			}
		}
	}
	return total.fScore(), nil
}
