package engine

// DefaultMaxTokens is the number of new tokens generated when a request
// does not say.
const DefaultMaxTokens = 128

// DefaultDraftTokens is how many tokens a lossless round drafts at most
// when a request does not say.
const DefaultDraftTokens = 4

// DefaultDraftConfidence is the draft probability below which a lossless
// round stops drafting when a request does not say (Request.DraftConfidence).
const DefaultDraftConfidence = 0.8

// maxDraftTokens bounds a request's draft length.
const maxDraftTokens = 64

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
	Lossless *LosslessStats `json:"lossless,omitempty"`
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

// LosslessStats describe a lossless batch: how much of the draft the full
// model accepted.
type LosslessStats struct {
	Draft       int `json:"draft"`
	DraftSteps  int `json:"draft_steps"`
	VerifySteps int `json:"verify_steps"`
	// Drafted and Accepted count drafted tokens of running rows; Emitted
	// the tokens the rounds produced.
	Drafted  int `json:"drafted"`
	Accepted int `json:"accepted"`
	Emitted  int `json:"emitted"`
	// Agreement[i] is the share of rounds in which the draft's most likely
	// token at draft position i+1 equals the full model's on the same prefix
	// (raw logits, before any sampling warper), counted in every round
	// whether or not earlier drafts were accepted.
	Agreement []float64 `json:"draft_agreement"`
}

// Completion is one request's outcome from Stream.
type Completion struct {
	// Index is the request's position in arrival order.
	Index  int
	Result Result
	Err    error
}

// BatchingStats count what continuous batching did.
type BatchingStats struct {
	// DecodeSteps and BusyRows: the decode steps run and the rows they
	// advanced; Utilization is BusyRows / (DecodeSteps × MaxBatch).
	DecodeSteps int     `json:"decode_steps"`
	BusyRows    int     `json:"busy_rows"`
	Refills     int     `json:"refills"`
	Utilization float64 `json:"utilization"`
}
