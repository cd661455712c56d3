package engine

import "sync"

// runnerPool keeps the runner of a finished batch for the next batch of the
// same size and layers. Where fused decode steps are recorded as CUDA
// graphs, a graph replays the device addresses of the runner it was
// recorded with: reusing the runner reuses its graph, so a graph is
// recorded once per batch size and schedule rather than once per request
// (docs/design.md, "CUDA graphs"). It holds at most one idle runner per
// batch size and layer set, and their KV caches stay allocated until the
// Model is closed.
type runnerPool struct {
	mu   sync.Mutex
	idle map[string]*runner
}

// poolKey names a runner's batch size and the layers that keep KV.
func poolKey(batch int, kept []int) string {
	return layersKey([]int{batch}) + "/" + layersKey(kept)
}

// take returns an idle runner for batch rows decoding through kept, or nil.
func (p *runnerPool) take(batch int, kept []int) *runner {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := poolKey(batch, kept)
	r := p.idle[key]
	delete(p.idle, key)
	if r != nil {
		r.copies = transfers{}
	}
	return r
}

// put keeps r for a later batch, or closes it when a runner of its kind is
// kept already.
func (p *runnerPool) put(r *runner) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := poolKey(r.batch, r.decode)
	if p.idle == nil {
		p.idle = map[string]*runner{}
	}
	if p.idle[key] != nil {
		r.close()
		return
	}
	p.idle[key] = r
}

// close closes every idle runner.
func (p *runnerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, r := range p.idle {
		r.close()
		delete(p.idle, key)
	}
}

// doneWith ends a batch's use of r: back to the pool where the Model keeps
// runners, else closed.
func (m *Model) doneWith(r *runner) {
	if m.pool != nil {
		m.pool.put(r)
		return
	}
	r.close()
}
