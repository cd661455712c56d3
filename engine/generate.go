package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// DefaultMaxTokens is the number of new tokens generated when a request
// does not say.
const DefaultMaxTokens = 128

// Stop reasons reported in Result.StopReason.
const (
	StopEOS       = "eos"        // the model produced an end-of-sequence token
	StopMaxTokens = "max_tokens" // the request's token budget is spent
	StopString    = "stop"       // a stop string appeared in the text
	StopLength    = "length"     // the sequence reached the package's max_seq_len
)

// Request is one generation request.
type Request struct {
	// ID is copied to the result (batch jobs use it to match results).
	ID string `json:"id,omitempty"`
	// Prompt is text, encoded with the package tokenizer and its
	// post-processing (BOS and the like).
	Prompt string `json:"prompt,omitempty"`
	// PromptIDs, when set, bypass the tokenizer; nothing is added.
	PromptIDs []int `json:"prompt_ids,omitempty"`
	// MaxTokens bounds the new tokens (0: DefaultMaxTokens).
	MaxTokens int `json:"max_tokens,omitempty"`
	// Stop ends generation when any of these strings appears in the output;
	// the text is cut before it.
	Stop []string `json:"stop,omitempty"`
	SamplingOptions
	// IgnoreEOS keeps generating past end-of-sequence tokens (benchmarks).
	IgnoreEOS bool `json:"ignore_eos,omitempty"`
	// Schedule and Speedup choose the decode layers (empty and 0: the
	// model's default). Requests decoded together must agree on them.
	Schedule string  `json:"schedule,omitempty"`
	Speedup  float64 `json:"speedup,omitempty"`
	// Lossless decodes with the schedule's layers as a draft that every
	// layer verifies: the output is exactly full-depth decoding's
	// (docs/design.md, "Lossless decoding"). Without a schedule that skips
	// layers, the package's ULS default drafts, else uls:2.
	Lossless bool `json:"lossless,omitempty"`
	// Draft is the most tokens drafted per lossless round (0:
	// DefaultDraftTokens).
	Draft int `json:"draft,omitempty"`
	// DraftConfidence ends a lossless round's drafting early, once the
	// draft gives every row's last drafted token a probability below it (0:
	// DefaultDraftConfidence; negative: always draft Draft tokens). It
	// changes the speed, never the output.
	DraftConfidence float64 `json:"draft_confidence,omitempty"`
}

// Token is one generated token, reported while generation runs.
type Token struct {
	// Index is the request's position in the batch (0 for Generate).
	Index int
	ID    int
	// Text is the newly printable text: it never ends inside a UTF-8
	// character or inside a possible stop string.
	Text string
}

// Stats describe one request's run. PromptTokens and GeneratedTokens are
// the request's own. With continuous batching (the default) the rates and
// times are the request's own too: its prompt over the prefill step that
// ran it, its tokens over its own decode time, TTFT and latency from when it
// was queued. With static batching (and lossless decoding) they are those of
// the batch it decoded in, whose rows step together (Group).
type Stats struct {
	PromptTokens    int     `json:"prompt_tokens"`
	GeneratedTokens int     `json:"generated_tokens"`
	PrefillTPS      float64 `json:"prefill_tokens_per_s"`
	DecodeTPS       float64 `json:"decode_tokens_per_s"`
	TTFTMillis      float64 `json:"time_to_first_token_ms"`
	BatchSize       int     `json:"batch_size"`
	KVBytes         int64   `json:"kv_bytes"`
	// LatencyMillis is the time from queueing to the last token
	// (continuous batching).
	LatencyMillis float64 `json:"latency_ms,omitempty"`
	// Group holds the figures of the static batch the request decoded in.
	Group GroupStats `json:"group"`
	// Batching holds the continuous batching counters when the request
	// finished.
	Batching *BatchingStats `json:"batching,omitempty"`
}

// GroupStats are the figures of one batch of requests decoded together.
type GroupStats struct {
	BatchSize     int     `json:"batch_size"`
	PrefillMillis float64 `json:"prefill_ms"`
	TTFTMillis    float64 `json:"time_to_first_token_ms"`
	PrefillTPS    float64 `json:"prefill_tokens_per_s"`
	// DecodeSteps counts the decode steps; DecodeTokens the tokens they
	// produced for rows still running.
	DecodeSteps  int     `json:"decode_steps"`
	DecodeTokens int     `json:"decode_tokens"`
	DecodeMillis float64 `json:"decode_ms"`
	DecodeTPS    float64 `json:"decode_tokens_per_s"`
	KVBytes      int64   `json:"kv_bytes"`
	// Lossless describes the drafting of a lossless batch.
	Lossless *SpecStats `json:"lossless,omitempty"`
}

