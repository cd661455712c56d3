// Package eval measures output quality and speed of a model package under
// layer-skipping schedules: corpus BLEU (sacreBLEU's default), chrF and exact
// match on a held-out test set (the built-in translation set or the user's
// own prompt/reference pairs), and decode tokens/s, per schedule and ratio —
// the shape of the paper's Table 4.
package eval

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/metrics"
)

// Example is one test item: a prompt and the reference output.
type Example struct {
	Ref string `json:"ref"`
	// Source is the text the package's prompt template wraps (the built-in
	// translation set's English verse); unused when Prompt is set.
	Source string `json:"en"`
	// Target is the reference output.
	Target string `json:"es"`
	// Prompt, when set, is the whole prompt text, used without the template.
	Prompt string `json:"prompt,omitempty"`
}

//go:embed data/bible-en-es-test.jsonl
var bibleTest []byte

// Tasks are the built-in evaluation sets.
var Tasks = map[string]func() ([]Example, error){
	// bible-en-es is the held-out test split of scripts/bible: whole books
	// (KJV English → Reina-Valera 1909 Spanish) never seen in training.
	"bible-en-es": func() ([]Example, error) { return ReadExamples(bytes.NewReader(bibleTest)) },
}

// ReadExamples parses JSONL lines of either form: {"ref", "en", "es"} (a
// source the package's prompt template wraps, and its reference), or
// {"prompt", "reference"} (a whole prompt used as it is; "response", the
// fine-tuning data's name, is read as the reference when "reference" is
// absent). "ref" is an optional identifier.
func ReadExamples(r io.Reader) ([]Example, error) {
	var out []Example
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), maxExampleLine)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf")) // a byte order mark
		}
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		if !utf8.Valid(text) {
			return nil, fmt.Errorf("examples line %d is not valid UTF-8 (at byte %d); convert the file to UTF-8", line, invalidUTF8At(text))
		}
		var rec struct {
			Ref       string  `json:"ref"`
			En        string  `json:"en"`
			Es        string  `json:"es"`
			Prompt    string  `json:"prompt"`
			Reference *string `json:"reference"`
			Response  *string `json:"response"`
		}
		if err := json.Unmarshal(text, &rec); err != nil {
			return nil, fmt.Errorf("examples line %d: %w", line, err)
		}
		ex := Example{Ref: rec.Ref, Source: rec.En, Target: rec.Es, Prompt: rec.Prompt}
		if ex.Prompt != "" {
			switch {
			case rec.Reference != nil:
				ex.Target = *rec.Reference
			case rec.Response != nil:
				ex.Target = *rec.Response
			}
		}
		if (ex.Source == "" && ex.Prompt == "") || strings.TrimSpace(ex.Target) == "" {
			return nil, fmt.Errorf(`examples line %d: want {"prompt","reference"} or {"en","es"} with non-empty text`, line)
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("examples line %d is longer than %d MiB, the most one example may hold", line+1, maxExampleLine>>20)
		}
		return nil, fmt.Errorf("read examples: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no examples")
	}
	return out, nil
}

// maxExampleLine is the longest example line read.
const maxExampleLine = 16 << 20

// invalidUTF8At is the offset of the first byte of b that is not valid UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// Validate checks the schedules and ratios (no schedule: the full-depth
// row only): none empty or repeated, each
// schedule a ratio rule (uls, balanced, top, bottom), each ratio a finite
// number ≥ 1.
func (o Options) Validate() error {
	seen := map[string]bool{}
	for _, s := range o.Schedules {
		switch {
		case s == "":
			return errors.New("schedules: an empty item")
		case !engine.IsRule(s):
			return fmt.Errorf("schedules: %q is not one of uls, balanced, top, bottom", s)
		case seen[s]:
			return fmt.Errorf("schedules: %s is listed twice", s)
		}
		seen[s] = true
	}
	ratios := map[float64]bool{}
	for _, r := range o.Ratios {
		switch {
		case !(r >= 1) || math.IsInf(r, 0):
			return fmt.Errorf("ratios: %g is not a ratio ≥ 1", r)
		case ratios[r]:
			return fmt.Errorf("ratios: %g is listed twice", r)
		}
		ratios[r] = true
	}
	return nil
}

