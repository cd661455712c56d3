package engine

import (
	"context"
	"time"
)

// Plain ULS decoding of a batch's rows, as a policy of the step loop: new
// rows' prompts prefill at full depth, then every step decodes one token per
// running row through the schedule's layers (docs/design.md, "The step
// loop" and "Batching").

// source gives a batch's free rows their requests.
type source interface {
	// arrive takes in the requests that have arrived since the last step.
	arrive(ctx context.Context) error
	// take returns the next request for a free row, nil when none waits.
	take() *sequence
	// waiting reports whether requests wait for rows.
	waiting() bool
	// retire completes a finished row's request.
	retire(s *sequence)
}

// decodeRows is the policy of plain decoding. With refill set (continuous
// batching) a finished row is retired and refilled from the source before
// the next step; without it (static batching) the batch is the rows it
// started with, and finished rows keep feeding their last token at their
// last position until every row has finished: rows are independent, so
// this changes nothing for the others.
type decodeRows struct {
	m       *Model
	layers  []int // the schedule's
	src     source
	refill  bool
	onToken func(Token) error
	rows    []*sequence
	step    part // the next decode step's input
	busy    int  // the rows it advances
	// parts and idle are the steps' parts and a prefill's pad positions,
	// kept so that a step allocates nothing here.
	parts []part
	idle  []int
	count *BatchingStats
	// prefilled is set after a prefill step, whose rows decode before
	// any row is refilled again.
	prefilled bool
	// prefillAt is when the latest prefill step began.
	prefillAt time.Time
	// start, prefillDone and firstToken time the batch's first prefill: its
	// start, its end, and when its rows had their first tokens.
	start, prefillDone, firstToken time.Time
}

// newDecodeRows makes the policy of a batch of B rows decoding through
// layers, counting its steps in count.
func newDecodeRows(m *Model, B int, layers []int, src source, refill bool, count *BatchingStats, onToken func(Token) error) *decodeRows {
	return &decodeRows{m: m, layers: layers, src: src, refill: refill, onToken: onToken, count: count, rows: make([]*sequence, B),
		step: part{S: 1, ids: make([]int, B), pos: make([]int, B), active: make([]bool, B)}, parts: make([]part, 1), idle: make([]int, B)}
}

// next retires and refills rows, then decodes the running ones; it is done
// when no row runs and no request waits.
func (d *decodeRows) next(ctx context.Context) (work, bool, error) {
	for {
		if !d.prefilled {
			if err := ctx.Err(); err != nil {
				return work{}, false, err
			}
			if err := d.src.arrive(ctx); err != nil {
				return work{}, false, err
			}
			if w, ok := d.fill(); ok {
				d.prefilled, d.prefillAt = true, time.Now()
				if d.start.IsZero() {
					d.start = d.prefillAt
				}
				return w, false, nil
			}
		}
		d.prefilled = false
		d.busy = 0
		for b, s := range d.rows {
			d.step.active[b] = s != nil && !s.done
			if d.step.active[b] {
				d.busy++
			} else if s == nil {
				d.step.ids[b], d.step.pos[b] = 0, 0
			}
		}
		if d.busy > 0 {
			d.parts[0] = d.step
			return work{kind: stepDecode, parts: d.parts, layers: d.layers}, false, nil
		}
		if !d.src.waiting() {
			return work{}, true, nil
		}
	}
}

// fill retires finished rows (with refill) and gives free rows the
// source's next requests; ok when some row has a prompt to prefill.
func (d *decodeRows) fill() (w work, ok bool) {
	var prompts [][]int
	idle := d.idle
	clear(idle)
	for b, s := range d.rows {
		if d.refill && s != nil && s.done {
			d.src.retire(s)
			d.rows[b], s = nil, nil
		}
		if s == nil {
			if s = d.src.take(); s != nil {
				d.rows[b] = s
				if prompts == nil {
					prompts = make([][]int, len(d.rows))
				}
				prompts[b] = s.prompt
				d.count.Refills++
				continue
			}
		}
		if s != nil {
			idle[b] = d.step.pos[b]
		}
	}
	if prompts == nil {
		return work{}, false
	}
	return work{kind: stepPrefill, prompts: prompts, idle: idle, layers: d.m.allLayers()}, true
}

// took samples the next token of every row the step advanced.
func (d *decodeRows) took(w work, logits *stepLogits) error {
	if w.kind == stepPrefill {
		if d.prefillDone.IsZero() {
			d.prefillDone = time.Now()
		}
		for b, p := range w.prompts {
			if p == nil {
				continue
			}
			s := d.rows[b]
			s.started = d.prefillAt
			if err := d.sampleInto(s, logits.at(b, 0), b); err != nil {
				return err
			}
			s.firstToken = time.Now()
		}
		if d.firstToken.IsZero() {
			d.firstToken = time.Now()
		}
		return nil
	}
	d.count.DecodeSteps++
	d.count.BusyRows += d.busy
	for b, s := range d.rows {
		if d.step.active[b] {
			if err := d.sampleInto(s, logits.at(b, 0), b); err != nil {
				return err
			}
		}
	}
	return nil
}

// sampleInto picks row b's next token from logits, records it in s, and
// makes it the row's input of the next decode step.
func (d *decodeRows) sampleInto(s *sequence, logits []float32, b int) error {
	id, err := s.sampler.next(logits)
	if err != nil {
		return err
	}
	pos := s.pos()
	if err := s.accept(d.m, id, pos, d.onToken); err != nil {
		return err
	}
	d.step.ids[b], d.step.pos[b] = id, pos
	return nil
}

// fixedRows is the source of a static batch: its requests, each taken
// once, and no more.
type fixedRows struct{ seqs []*sequence }

func (f *fixedRows) arrive(context.Context) error { return nil }

func (f *fixedRows) take() *sequence {
	if len(f.seqs) == 0 {
		return nil
	}
	s := f.seqs[0]
	f.seqs = f.seqs[1:]
	return s
}

func (f *fixedRows) waiting() bool { return len(f.seqs) > 0 }

func (f *fixedRows) retire(*sequence) {}
