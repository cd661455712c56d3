package refmath

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestAttend(t *testing.T) {
	// One head of size 1, two keys: scores q·k/1 = 0 and 0, so equal weights
	// without a bias; a bias of ln 3 on key 1 weights it 3:1.
	q := []float32{1}
	keys := [][]float32{{0}, {0}}
	values := [][]float32{{2}, {6}}
	if got := Attend(q, keys, values, 1, 1, 1, nil); got[0] != 4 {
		t.Errorf("unbiased attention %v, want 4", got)
	}
	bias := func(_, tpos int) float64 { return float64(tpos) * math.Log(3) }
	if got := Attend(q, keys, values, 1, 1, 1, bias); math.Abs(float64(got[0])-5) > 1e-6 {
		t.Errorf("biased attention %v, want 5", got)
	}
	// Two query heads share one key/value head.
	got := Attend([]float32{1, 1}, [][]float32{{1}}, [][]float32{{7}}, 2, 1, 1, nil)
	if !slices.Equal(got, []float32{7, 7}) {
		t.Errorf("grouped attention %v", got)
	}
}

func TestLayers(t *testing.T) {
	if l, ok := Layers(nil, 3); !ok || !slices.Equal(l, []int{0, 1, 2}) {
		t.Errorf("nil: %v %v", l, ok)
	}
	for _, bad := range [][]int{{1, 1}, {2, 0}, {-1}, {3}} {
		if _, ok := Layers(bad, 3); ok {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestCachesRun(t *testing.T) {
	c := NewCaches(2)
	var seen []int
	step := func(tok int, layers []int) []float32 {
		c.Layer(layers[0]).Append(c.Pos(), []float32{float32(tok)}, nil)
		seen = append(seen, c.Pos())
		return []float32{float32(tok)}
	}
	if _, err := c.Run([]int{4, 5}, []int{1}, 10, step); err != nil {
		t.Fatal(err)
	}
	if c.Pos() != 2 || !slices.Equal(seen, []int{0, 1}) || !slices.Equal(c.Layer(1).Pos, []int{0, 1}) || len(c.Layer(0).Pos) != 0 {
		t.Errorf("pos %d, steps at %v, layer 1 %v", c.Pos(), seen, c.Layer(1).Pos)
	}
	for _, tc := range []struct {
		tokens, layers []int
		err            string
	}{{[]int{10}, nil, "vocabulary"}, {[]int{1}, []int{2}, "layers"}} {
		if _, err := c.Run(tc.tokens, tc.layers, 10, step); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v %v: %v", tc.tokens, tc.layers, err)
		}
	}
	c.Reset()
	if c.Pos() != 0 || len(c.Layer(1).Pos) != 0 {
		t.Error("Reset kept state")
	}
}
