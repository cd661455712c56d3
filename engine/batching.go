package engine

import (
	"context"
	"time"
)

// Continuous batching: which requests share a step, and when a finished
// row is refilled (docs/design.md, "Batching").

// Stream generates the requests that arrive on in, with continuous
// batching, and sends each one's completion on the returned channel as soon
// as it finishes (so not in arrival order). The channel is closed once in
// is closed and every request has completed, or after ctx ends (requests
// not finished then complete with ctx's error). onToken (may be nil) sees
// every token; Token.Index is the arrival index.
func (m *Model) Stream(ctx context.Context, in <-chan Request, onToken func(Token) error) <-chan Completion {
	out := make(chan Completion)
	go func() {
		defer close(out)
		m.mu.RLock()
		defer m.mu.RUnlock()
		sc := &scheduler{m: m, in: in, onToken: onToken, done: func(c Completion) {
			select {
			case out <- c:
			case <-ctx.Done():
			}
		}}
		sc.run(ctx)
	}()
	return out
}

// scheduler is the state of one Stream or GenerateBatch call.
type scheduler struct {
	m       *Model
	in      <-chan Request // nil once closed (or for a fixed set of requests)
	queue   []*sequence
	arrived int
	onToken func(Token) error
	done    func(Completion)
	stats   BatchingStats
	rows    int   // rows of the current runner
	kvBytes int64 // its KV cache
}

// run serves requests until the input ends or ctx does.
func (sc *scheduler) run(ctx context.Context) {
	if sc.m.closed {
		sc.failAll(ErrClosed)
		return
	}
	for {
		if err := sc.receive(ctx, len(sc.queue) == 0); err != nil {
			sc.failAll(err)
			return
		}
		if len(sc.queue) == 0 {
			return // the input is closed and everything is done
		}
		group := sc.takeGroup()
		var err error
		if group[0].draft > 0 {
			err = sc.m.decodeBatch(ctx, group, sc.onToken)
			for _, s := range group {
				sc.complete(s, err)
			}
		} else {
			err = sc.serve(ctx, group)
		}
		if err != nil {
			sc.failAll(err)
			return
		}
	}
}

// receive moves arrived requests into the queue; with wait it blocks until
// one arrives or the input closes.
func (sc *scheduler) receive(ctx context.Context, wait bool) error {
	for sc.in != nil {
		var req Request
		var ok bool
		if wait {
			select {
			case req, ok = <-sc.in:
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			select {
			case req, ok = <-sc.in:
			default:
				return nil
			}
		}
		if !ok {
			sc.in = nil
			return nil
		}
		index := sc.arrived
		sc.arrived++
		s, err := sc.m.newSequence(ctx, index, &req)
		if err != nil {
			sc.done(Completion{Index: index, Err: err})
			continue
		}
		s.enqueued = time.Now()
		sc.queue = append(sc.queue, s)
		wait = false
	}
	return nil
}

// takeGroup removes the oldest request's group from the queue: for a
// lossless group up to MaxBatch requests, otherwise just the oldest (serve
// takes the rest of its schedule as rows free up).
func (sc *scheduler) takeGroup() []*sequence {
	first := sc.queue[0]
	if first.draft == 0 {
		sc.queue = sc.queue[1:]
		return []*sequence{first}
	}
	var group, rest []*sequence
	for _, s := range sc.queue {
		if len(group) < sc.m.opts.MaxBatch && s.groupKey() == first.groupKey() {
			group = append(group, s)
		} else {
			rest = append(rest, s)
		}
	}
	sc.queue = rest
	return group
}

// next removes the oldest queued request with the given group key.
func (sc *scheduler) next(key string) *sequence {
	for i, s := range sc.queue {
		if s.groupKey() == key {
			sc.queue = append(sc.queue[:i], sc.queue[i+1:]...)
			return s
		}
	}
	return nil
}

// serve decodes first and every queued request of its schedule with
// continuous batching, until none of them is left.
func (sc *scheduler) serve(ctx context.Context, first []*sequence) error {
	m := sc.m
	key, sched := first[0].groupKey(), first[0].schedule
	B := m.opts.MaxBatch
	if sc.in == nil {
		// A fixed set of requests: no more rows than it can fill.
		B = min(B, len(first)+sc.count(key))
	}
	r, err := m.runnerFor(B, sched.Layers)
	if err != nil {
		for _, s := range first {
			sc.complete(s, err)
		}
		return nil // a request that cannot fit is its own error, not the stream's
	}
	defer m.doneWith(r)
	sc.rows, sc.kvBytes = B, r.kvBytes()
	d := newDecodeRows(m, B, sched.Layers, &arrivals{sc: sc, key: key, pending: first}, true, &sc.stats, sc.onToken)
	err = runSteps(ctx, r, m.opts.PrefillChunk, d)
	sc.fail(d.rows, err)
	return err
}

// arrivals is the source of one schedule's rows under continuous
// batching: first the requests it started with, then queued ones with its
// group key, in arrival order.
type arrivals struct {
	sc      *scheduler
	key     string
	pending []*sequence
}

func (a *arrivals) arrive(ctx context.Context) error { return a.sc.receive(ctx, false) }

func (a *arrivals) take() *sequence {
	if len(a.pending) > 0 {
		s := a.pending[0]
		a.pending = a.pending[1:]
		return s
	}
	return a.sc.next(a.key)
}

func (a *arrivals) waiting() bool { return len(a.pending) > 0 || a.sc.queued(a.key) }

func (a *arrivals) retire(s *sequence) { a.sc.complete(s, nil) }

// queued reports whether a request with the group key waits.
func (sc *scheduler) queued(key string) bool { return sc.count(key) > 0 }

// count is the number of queued requests with the group key.
func (sc *scheduler) count(key string) int {
	n := 0
	for _, s := range sc.queue {
		if s.groupKey() == key {
			n++
		}
	}
	return n
}

// complete files a finished sequence's stats and reports it.
func (sc *scheduler) complete(s *sequence, err error) {
	if err == nil && s.draft == 0 {
		s.ownStats(time.Now(), sc.rows, sc.kvBytes, sc.stats)
	}
	sc.done(Completion{Index: s.index, Result: s.result(), Err: err})
}

// fail completes the rows' sequences with err (nil: they finished).
func (sc *scheduler) fail(rows []*sequence, err error) {
	for b, s := range rows {
		if s != nil {
			sc.complete(s, err)
			rows[b] = nil
		}
	}
}

// failAll completes every queued request with err. Requests still sent
// on the input are not read.
func (sc *scheduler) failAll(err error) {
	for _, s := range sc.queue {
		sc.complete(s, err)
	}
	sc.queue = nil
}
