package engine

import "time"

// How the figures of a run become each request's Stats.

// finishStats files a static batch's figures in every sequence.
func finishStats(seqs []*sequence, r *runner, start, prefillDone, firstToken, end time.Time, decodeTokens, steps int, spec *LosslessStats) {
	group := GroupStats{
		BatchSize:     len(seqs),
		PrefillMillis: millis(prefillDone.Sub(start)),
		DecodeSteps:   steps,
		DecodeTokens:  decodeTokens,
		KVBytes:       r.kvBytes(),
		PrefillTPS:    rate(totalPrompt(seqs), prefillDone.Sub(start)),
		DecodeTPS:     rate(decodeTokens, end.Sub(firstToken)),
		DecodeMillis:  millis(end.Sub(firstToken)),
		TTFTMillis:    millis(firstToken.Sub(start)),
		Lossless:      spec,
	}
	for _, s := range seqs {
		s.stats = Stats{PromptTokens: len(s.prompt), GeneratedTokens: len(s.out), TTFTMillis: group.TTFTMillis,
			PrefillTPS: group.PrefillTPS, DecodeTPS: group.DecodeTPS, BatchSize: len(seqs), KVBytes: group.KVBytes, Group: group}
	}
}

// ownStats files the figures of a sequence that finished under continuous
// batching at end: its own times and rates, the batch's size and KV, and
// the batching counters so far.
func (s *sequence) ownStats(end time.Time, rows int, kvBytes int64, count BatchingStats) {
	s.stats = Stats{PromptTokens: len(s.prompt), GeneratedTokens: len(s.out), BatchSize: rows, KVBytes: kvBytes,
		TTFTMillis: millis(s.firstToken.Sub(s.enqueued)), LatencyMillis: millis(end.Sub(s.enqueued)),
		DecodeTPS: rate(len(s.out)-1, end.Sub(s.firstToken)), PrefillTPS: rate(len(s.prompt), s.firstToken.Sub(s.started))}
	count.Utilization = float64(count.BusyRows) / float64(max(1, count.DecodeSteps*rows))
	s.stats.Batching = &count
}

func totalPrompt(seqs []*sequence) int {
	n := 0
	for _, s := range seqs {
		n += len(s.prompt)
	}
	return n
}

// rate is n per second over d, 0 when d is not positive.
func rate(n int, d time.Duration) float64 {
	if d <= 0 || n == 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