// Result is what one request produced.
type Result struct {
	ID string `json:"id,omitempty"`
	// TokenIDs are the generated ids (an end-of-sequence token is not included).
	TokenIDs   []int  `json:"token_ids"`
	Text       string `json:"text"`
	StopReason string `json:"stop_reason"`
	KeptLayers []int  `json:"kept_layers"`
	Stats      Stats  `json:"stats"`
}

// Generate runs one request.
func (m *Model) Generate(ctx context.Context, req Request) (Result, error) {
	return m.GenerateStream(ctx, req, nil)
}

// GenerateStream runs one request and calls onToken for every new token.
// An error from onToken stops generation and is returned.
func (m *Model) GenerateStream(ctx context.Context, req Request, onToken func(Token) error) (Result, error) {
	res, err := m.GenerateBatch(ctx, []Request{req}, onToken)
	if len(res) == 1 {
		return res[0], err
	}
	return Result{}, err
}

// GenerateBatch runs many requests, decoding up to Options.MaxBatch of them
// together. Requests with different schedules are decoded in separate
// batches. Results come back in request order. onToken (may be nil) sees
// every token; Token.Index is the request's index in reqs.
func (m *Model) GenerateBatch(ctx context.Context, reqs []Request, onToken func(Token) error) ([]Result, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	seqs := make([]*sequence, len(reqs))
	for i := range reqs {
		s, err := m.newSequence(ctx, i, &reqs[i])
		if err != nil {
			if len(reqs) > 1 {
				err = fmt.Errorf("request %d: %w", i, err)
			}
			return nil, err
		}
		seqs[i] = s
	}
	if m.opts.StaticBatching {
		err := m.generateStatic(ctx, seqs, onToken)
		return results(seqs), err
	}
	var first error
	now := time.Now()
	for _, s := range seqs {
		s.enqueued = now
	}
	sc := &scheduler{m: m, queue: slices.Clone(seqs), arrived: len(seqs), onToken: onToken, done: func(c Completion) {
		if c.Err != nil && first == nil {
			first = c.Err
		}
	}}
	sc.run(ctx)
	return results(seqs), first
}

// generateStatic decodes fixed batches: up to MaxBatch requests of one
// schedule prefill together and decode until the last of them stops.
func (m *Model) generateStatic(ctx context.Context, seqs []*sequence, onToken func(Token) error) error {
	groups := map[string][]*sequence{}
	var order []string
	for _, s := range seqs {
		key := s.groupKey()
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], s)
	}
	for _, key := range order {
		group := groups[key]
		for start := 0; start < len(group); start += m.opts.MaxBatch {
			chunk := group[start:min(start+m.opts.MaxBatch, len(group))]
			if err := m.decodeBatch(ctx, chunk, onToken); err != nil {
				return err
			}
		}
	}
	return nil
}

func results(seqs []*sequence) []Result {
	out := make([]Result, len(seqs))
	for i, s := range seqs {
		if s != nil {
			out[i] = s.result()
		}
	}
	return out
}

// sequence is the state of one request while it decodes.
type sequence struct {
	index    int
	req      *Request
	prompt   []int
	schedule Schedule
	draft    int // tokens per lossless round; 0 when not lossless
	// confidence is the resolved Request.DraftConfidence.
	confidence float64
	sampler    *sampler
	decoder    StreamDecoder // nil without a tokenizer

	// enqueued, started and firstToken time the request: when it was
	// queued, when its prefill began, when its first token came.
	enqueued, started, firstToken time.Time

	out     []int
	text    strings.Builder
	emitted int // bytes of text already reported
	done    bool
	reason  string
	stats   Stats
}