// Options choose what to evaluate.
type Options struct {
	Schedules []string  // e.g. uls, top, bottom
	Ratios    []float64 // e.g. 1, 2, 3; 1 is full depth and shared by all schedules
	MaxTokens int       // per example (0: 160)
	// Stop lists strings that end a hypothesis (the built-in translation
	// set uses "\n"); decoding also stops at the model's EOS.
	Stop      []string
	BatchSize int // requests decoded together (0: the model's MaxBatch)
	// BaselineBLEU is the BLEU that Row.BLEUKept is relative to, e.g. the
	// full-depth BLEU of the model before ULS fine-tuning (0: this model's
	// own full-depth BLEU).
	BaselineBLEU float64
	// Lossless adds, for every schedule and ratio above 1, a row decoded
	// losslessly: the schedule's layers draft, every layer verifies (its
	// output equals full depth; the row reports how much of the draft the
	// full model accepted).
	Lossless bool
	// Draft is the most tokens drafted per lossless round (0: the
	// engine's default).
	Draft int
	// DraftConfidence is Request.DraftConfidence of the lossless rows.
	DraftConfidence float64
	// Progress, when set, is called after every batch.
	Progress func(done, total int)
}

// Row is one schedule × ratio result.
type Row struct {
	Schedule   string  `json:"schedule"`
	Ratio      float64 `json:"ratio"`
	KeptLayers []int   `json:"kept_layers"`
	BLEU       float64 `json:"bleu"`
	ChrF       float64 `json:"chrf"`
	// BLEUKept is BLEU as a fraction of the full-depth BLEU.
	BLEUKept float64 `json:"bleu_kept"`
	// ExactMatch is the fraction of hypotheses equal to their reference
	// (white space at either end ignored).
	ExactMatch float64 `json:"exact_match"`
	// Lossless marks a row decoded losslessly with the schedule as draft.
	Lossless bool `json:"lossless,omitempty"`
	// Accepted is the share of drafted tokens the full model accepted, and
	// Agreement the share of rounds whose first drafted token equals the
	// full model's (lossless rows only).
	Accepted  float64 `json:"accepted,omitempty"`
	Agreement float64 `json:"draft_agreement,omitempty"`
	DecodeTPS float64 `json:"decode_tps"`
	Sentences int     `json:"sentences"`
	// Samples are the first few hypotheses, for a look at the output.
	Samples []string `json:"samples,omitempty"`
}

