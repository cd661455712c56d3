package engine

import (
	"fmt"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/models/manifest"
)

// stepBuffers are the tensors and bindings of one part of S tokens per row.
// Bindings are made on first use and kept: a decode step binds nothing.
type stepBuffers struct {
	S       int
	lastUse int
	// idsHost and ids are [B,S] int64; the same tensor where the device's
	// memory is the host's.
	idsHost, ids *ortdev.Value
	seqlens      *ortdev.Value    // host [B] int32
	total        *ortdev.Value    // host scalar int32
	hidden       [2]*ortdev.Value // [B,S,D] of the compute type: layers read one and write the other
	// logits and logitsHost are [B,S,V] float32, allocated with the first
	// head run of this size.
	logits, logitsHost *ortdev.Value
	tok                *stepLogits // views of logitsHost

	embed  *ortdev.IoBinding
	layers [][2]*ortdev.IoBinding // [layer][parity of the hidden buffer read]
	head   [2]*ortdev.IoBinding
	// whole are the bindings of graphs that run every part of a step at
	// once (the monolithic graph, fused decode graphs), by session.
	whole map[*ortdev.Session]*ortdev.IoBinding
	// graphRun names the captured CUDA graph of a whole binding (nil: not
	// captured); seqlensDev is seqlens at a fixed device address, written
	// before each captured run (cudagraph.go).
	graphRun   map[*ortdev.Session]*ortdev.RunOptions
	seqlensDev *ortdev.Value
	owned      []interface{ Close() }
}

// maxStepSizes bounds how many step sizes (tokens per row) keep their
// buffers; the least recently used beyond it are released.
const maxStepSizes = 4

// buffers returns the n-th buffers of size S: parts of the same size in
// one step get distinct buffers.
func (r *runner) buffers(S, n int) (*stepBuffers, error) {
	list := r.bufs[S]
	if n < len(list) {
		list[n].lastUse = r.clock
		return list[n], nil
	}
	if len(list) == 0 && len(r.bufs) >= maxStepSizes {
		r.evict()
	}
	b, err := newStepBuffers(r.g, r.batch, S)
	if err != nil {
		return nil, err
	}
	b.lastUse = r.clock
	r.bufs[S] = append(list, b)
	return b, nil
}

// evict releases the buffers of the least recently used step size.
func (r *runner) evict() {
	oldest, when := 0, r.clock+1
	for S, list := range r.bufs {
		if u := list[0].lastUse; u < when && u < r.clock {
			oldest, when = S, u
		}
	}
	for _, b := range r.bufs[oldest] {
		b.close()
	}
	delete(r.bufs, oldest)
}

func newStepBuffers(g *graphs, batch, S int) (_ *stepBuffers, err error) {
	man := g.man
	b := &stepBuffers{S: S, layers: make([][2]*ortdev.IoBinding, man.NumLayers)}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	B, D := int64(batch), int64(man.HiddenSize)
	if b.idsHost, err = b.host(g, []int64{B, int64(S)}, ortdev.Int64); err != nil {
		return nil, err
	}
	b.ids = b.idsHost
	if !g.onHost() {
		if b.ids, err = b.device(g, []int64{B, int64(S)}, ortdev.Int64); err != nil {
			return nil, err
		}
	}
	if b.seqlens, err = b.host(g, []int64{B}, ortdev.Int32); err != nil {
		return nil, err
	}
	if b.total, err = b.host(g, nil, ortdev.Int32); err != nil {
		return nil, err
	}
	if g.full == nil {
		for i := range b.hidden {
			if b.hidden[i], err = b.device(g, []int64{B, int64(S), D}, g.act()); err != nil {
				return nil, err
			}
		}
		if b.embed, err = b.bind(g.embed, map[string]*ortdev.Value{manifest.InputIDs: b.ids},
			map[string]*ortdev.Value{manifest.Hidden: b.hidden[0]}); err != nil {
			return nil, fmt.Errorf("bind embedding: %w", err)
		}
	}
	return b, nil
}

// layerBinding returns layer l's binding reading hidden[parity].
func (b *stepBuffers) layerBinding(r *runner, l, parity int) (*ortdev.IoBinding, error) {
	if lb := b.layers[l][parity]; lb != nil {
		return lb, nil
	}
	kv := r.kv.pair(l)
	lb, err := b.bind(r.g.layers[l],
		map[string]*ortdev.Value{manifest.Hidden: b.hidden[parity], manifest.PastKey: kv.k, manifest.PastValue: kv.v,
			manifest.SeqLensK: b.seqlens, manifest.TotalSeqLen: b.total},
		map[string]*ortdev.Value{manifest.HiddenOut: b.hidden[1-parity], manifest.PresentKey: kv.k, manifest.PresentValue: kv.v})
	if err != nil {
		return nil, fmt.Errorf("bind layer %d: %w", l, err)
	}
	b.layers[l][parity] = lb
	return lb, nil
}

