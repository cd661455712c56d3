// Package refmath is the plain-Go arithmetic the families' reference
// forward passes share: float64-accumulated matrix-vector products and
// attention of one query over a per-layer cache. It favours readability
// over speed.
package refmath

import (
	"fmt"
	"math"
)

// MatVec returns W·x for W in [rows, cols] layout.
func MatVec(w, x []float32, rows, cols int) []float32 {
	out := make([]float32, rows)
	for r := 0; r < rows; r++ {
		row := w[r*cols : (r+1)*cols]
		var acc float64
		for c, v := range row {
			acc += float64(v) * float64(x[c])
		}
		out[r] = float32(acc)
	}
	return out
}

// AddBias adds b to x in place (nothing when b is nil) and returns x.
func AddBias(x, b []float32) []float32 {
	for i := range b {
		x[i] += b[i]
	}
	return x
}

// Attend returns the attention output [nh*dh] of one query position q
// [nh*dh] over the cached keys and values (one [nkv*dh] entry per attended
// position): per head, softmax(q·k/sqrt(dh) + bias(head, t)) weighted sum of
// the values, query head i reading key/value head i/(nh/nkv). bias may be nil.
func Attend(q []float32, keys, values [][]float32, nh, nkv, dh int, bias func(head, t int) float64) []float32 {
	att := make([]float32, nh*dh)
	scale := 1 / math.Sqrt(float64(dh))
	scores := make([]float64, len(keys))
	for i := 0; i < nh; i++ {
		kvh := i / (nh / nkv)
		qi := q[i*dh : (i+1)*dh]
		maxScore := math.Inf(-1)
		for t, kt := range keys {
			var s float64
			for j, qv := range qi {
				s += float64(qv) * float64(kt[kvh*dh+j])
			}
			scores[t] = s * scale
			if bias != nil {
				scores[t] += bias(i, t)
			}
			maxScore = max(maxScore, scores[t])
		}
		var sum float64
		for t := range scores {
			scores[t] = math.Exp(scores[t] - maxScore)
			sum += scores[t]
		}
		out := att[i*dh : (i+1)*dh]
		for j := range out {
			var acc float64
			for t, vt := range values {
				acc += scores[t] * float64(vt[kvh*dh+j])
			}
			out[j] = float32(acc / sum)
		}
	}
	return att
}

// Argmax returns the index of the largest logit, the first one on ties: the
// greedy choice.
func Argmax(logits []float32) int {
	best := 0
	for i, x := range logits {
		if x > logits[best] {
			best = i
		}
	}
	return best
}

// Layers returns the layer list [0, n) for a nil list, else checks that
// layers are increasing indices below n.
func Layers(layers []int, n int) ([]int, bool) {
	if layers == nil {
		layers = make([]int, n)
		for i := range layers {
			layers[i] = i
		}
	}
	for i, l := range layers {
		if l < 0 || l >= n || (i > 0 && l <= layers[i-1]) {
			return nil, false
		}
	}
	return layers, true
}

// KV holds, for one layer, the keys and values of the positions that layer
// ran, in order, and those positions.
type KV struct {
	Pos  []int
	K, V [][]float32
}

// Append stores the key and value of position pos.
func (kv *KV) Append(pos int, k, v []float32) {
	kv.Pos, kv.K, kv.V = append(kv.Pos, pos), append(kv.K, k), append(kv.V, v)
}

// Caches is a reference forward pass's state: one KV per layer and the
// position of the next token. Embedded in a family's reference, it gives it
// Pos and Reset and runs its Forward.
type Caches struct {
	layers []KV
	pos    int
}

// NewCaches returns empty caches for n layers.
func NewCaches(n int) Caches { return Caches{layers: make([]KV, n)} }

// Pos is the number of tokens processed since the last Reset.
func (c *Caches) Pos() int { return c.pos }

// Reset empties the KV caches.
func (c *Caches) Reset() {
	c.pos = 0
	for i := range c.layers {
		c.layers[i] = KV{}
	}
}

// Layer returns layer l's cache.
func (c *Caches) Layer(l int) *KV { return &c.layers[l] }

// Run appends tokens at the next positions: it checks the tokens against
// the vocabulary size and the layers (nil: all; they must be increasing),
// then calls step for each token, which runs it at Pos() through the layers
// and returns its logits.
func (c *Caches) Run(tokens, layers []int, vocab int, step func(tok int, layers []int) []float32) ([][]float32, error) {
	kept, ok := Layers(layers, len(c.layers))
	if !ok {
		return nil, fmt.Errorf("reference: layers %v must be increasing indices below %d", layers, len(c.layers))
	}
	for _, t := range tokens {
		if t < 0 || t >= vocab {
			return nil, fmt.Errorf("reference: token %d is outside the vocabulary (size %d)", t, vocab)
		}
	}
	logits := make([][]float32, len(tokens))
	for j, tok := range tokens {
		logits[j] = step(tok, kept)
		c.pos++
	}
	return logits, nil
}
