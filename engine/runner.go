package engine

import (
	"fmt"
	"slices"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/models/manifest"
)

// runner runs the steps of one batch through a package's graphs: the one
// way strata runs a package, on every device (docs/design.md, "The runner").
// It owns the batch's KV cache and the tensors and bindings of its steps;
// the graphs are the Model's.
type runner struct {
	g     *graphs
	batch int
	kv    *kvCache
	// bufs holds the tensors and bindings of recent step sizes, by tokens
	// per row; a step of a size seen before allocates nothing.
	bufs map[int][]*stepBuffers
	// rows are one-row runners over views of each row's KV (host memory
	// only), made when a step needs a row on its own.
	rows   []*runner
	clock  int // steps run, for evicting sizes not used lately
	copies transfers
	// decode are the layers that keep their KV cache, in order: a step of
	// one token per row through exactly these layers and the head is a
	// decode step, which runs as one fused graph when the graphs fuse.
	decode []int
}

// part is S tokens per row that a step runs together: ids holds B×S token
// ids, row-major, right-padded where a row has fewer; row b's tokens go to
// positions pos[b] … pos[b]+S-1 of its cache. A padded token writes a KV
// slot past the row's end, which attention never reads and the row's next
// token overwrites.
type part struct {
	S   int
	ids []int
	pos []int
	// active marks the rows whose tokens matter (nil: all). An inactive
	// row's pad tokens go to its pos, a slot past its end that its next
	// token overwrites; when the part runs row by row, inactive rows are
	// left out.
	active []bool
}

// isActive reports whether row b's tokens matter.
func (p part) isActive(b int) bool { return p.active == nil || p.active[b] }

// stepLogits are the logits of a step's last part: at(b, i) is row b's
// next-token distribution after its token i. They alias the runner's
// buffers until its next step.
type stepLogits struct {
	tok [][][]float32 // [row][token]
}

func (l *stepLogits) at(b, i int) []float32 { return l.tok[b][i] }

// unit is what the step loop runs: one part's tensors, bound to the KV of
// the runner r (the batch's, or one row's view).
type unit struct {
	r *runner
	b *stepBuffers
	// row and tok place the unit's logits in the step's: its row 0 is
	// the step's row `row` (all rows from 0 when row < 0), its token 0 the
	// part's token tok.
	row, tok int
	head     bool
	// pos are the unit's rows' first positions (its part's).
	pos []int
}

// transfers counts the copies between host and device memory (none where
// the device's memory is the host's).
type transfers struct {
	toDevice, toHost           int
	toDeviceBytes, toHostBytes int64
}

// newRunner makes a runner for a batch whose layers keep their KV cache
// where keep says so (all layers for a full-depth or lossless batch, the
// schedule's for plain ULS decoding).
func newRunner(g *graphs, batch int, keep []bool) (*runner, error) {
	if batch < 1 {
		return nil, fmt.Errorf("batch size %d, want ≥ 1", batch)
	}
	kv, err := newKVCache(g, batch, keep)
	if err != nil {
		return nil, err
	}
	r := &runner{g: g, batch: batch, kv: kv, bufs: map[int][]*stepBuffers{}}
	for l, k := range keep {
		if k {
			r.decode = append(r.decode, l)
		}
	}
	return r, nil
}

