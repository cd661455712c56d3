package engine

import (
	"fmt"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/models/manifest"
)

// kvCache is the KV cache of one batch: a pair of buffers per layer that
// keeps its cache, one scratch pair shared by the others (docs/design.md,
// "The KV cache").
type kvCache struct {
	batch  int
	layers []*kvPair // per layer: its own pair, or the scratch pair
	own    []*kvPair // the pairs allocated here (own pairs and the scratch), to close
	bytes  int64
}

// kvPair is one layer's key and value buffers.
type kvPair struct {
	k, v *ortdev.Value
}

// kvPairBytes is the size of one layer's pair for a batch of one row.
func kvPairBytes(man *manifest.Manifest) int64 {
	return 2 * int64(activationType(man).Size()) * int64(man.NumKVHeads) * int64(man.MaxSeqLen) * int64(man.HeadDim)
}

// kvCacheBytes is what newKVCache allocates for a batch in which keep
// layers keep their cache: one pair per such layer per row, plus the
// batch-wide scratch pair when some layer does not keep its cache. It is
// the count made before allocating (memory checks, Model.KVBytes);
// kvCache.bytes sums what alloc allocated, and TestKVBytesShrinkWithSpeedup
// checks that the two agree.
func kvCacheBytes(man *manifest.Manifest, batch, keep int) int64 {
	pairs := int64(keep)
	if keep < man.NumLayers {
		pairs++
	}
	return int64(batch) * pairs * kvPairBytes(man)
}

// newKVCache allocates the cache of a batch; keep[l] says whether layer l
// keeps its cache. Device buffers are cleared once here: an uninitialised
// NaN pattern in a slot no row attends to could still reach a kernel that
// multiplies it by zero.
func newKVCache(g *graphs, batch int, keep []bool) (_ *kvCache, err error) {
	man := g.man
	c := &kvCache{batch: batch, layers: make([]*kvPair, man.NumLayers)}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	var scratch *kvPair
	for l := range c.layers {
		if keep[l] {
			if c.layers[l], err = c.alloc(g); err != nil {
				return nil, err
			}
			continue
		}
		if scratch == nil {
			if scratch, err = c.alloc(g); err != nil {
				return nil, err
			}
		}
		c.layers[l] = scratch
	}
	if !g.onHost() {
		if err := c.clear(g); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// alloc allocates one batch-wide pair.
func (c *kvCache) alloc(g *graphs) (*kvPair, error) {
	man := g.man
	shape := []int64{int64(c.batch), int64(man.NumKVHeads), int64(man.MaxSeqLen), int64(man.HeadDim)}
	k, err := g.tensor(shape, g.act())
	if err != nil {
		return nil, fmt.Errorf("allocate KV cache: %w", err)
	}
	v, err := g.tensor(shape, g.act())
	if err != nil {
		k.Close()
		return nil, fmt.Errorf("allocate KV cache: %w", err)
	}
	p := &kvPair{k, v}
	c.own = append(c.own, p)
	c.bytes += 2 * int64(k.NumElements()) * int64(g.act().Size())
	return p, nil
}

// clear zeroes device buffers with one copy from a zeroed host tensor.
func (c *kvCache) clear(g *graphs) error {
	zeros, err := g.hostTensor(c.own[0].k.Shape(), g.act())
	if err != nil {
		return fmt.Errorf("clear KV cache: %w", err)
	}
	defer zeros.Close()
	var src, dst []*ortdev.Value
	for _, p := range c.own {
		src = append(src, zeros, zeros)
		dst = append(dst, p.k, p.v)
	}
	if err := g.env.CopyTensors(src, dst); err != nil {
		return &DeviceError{string(g.dev), "clear KV cache", err}
	}
	return nil
}

// rowView returns a one-row cache viewing row b of every buffer (no copy),
// or nil when the buffers are not host memory and cannot be viewed.
func (c *kvCache) rowView(b int) (_ *kvCache, err error) {
	if len(c.own) == 0 || !c.own[0].k.IsHost() {
		return nil, nil
	}
	shape := c.own[0].k.Shape()
	shape[0] = 1
	stride := int(shape[1] * shape[2] * shape[3])
	v := &kvCache{batch: 1, layers: make([]*kvPair, len(c.layers))}
	defer func() {
		if err != nil {
			v.close()
		}
	}()
	views := map[*kvPair]*kvPair{}
	for l, p := range c.layers {
		if views[p] == nil {
			k, err := p.k.HostView(b*stride, shape)
			if err != nil {
				return nil, err
			}
			val, err := p.v.HostView(b*stride, shape)
			if err != nil {
				k.Close()
				return nil, err
			}
			views[p] = &kvPair{k, val}
			v.own = append(v.own, views[p])
		}
		v.layers[l] = views[p]
	}
	return v, nil
}

// pair returns the buffers layer l reads and writes.
func (c *kvCache) pair(l int) *kvPair { return c.layers[l] }

// close releases the buffers. It is idempotent.
func (c *kvCache) close() {
	for _, p := range c.own {
		p.k.Close()
		p.v.Close()
	}
	c.own = nil
}