// Run decodes every example greedily under each schedule and ratio. The
// package's prompt template wraps each Source; a Prompt is used as it is.
func Run(ctx context.Context, m *engine.Model, examples []Example, opts Options) ([]Row, error) {
	if len(examples) == 0 {
		return nil, fmt.Errorf("no examples to evaluate")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	maxTokens := opts.MaxTokens
	if maxTokens == 0 {
		maxTokens = 160
	}
	type job struct {
		schedule string
		ratio    float64
		lossless bool
	}
	jobs := []job{{"uls", 1, false}}
	for _, s := range opts.Schedules {
		for _, r := range opts.Ratios {
			if r != 1 {
				jobs = append(jobs, job{s, r, false})
				if opts.Lossless {
					jobs = append(jobs, job{s, r, true})
				}
			}
		}
	}
	refs := make([]string, len(examples))
	for i, ex := range examples {
		refs[i] = ex.Target
	}
	var rows []Row
	done, total := 0, len(jobs)*len(examples)
	for _, j := range jobs {
		sched, err := m.ResolveSchedule(j.schedule, j.ratio)
		if err != nil {
			return rows, fmt.Errorf("schedule %s at %g: %w", j.schedule, j.ratio, err)
		}
		hyps := make([]string, 0, len(examples))
		var tokens, drafted, accepted int
		var seconds, agreeSum, agreeRounds float64
		batch := opts.BatchSize
		if batch <= 0 {
			batch = 8
		}
		for start := 0; start < len(examples); start += batch {
			var reqs []engine.Request
			for _, ex := range examples[start:min(start+batch, len(examples))] {
				prompt := ex.Prompt
				if prompt == "" {
					prompt = m.Manifest.FormatPrompt(ex.Source)
				}
				req := engine.Request{Prompt: prompt, MaxTokens: maxTokens, Stop: opts.Stop, Schedule: sched.String()}
				if j.lossless {
					req.Lossless, req.Draft, req.DraftConfidence = true, opts.Draft, opts.DraftConfidence
				}
				reqs = append(reqs, req)
			}
			results, err := m.GenerateBatch(ctx, reqs, nil)
			if err != nil {
				return rows, err
			}
			seen := map[*engine.LosslessStats]bool{}
			for _, r := range results {
				hyps = append(hyps, strings.TrimSpace(r.Text))
				if sp := r.Stats.Group.Lossless; sp != nil && !seen[sp] {
					seen[sp] = true
					drafted += sp.Drafted
					accepted += sp.Accepted
					if len(sp.Agreement) > 0 && sp.VerifySteps > 0 {
						agreeSum += sp.Agreement[0] * float64(sp.VerifySteps)
						agreeRounds += float64(sp.VerifySteps)
					}
				}
			}
			// Decode time of this batch: its decoded tokens over its rate.
			decoded := 0
			for _, r := range results {
				decoded += max(0, len(r.TokenIDs)-1)
			}
			if s := results[0].Stats; s.DecodeTPS > 0 && decoded > 0 {
				tokens += decoded
				seconds += float64(decoded) / s.DecodeTPS
			}
			done += len(reqs)
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
		}
		bleu, err := metrics.CorpusBLEU(hyps, [][]string{refs})
		if err != nil {
			return rows, err
		}
		chrf, err := metrics.CorpusChrF(hyps, [][]string{refs})
		if err != nil {
			return rows, err
		}
		exact := 0
		for i, h := range hyps {
			if h == strings.TrimSpace(refs[i]) {
				exact++
			}
		}
		row := Row{Schedule: sched.Name, Ratio: j.ratio, KeptLayers: sched.Layers, BLEU: bleu.Score, ChrF: chrf,
			ExactMatch: float64(exact) / float64(len(hyps)), Sentences: len(hyps), Samples: hyps[:min(3, len(hyps))]}
		if j.ratio == 1 {
			row.Schedule = "full"
		}
		if j.lossless {
			row.Lossless = true
			if drafted > 0 {
				row.Accepted = float64(accepted) / float64(drafted)
			}
			if agreeRounds > 0 {
				row.Agreement = agreeSum / agreeRounds
			}
		}
		if seconds > 0 {
			row.DecodeTPS = float64(tokens) / seconds
		}
		switch {
		case opts.BaselineBLEU > 0:
			row.BLEUKept = row.BLEU / opts.BaselineBLEU
		case len(rows) == 0:
			row.BLEUKept = 1 // the full-depth row is its own baseline
		case rows[0].BLEU > 0:
			row.BLEUKept = row.BLEU / rows[0].BLEU
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// Markdown renders rows as a table shaped like the paper's Table 4:
// one row per schedule and ratio: BLEU (and its share of full depth), chrF,
// exact match and decode tokens/s.
func Markdown(title string, rows []Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", title)
	lossless := false
	for _, r := range rows {
		lossless = lossless || r.Lossless
	}
	b.WriteString("| schedule | ratio | kept layers | BLEU | % of full BLEU | chrF | exact match | decode tok/s |")
	if lossless {
		b.WriteString(" draft accepted | draft agreement |")
	}
	b.WriteString("\n|---|---|---|---|---|---|---|---|")
	if lossless {
		b.WriteString("---|---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		name := r.Schedule
		if r.Lossless {
			name += " (lossless)"
		}
		fmt.Fprintf(&b, "| %s | %g | %s | %.2f | %.0f%% | %.2f | %.1f%% | %.0f |", name, r.Ratio, layerList(r.KeptLayers),
			r.BLEU, 100*r.BLEUKept, r.ChrF, 100*r.ExactMatch, r.DecodeTPS)
		switch {
		case r.Lossless:
			fmt.Fprintf(&b, " %.0f%% | %.0f%% |", 100*r.Accepted, 100*r.Agreement)
		case lossless:
			b.WriteString(" | |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func layerList(l []int) string {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ",")
}