// step runs the parts through the embedding, then through layers in order,
// and, when head is set, the last part through the head. At each layer every
// part runs before the next layer starts, so a part can attend to the KV an
// earlier part of the same step wrote there, even in a layer that shares
// the scratch KV pair: this is how a prompt is prefilled in chunks.
func (r *runner) step(parts []part, layers []int, head bool) (*stepLogits, error) {
	if len(layers) == 0 && r.g.full == nil {
		return nil, errNoLayers
	}
	units, err := r.plan(parts, head)
	if err != nil {
		return nil, err
	}
	if r.g.full != nil {
		return r.stepWhole(units, parts[len(parts)-1], r.g.full, nil)
	}
	if r.fuses(parts, layers, head) {
		s, err := r.g.fusion.session(layers)
		if err != nil {
			return nil, err
		}
		return r.stepWhole(units, parts[len(parts)-1], s, layers)
	}
	if err := r.forward(units, layers); err != nil {
		return nil, err
	}
	if !head {
		return nil, nil
	}
	out := newStepLogits(r.batch, parts[len(parts)-1].S)
	for _, u := range units {
		if !u.head {
			continue
		}
		hb, err := u.b.headBinding(u.r, len(layers)%2)
		if err != nil {
			return nil, err
		}
		if err := r.g.run(r.g.head, hb, func() string { return "head" }); err != nil {
			return nil, err
		}
		if err := u.place(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// forward runs the units through the embedding and then through layers in
// order, every unit at a layer before the next layer; each unit's output is
// left in its hidden[len(layers)%2].
func (r *runner) forward(units []unit, layers []int) error {
	for _, u := range units {
		if err := r.g.run(r.g.embed, u.b.embed, func() string { return "embedding" }); err != nil {
			return err
		}
	}
	for j, l := range layers {
		for _, u := range units {
			if err := u.r.runLayer(u.b, l, j%2); err != nil {
				return err
			}
		}
	}
	return nil
}

// plan turns parts into units and writes their inputs. ORT's
// GroupQueryAttention runs several tokens per row on top of a cache only for
// a batch of one, so such a part of a larger batch runs row by row, over
// views of each row's cache; where the cache cannot be viewed (device
// memory), it runs as one part per token instead: slower, the same result.
// A part at position 0 in every row (a prompt) runs whole.
func (r *runner) plan(parts []part, head bool) ([]unit, error) {
	r.clock++
	seen := map[*runner]map[int]int{} // buffers already taken this step, per runner and size
	take := func(rr *runner, S int) (*stepBuffers, error) {
		if seen[rr] == nil {
			seen[rr] = map[int]int{}
		}
		n := seen[rr][S]
		seen[rr][S]++
		return rr.buffers(S, n)
	}
	var units []unit
	add := func(rr *runner, p part, row, tok int, head bool) error {
		b, err := take(rr, p.S)
		if err != nil {
			return err
		}
		if err := rr.setInputs(b, p); err != nil {
			return err
		}
		units = append(units, unit{r: rr, b: b, row: row, tok: tok, head: head, pos: p.pos})
		return nil
	}
	for k, p := range parts {
		if len(p.ids) != r.batch*p.S || len(p.pos) != r.batch {
			return nil, fmt.Errorf("step of %d ids and %d positions for %d rows of %d tokens", len(p.ids), len(p.pos), r.batch, p.S)
		}
		last := head && k == len(parts)-1
		atStart := !slices.ContainsFunc(p.pos, func(x int) bool { return x > 0 })
		if p.S == 1 || (p.active == nil && (r.batch == 1 || atStart)) {
			if err := add(r, p, -1, 0, last); err != nil {
				return nil, err
			}
			continue
		}
		rows, err := r.rowRunners()
		if err != nil {
			return nil, err
		}
		if rows != nil {
			for b, rr := range rows {
				if !p.isActive(b) {
					continue
				}
				if err := add(rr, part{S: p.S, ids: p.ids[b*p.S : (b+1)*p.S], pos: p.pos[b : b+1]}, b, 0, last); err != nil {
					return nil, err
				}
			}
			continue
		}
		for i := range p.S {
			tp := part{S: 1, ids: make([]int, r.batch), pos: make([]int, r.batch)}
			for b := range r.batch {
				tp.ids[b], tp.pos[b] = p.ids[b*p.S+i], p.pos[b]
				if p.isActive(b) {
					tp.pos[b] += i
				}
			}
			if err := add(r, tp, -1, i, last); err != nil {
				return nil, err
			}
		}
	}
	return units, nil
}

// runLayer runs layer l for one part, reading hidden[parity] and writing
// the other buffer.
func (r *runner) runLayer(b *stepBuffers, l, parity int) error {
	lb, err := b.layerBinding(r, l, parity)
	if err != nil {
		return err
	}
	if err := r.bindLengths(lb, b); err != nil {
		return err
	}
	return r.g.run(r.g.layers[l], lb, func() string { return fmt.Sprintf("layer %d", l) })
}

// rowRunners returns one-row runners over views of each row's KV, nil when
// the cache cannot be viewed.
func (r *runner) rowRunners() ([]*runner, error) {
	if r.rows == nil {
		for b := range r.batch {
			kv, err := r.kv.rowView(b)
			if err != nil || kv == nil {
				for _, rr := range r.rows {
					rr.close()
				}
				r.rows = nil
				return nil, err
			}
			r.rows = append(r.rows, &runner{g: r.g, batch: 1, kv: kv, bufs: map[int][]*stepBuffers{}})
		}
	}
	for _, rr := range r.rows {
		rr.clock = r.clock
	}
	return r.rows, nil
}

func newStepLogits(batch, S int) *stepLogits {
	l := &stepLogits{tok: make([][][]float32, batch)}
	for b := range l.tok {
		l.tok[b] = make([][]float32, S)
	}
	return l
}

// place brings the unit's logits to the host and files them in out.
func (u unit) place(out *stepLogits) error {
	got, err := u.b.readLogits(u.r)
	if err != nil {
		return err
	}
	for b := range got.tok {
		row := b
		if u.row >= 0 {
			row = u.row
		}
		for i, l := range got.tok[b] {
			out.tok[row][u.tok+i] = l
		}
	}
	return nil
}

// bindLengths binds b's current seqlens_k and total_seq_len to a binding
// before its run where the device's memory is not the host's: a kernel may
// want them in device memory, and binding copies them there.
func (r *runner) bindLengths(ib *ortdev.IoBinding, b *stepBuffers) error {
	if r.g.onHost() {
		return nil
	}
	if err := ib.BindInput(manifest.SeqLensK, b.seqlens); err != nil {
		return err
	}
	return ib.BindInput(manifest.TotalSeqLen, b.total)
}

// fuses reports whether a step runs as one fused graph: a decode step (one
// token per row through the runner's decode layers and the head) on graphs
// that fuse. Prefill, verification and any other schedule run layer by
// layer.
func (r *runner) fuses(parts []part, layers []int, head bool) bool {
	if r.g.fusion == nil || !head || !slices.Equal(layers, r.decode) {
		return false
	}
	return !slices.ContainsFunc(parts, func(p part) bool { return p.S != 1 })
}

// stepWhole runs each unit through a graph that embeds, runs layers and
// the head at once — the monolithic graph (layers nil: every layer) or a
// fused decode graph — and returns the last part's logits.
func (r *runner) stepWhole(units []unit, last part, s *ortdev.Session, layers []int) (*stepLogits, error) {
	out := newStepLogits(r.batch, last.S)
	what := func() string { return "monolithic graph" }
	if layers != nil {
		what = func() string { return "fused decode graph (layers " + layersKey(layers) + ")" }
	}
	for _, u := range units {
		fb, err := u.b.wholeBinding(u.r, s, layers)
		if err != nil {
			return nil, err
		}
		ro := u.b.graphRun[s]
		if ro != nil {
			// A captured graph reads seqlens_k where it recorded it.
			if err := r.upload(u.b.seqlens, u.b.seqlensDev); err != nil {
				return nil, err
			}
		} else if err := r.bindLengths(fb, u.b); err != nil {
			return nil, err
		}
		if err := r.g.runWith(s, fb, ro, what); err != nil {
			return nil, err
		}
		if u.head {
			if err := u.place(out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// setInputs writes a part's ids, seqlens_k and total_seq_len, and copies
// the ids to the device.
func (r *runner) setInputs(b *stepBuffers, p part) error {
	man := r.g.man
	ids, err := b.idsHost.Int64s()
	if err != nil {
		return err
	}
	seqlens, err := b.seqlens.Int32s()
	if err != nil {
		return err
	}
	total, err := b.total.Int32s()
	if err != nil {
		return err
	}
	end := 0
	for i, id := range p.ids {
		ids[i] = int64(id)
	}
	for row, pos := range p.pos {
		if pos < 0 || pos+p.S > man.MaxSeqLen {
			return fmt.Errorf("row %d: positions %d..%d outside the KV cache (max_seq_len %d)", row, pos, pos+p.S-1, man.MaxSeqLen)
		}
		seqlens[row] = int32(pos + p.S - 1)
		end = max(end, pos+p.S)
	}
	total[0] = int32(end)
	if b.ids != b.idsHost {
		return r.upload(b.idsHost, b.ids)
	}
	return nil
}

// upload copies a host tensor to the device and counts it.
func (r *runner) upload(src, dst *ortdev.Value) error {
	if err := r.g.env.CopyTensors([]*ortdev.Value{src}, []*ortdev.Value{dst}); err != nil {
		return &DeviceError{string(r.g.dev), "copy to the device", err}
	}
	r.copies.toDevice++
	r.copies.toDeviceBytes += int64(src.NumElements() * src.ElementType().Size())
	return nil
}

// download copies a device tensor to the host and counts it.
func (r *runner) download(src, dst *ortdev.Value) error {
	if err := r.g.env.CopyTensors([]*ortdev.Value{src}, []*ortdev.Value{dst}); err != nil {
		return &DeviceError{string(r.g.dev), "copy from the device", err}
	}
	r.copies.toHost++
	r.copies.toHostBytes += int64(src.NumElements() * src.ElementType().Size())
	return nil
}

// kvBytes is the KV memory the runner holds.
func (r *runner) kvBytes() int64 { return r.kv.bytes }

// close releases the runner's tensors and bindings. It is idempotent.
func (r *runner) close() {
	for _, rr := range r.rows {
		if rr != nil {
			rr.close()
		}
	}
	r.rows = nil
	for _, list := range r.bufs {
		for _, b := range list {
			b.close()
		}
	}
	r.bufs = nil
	r.kv.close()
}
