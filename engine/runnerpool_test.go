package engine

import "testing"

// TestRunnerPool: a finished runner serves the next batch of its size and
// layers only, one idle runner is kept per kind (a second one is closed),
// and close empties the pool.
func TestRunnerPool(t *testing.T) {
	mk := func(batch int, decode ...int) *runner {
		return &runner{batch: batch, decode: decode, kv: &kvCache{}, copies: transfers{toDevice: 3}}
	}
	var p runnerPool
	a, b, c := mk(8, 0, 2), mk(8, 0, 2), mk(1, 0, 2)
	p.put(a)
	p.put(b) // a runner of a's kind is idle: b is closed
	p.put(c)
	if len(p.idle) != 2 {
		t.Fatalf("%d idle runners, want 2", len(p.idle))
	}
	for _, tc := range []struct {
		batch int
		kept  []int
		want  *runner
	}{
		{8, []int{0, 1}, nil},
		{4, []int{0, 2}, nil},
		{8, []int{0, 2}, a},
		{8, []int{0, 2}, nil}, // taken already
		{1, []int{0, 2}, c},
	} {
		got := p.take(tc.batch, tc.kept)
		if got != tc.want {
			t.Errorf("take(%d, %v) = %p, want %p", tc.batch, tc.kept, got, tc.want)
		}
		if got != nil && got.copies != (transfers{}) {
			t.Errorf("take(%d, %v): copy counts carried over: %+v", tc.batch, tc.kept, got.copies)
		}
	}
	p.put(a)
	p.close()
	if len(p.idle) != 0 {
		t.Errorf("%d idle runners after close", len(p.idle))
	}
}
