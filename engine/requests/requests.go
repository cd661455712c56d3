// Package requests reads the request lines of a batch job (JSON Lines, the
// input of strata batch and strata-beam) and checks the values a job gives
// every request, so that both commands accept and refuse the same input.
package requests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/strata-llm/strata/engine"
)

// bom is the UTF-8 byte order mark some editors put at the start of a file.
var bom = []byte("\xef\xbb\xbf")

// StripBOM drops a leading UTF-8 byte order mark from the first line of a
// file.
func StripBOM(line []byte) []byte { return bytes.TrimPrefix(line, bom) }

// MaxLineBytes is the longest request line read (64 MiB).
const MaxLineBytes = 64 << 20

// PromptBytesPerToken bounds the text one prompt token stands for. A text
// prompt longer than max_seq_len × PromptBytesPerToken bytes cannot fit in
// the model and is refused before it is tokenized, which for a prompt of
// megabytes takes seconds and gigabytes.
const PromptBytesPerToken = 256

// MaxPromptBytes is the longest text prompt worth tokenizing for a model of
// maxSeqLen positions.
func MaxPromptBytes(maxSeqLen int) int { return max(maxSeqLen, 1) * PromptBytesPerToken }

// CheckPromptBytes refuses a text prompt too long to fit in maxSeqLen
// positions, from its length in bytes alone.
func CheckPromptBytes(prompt string, maxSeqLen int) error {
	if n := len(prompt); n > MaxPromptBytes(maxSeqLen) {
		return fmt.Errorf("the prompt has %d bytes, more than fit in the model's max_seq_len of %d tokens (at most %d bytes are read)", n, maxSeqLen, MaxPromptBytes(maxSeqLen))
	}
	return nil
}

// explicit holds the request fields whose zero value also means "not
// given" in engine.Request, to tell a value written as 0 from one left out.
type explicit struct {
	MaxTokens *int     `json:"max_tokens"`
	TopP      *float64 `json:"top_p"`
	Speedup   *float64 `json:"speedup"`
}

// Decode parses one request line over defaults: fields the line leaves out
// take the defaults' values. The line must hold exactly one JSON object of
// engine.Request's fields and nothing after it. A max_tokens below 1, a
// top_p of 0 and a speedup below 1 are refused rather than read as "the
// default" or "off". The id and prompt are not checked here (the callers
// differ on a missing id).
func Decode(line []byte, defaults engine.Request) (engine.Request, error) {
	req := defaults
	line = bytes.TrimSpace(line)
	if !bytes.HasPrefix(line, []byte("{")) {
		if bytes.HasPrefix(line, bom) {
			return req, errors.New("starts with a UTF-8 byte order mark inside the file (only the file's first line may carry one)")
		}
		return req, fmt.Errorf("not a JSON object: %s", preview(line))
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, err
	}
	if rest := bytes.TrimSpace(line[dec.InputOffset():]); len(rest) > 0 {
		return req, fmt.Errorf("text after the request object: %s (one request per line)", preview(rest))
	}
	var ex explicit
	if err := json.Unmarshal(line, &ex); err != nil {
		return req, err
	}
	switch {
	case ex.MaxTokens != nil && *ex.MaxTokens < 1:
		return req, fmt.Errorf("max_tokens %d: must be at least 1 (leave it out for the default)", *ex.MaxTokens)
	case ex.TopP != nil && *ex.TopP == 0:
		return req, errors.New("top_p 0: must be in (0, 1] (leave it out for no nucleus sampling)")
	case ex.Speedup != nil:
		if err := CheckRatio(*ex.Speedup); err != nil {
			return req, fmt.Errorf("speedup %w", err)
		}
	}
	return req, nil
}

// CheckRatio validates a speedup ratio: a finite number ≥ 1. The error
// reads after the name of the setting ("--speedup " + err).
func CheckRatio(r float64) error {
	if !engine.ValidRatio(r) {
		return fmt.Errorf("%g: must be a number of at least 1", r)
	}
	return nil
}

// CheckDefaults validates the values a job gives every request (from
// command-line flags): max tokens, sampling, and the schedule and speedup
// against a model of numLayers layers (0 when the package cannot be read
// here: then only the schedule's name and form are checked). Errors name
// the setting as its flag is spelled, without the dashes.
func CheckDefaults(d engine.Request, numLayers int) error {
	if d.MaxTokens < 1 {
		return fmt.Errorf("max-tokens %d: must be at least 1", d.MaxTokens)
	}
	if d.Speedup != 0 {
		if err := CheckRatio(d.Speedup); err != nil {
			return fmt.Errorf("speedup %w", err)
		}
	}
	if err := d.SamplingOptions.Validate(); err != nil {
		return err
	}
	if d.Schedule == "" && (d.Speedup == 0 || numLayers < 1) {
		return nil
	}
	layers := numLayers
	if layers < 1 {
		layers = 1 << 10 // any count: the name and form are what is checked
	}
	speedup := d.Speedup
	if speedup == 0 && engine.IsRule(d.Schedule) {
		speedup = 1 // the package's ratio is applied later
	}
	if _, err := engine.ParseSchedule(d.Schedule, speedup, layers); err != nil {
		if d.Schedule == "" {
			return err // it names the speedup
		}
		return fmt.Errorf("schedule %s: %w", d.Schedule, err)
	}
	return nil
}

// preview shows the start of b for an error message.
func preview(b []byte) string {
	const n = 40
	if len(b) <= n {
		return fmt.Sprintf("%q", b)
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", b[:cut])
}