func (m *Model) newSequence(ctx context.Context, index int, req *Request) (*sequence, error) {
	if err := req.SamplingOptions.Validate(); err != nil {
		return nil, err
	}
	if req.MaxTokens < 0 {
		return nil, fmt.Errorf("max tokens %d: must be ≥ 0", req.MaxTokens)
	}
	sched, err := m.ResolveSchedule(req.Schedule, req.Speedup)
	if err != nil {
		return nil, err
	}
	draft, confidence := 0, 0.0
	if req.Lossless {
		switch confidence = req.DraftConfidence; {
		case confidence == 0:
			confidence = DefaultDraftConfidence
		case math.IsNaN(confidence) || confidence > 1:
			return nil, fmt.Errorf("draft confidence %g: want a probability up to 1 (or negative for none)", confidence)
		}
		if draft = req.Draft; draft == 0 {
			draft = DefaultDraftTokens
		}
		if draft < 1 || draft > maxDraftTokens {
			return nil, fmt.Errorf("draft of %d tokens: want 1..%d", draft, maxDraftTokens)
		}
		if len(sched.Layers) == m.Manifest.NumLayers && req.Schedule == "" && req.Speedup == 0 {
			if sched, err = ParseSchedule("uls:2", 0, m.Manifest.NumLayers); err != nil {
				return nil, fmt.Errorf("lossless draft schedule: %w", err)
			}
		}
	} else if req.Draft != 0 || req.DraftConfidence != 0 {
		return nil, errors.New("a draft length or confidence is only meaningful for lossless decoding")
	}
	prompt := req.PromptIDs
	if prompt == nil {
		if m.Tokenizer == nil {
			return nil, errors.New("the model package has no tokenizer: give prompt ids instead of text")
		}
		ids, err := encode(ctx, m.Tokenizer, req.Prompt)
		if err != nil {
			return nil, fmt.Errorf("encode prompt: %w", err)
		}
		prompt = ids
	}
	man := m.Manifest
	if len(prompt) == 0 {
		return nil, errors.New("the prompt is empty")
	}
	if len(prompt) >= man.MaxSeqLen {
		return nil, fmt.Errorf("the prompt has %d tokens but the model's max_seq_len is %d (room is needed for at least one new token)", len(prompt), man.MaxSeqLen)
	}
	for _, id := range prompt {
		if id < 0 || id >= man.VocabSize {
			return nil, fmt.Errorf("prompt token id %d is outside the vocabulary (0..%d)", id, man.VocabSize-1)
		}
	}
	s := &sequence{index: index, req: req, prompt: slices.Clone(prompt), schedule: sched, draft: draft, confidence: confidence, out: []int{},
		sampler: newSampler(req.SamplingOptions, prompt)}
	if m.Tokenizer != nil {
		s.decoder = m.Tokenizer.NewStreamDecoder()
	}
	return s, nil
}

// groupKey names what requests must share to decode in one batch.
func (s *sequence) groupKey() string {
	if s.draft > 0 {
		return fmt.Sprintf("lossless %s draft %d confidence %g", s.schedule, s.draft, s.confidence)
	}
	return s.schedule.String()
}

// sampleInto picks the sequence's next token from logits, records it, and
// makes it row b's input of the next decode step.
func (s *sequence) sampleInto(m *Model, logits []float32, step *part, b int, onToken func(Token) error) error {
	id, err := s.sampler.next(logits)
	if err != nil {
		return err
	}
	pos := s.pos()
	if err := s.accept(m, id, pos, onToken); err != nil {
		return err
	}
	step.ids[b], step.pos[b] = id, pos
	return nil
}

// pos is the position the sequence's next token will occupy.
func (s *sequence) pos() int { return len(s.prompt) + len(s.out) }

func (s *sequence) maxTokens() int {
	if s.req.MaxTokens == 0 {
		return DefaultMaxTokens
	}
	return s.req.MaxTokens
}

func (s *sequence) result() Result {
	return Result{ID: s.req.ID, TokenIDs: s.out, Text: s.text.String()[:s.emittedLimit()], StopReason: s.reason,
		KeptLayers: s.schedule.Layers, Stats: s.stats}
}

// emittedLimit is how much of the text belongs to the result: all of it,
// unless a stop string cut it.
func (s *sequence) emittedLimit() int {
	if s.done {
		return s.emitted
	}
	return s.text.Len()
}

// accept records a sampled token and reports whether the sequence may go on.
// pos is the position the token would occupy in the KV cache.
func (s *sequence) accept(m *Model, id, pos int, onToken func(Token) error) error {
	if !s.req.IgnoreEOS && slices.Contains(m.Manifest.EOSIDs, id) {
		return s.finish(StopEOS, s.text.Len(), onToken)
	}
	s.out = append(s.out, id)
	if s.decoder != nil {
		s.text.WriteString(s.decoder.Next(id))
	}
	text := s.text.String()
	for _, stop := range s.req.Stop {
		if stop == "" {
			continue
		}
		if i := strings.Index(text[max(0, s.emitted-len(stop)+1):], stop); i >= 0 {
			return s.finishToken(id, StopString, max(0, s.emitted-len(stop)+1)+i, onToken)
		}
	}
	switch {
	case len(s.out) >= s.maxTokens():
		return s.finishToken(id, StopMaxTokens, len(text), onToken)
	case pos >= m.Manifest.MaxSeqLen:
		return s.finishToken(id, StopLength, len(text), onToken)
	}
	// Hold back a tail that could still become a stop string.
	safe := len(text)
	for _, stop := range s.req.Stop {
		for k := min(len(stop)-1, len(text)); k > 0; k-- {
			if strings.HasSuffix(text, stop[:k]) {
				safe = min(safe, len(text)-k)
				break
			}
		}
	}
	return s.emit(id, safe, onToken)
}