// headBinding returns the head's binding reading hidden[parity].
func (b *stepBuffers) headBinding(r *runner, parity int) (*ortdev.IoBinding, error) {
	if hb := b.head[parity]; hb != nil {
		return hb, nil
	}
	if err := b.allocLogits(r.g, r.batch); err != nil {
		return nil, err
	}
	hb, err := b.bind(r.g.head, map[string]*ortdev.Value{manifest.Hidden: b.hidden[parity]},
		map[string]*ortdev.Value{manifest.Logits: b.logits})
	if err != nil {
		return nil, fmt.Errorf("bind head: %w", err)
	}
	b.head[parity] = hb
	return hb, nil
}

// wholeBinding returns the binding of s, a graph that embeds, runs layers
// (nil: every layer, the monolithic graph) and the head at once, with each
// layer's KV pair bound as its past and present.
func (b *stepBuffers) wholeBinding(r *runner, s *ortdev.Session, layers []int) (*ortdev.IoBinding, error) {
	if wb := b.whole[s]; wb != nil {
		return wb, nil
	}
	if err := b.allocLogits(r.g, r.batch); err != nil {
		return nil, err
	}
	if layers == nil {
		layers = allLayers(r.g.man.NumLayers)
	}
	in := map[string]*ortdev.Value{manifest.InputIDs: b.ids, manifest.SeqLensK: b.seqlens, manifest.TotalSeqLen: b.total}
	if r.g.fusion != nil {
		ro, err := r.g.fusion.graphRun(s)
		if err != nil {
			return nil, err
		}
		if ro != nil {
			b.owned = append(b.owned, ro)
			if b.seqlensDev == nil {
				if b.seqlensDev, err = b.device(r.g, []int64{int64(r.batch)}, ortdev.Int32); err != nil {
					return nil, err
				}
			}
			in[manifest.SeqLensK] = b.seqlensDev
			if b.graphRun == nil {
				b.graphRun = map[*ortdev.Session]*ortdev.RunOptions{}
			}
			b.graphRun[s] = ro
		}
	}
	out := map[string]*ortdev.Value{manifest.Logits: b.logits}
	for _, l := range layers {
		kv := r.kv.pair(l)
		in[manifest.FullPastKey(l)], in[manifest.FullPastValue(l)] = kv.k, kv.v
		out[manifest.FullPresentKey(l)], out[manifest.FullPresentValue(l)] = kv.k, kv.v
	}
	wb, err := b.bind(s, in, out)
	if err != nil {
		return nil, fmt.Errorf("bind the graph of layers %s: %w", layersKey(layers), err)
	}
	if b.whole == nil {
		b.whole = map[*ortdev.Session]*ortdev.IoBinding{}
	}
	b.whole[s] = wb
	return wb, nil
}

func (b *stepBuffers) allocLogits(g *graphs, batch int) (err error) {
	if b.logits != nil {
		return nil
	}
	shape := []int64{int64(batch), int64(b.S), int64(g.man.VocabSize)}
	if b.logitsHost, err = b.host(g, shape, ortdev.Float32); err != nil {
		return err
	}
	b.logits = b.logitsHost
	if !g.onHost() {
		b.logits, err = b.device(g, shape, ortdev.Float32)
	}
	return err
}

// readLogits brings the head's logits to the host.
func (b *stepBuffers) readLogits(r *runner) (*stepLogits, error) {
	if b.logits != b.logitsHost {
		if err := r.download(b.logits, b.logitsHost); err != nil {
			return nil, err
		}
	}
	if b.tok == nil {
		data, err := b.logitsHost.Float32s()
		if err != nil {
			return nil, err
		}
		V := r.g.man.VocabSize
		b.tok = newStepLogits(r.batch, b.S)
		for row := range b.tok.tok {
			for i := range b.tok.tok[row] {
				o := (row*b.S + i) * V
				b.tok.tok[row][i] = data[o : o+V]
			}
		}
	}
	return b.tok, nil
}

func (b *stepBuffers) bind(s *ortdev.Session, inputs, outputs map[string]*ortdev.Value) (*ortdev.IoBinding, error) {
	ib, err := s.NewIoBinding()
	if err != nil {
		return nil, err
	}
	b.owned = append(b.owned, ib)
	for name, v := range inputs {
		if err := ib.BindInput(name, v); err != nil {
			return nil, err
		}
	}
	for name, v := range outputs {
		if err := ib.BindOutput(name, v); err != nil {
			return nil, err
		}
	}
	return ib, nil
}

func (b *stepBuffers) host(g *graphs, shape []int64, t ortdev.ElementType) (*ortdev.Value, error) {
	v, err := g.hostTensor(shape, t)
	if err != nil {
		return nil, err
	}
	b.owned = append(b.owned, v)
	return v, nil
}

func (b *stepBuffers) device(g *graphs, shape []int64, t ortdev.ElementType) (*ortdev.Value, error) {
	v, err := g.tensor(shape, t)
	if err != nil {
		return nil, err
	}
	b.owned = append(b.owned, v)
	return v, nil
}

// close releases the bindings and tensors, newest first.
func (b *stepBuffers) close() {
	for i := len(b.owned) - 1; i >= 0; i-- {
		b.owned[i].Close()
	}
	b.owned = nil
}