func (s *sequence) emit(id, upto int, onToken func(Token) error) error {
	piece := ""
	if upto > s.emitted {
		piece = s.text.String()[s.emitted:upto]
		s.emitted = upto
	}
	if onToken == nil {
		return nil
	}
	return onToken(Token{Index: s.index, ID: id, Text: piece})
}

func (s *sequence) finishToken(id int, reason string, textEnd int, onToken func(Token) error) error {
	if s.decoder != nil && reason != StopString {
		s.text.WriteString(s.decoder.Flush())
		textEnd = s.text.Len()
	}
	err := s.emit(id, textEnd, onToken)
	s.done, s.reason = true, reason
	return err
}

func (s *sequence) finish(reason string, textEnd int, onToken func(Token) error) error {
	if s.decoder != nil {
		s.text.WriteString(s.decoder.Flush())
		textEnd = s.text.Len()
	}
	if textEnd > s.emitted && onToken != nil {
		if err := onToken(Token{Index: s.index, ID: -1, Text: s.text.String()[s.emitted:textEnd]}); err != nil {
			return err
		}
	}
	s.emitted = max(s.emitted, textEnd)
	s.done, s.reason = true, reason
	return nil
}

// decodeBatch prefills every sequence of a batch at full depth, then decodes
// them together through the schedule's layers until each one stops.
func (m *Model) decodeBatch(ctx context.Context, seqs []*sequence, onToken func(Token) error) error {
	sched := seqs[0].schedule
	lossless := seqs[0].draft > 0
	keep := sched.Layers
	if lossless {
		keep = m.allLayers() // the verify step writes every layer's KV
	}
	r, err := m.runnerFor(len(seqs), keep)
	if err != nil {
		return err
	}
	defer r.close()
	if err := ctx.Err(); err != nil {
		return err
	}

	start := time.Now()
	prompts := make([][]int, len(seqs))
	for b, s := range seqs {
		prompts[b] = s.prompt
	}
	logits, err := r.prefill(prompts, m.allLayers(), m.opts.PrefillChunk)
	if err != nil {
		return err
	}
	prefillDone := time.Now()
	if lossless {
		spec, err := m.decodeLossless(ctx, r, seqs, logits, sched.Layers, seqs[0].draft, seqs[0].confidence, onToken)
		if err != nil {
			return err
		}
		end := time.Now()
		m.finishStats(seqs, r, start, prefillDone, prefillDone, end, spec.Emitted, spec.VerifySteps, &spec)
		return nil
	}
	step := part{S: 1, ids: make([]int, len(seqs)), pos: make([]int, len(seqs))}
	sampleAll := func(logits *stepLogits) error {
		for b, s := range seqs {
			if s.done {
				continue
			}
			if err := s.sampleInto(m, logits.at(b, 0), &step, b, onToken); err != nil {
				return err
			}
		}
		return nil
	}
	if err := sampleAll(logits); err != nil {
		return err
	}
	firstToken := time.Now()
	decodeTokens, steps := 0, 0
	for {
		active := 0
		for _, s := range seqs {
			if !s.done {
				active++
			}
		}
		if active == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Finished rows keep feeding their last token at their last position;
		// rows are independent, so this changes nothing for the others.
		if logits, err = r.step([]part{step}, sched.Layers, true); err != nil {
			return err
		}
		decodeTokens += active
		steps++
		if err := sampleAll(logits); err != nil {
			return err
		}
	}
	m.finishStats(seqs, r, start, prefillDone, firstToken, time.Now(), decodeTokens, steps, nil)
	return nil
}

// finishStats files the batch's figures in every sequence.
func (m *Model) finishStats(seqs []*sequence, r *runner, start, prefillDone, firstToken, end time.Time, decodeTokens, steps int, spec *SpecStats) {
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

// allLayers lists every layer of the model, in order.
func (m *Model) allLayers() []int {
	l := make([]int, m.Manifest.NumLayers)
	for i := range l {
		l[i] = i
	}
	return l
}

// runnerFor makes a runner for a batch decoding through kept, after
// checking that its KV cache fits in memory.
func (m *Model) runnerFor(batch int, kept []int) (*runner, error) {
	if err := m.checkKVMemory(batch, Schedule{Layers: kept}); err != nil {
		return nil, err
	}
	keep := make([]bool, m.Manifest.NumLayers)
	for _, l := range kept {
		keep[l] = true
	}
	return newRunner(m.g, batch, keep)
}

// Check reports whether a request is valid for this model without running it.
func (m *Model) Check(req Request) error {
	_, err := m.newSequence(context.Background(), 0, &req)
	return err
}

// encode encodes a text prompt, stopping when ctx ends if the tokenizer can.
func encode(ctx context.Context, t Tokenizer, text string) ([]int, error) {
	if ce, ok := t.(ContextEncoder); ok {
		return ce.EncodeContext(ctx, text, true)
	}
	return t.Encode(text, true)
}
