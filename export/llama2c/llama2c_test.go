package llama2c

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/llama"
)

func testHeader(shared bool, kv int) Header {
	return Header{Dim: 32, HiddenDim: 48, Layers: 2, Heads: 4, KVHeads: kv, Vocab: 40, Shared: shared, SeqLen: 16}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shared bool
		kv     int
	}{{"shared-mha", true, 4}, {"untied-gqa", false, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			h := testHeader(tc.shared, tc.kv)
			src := llama.RandomWeights(h.Config(), 7)
			p := filepath.Join(t.TempDir(), "m.bin")
			if err := Write(p, h, src); err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(p)
			if st.Size() != h.FileSize() {
				t.Fatalf("file %d bytes, header says %d", st.Size(), h.FileSize())
			}
			f, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Header != h {
				t.Fatalf("header %+v, want %+v", f.Header, h)
			}
			cfg := f.Config()
			if cfg.TieWordEmbeddings != tc.shared || cfg.NumKVHeads != tc.kv || cfg.RopeTheta != 10000 || cfg.RMSNormEps != 1e-5 {
				t.Errorf("config %+v", cfg)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			for _, w := range cfg.Weights() {
				data, shape, err := f.Tensor(w.Name)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(shape, w.Shape) || !slices.Equal(data, src[w.Name].Data) {
					t.Fatalf("%s differs after the round trip (shape %v want %v)", w.Name, shape, w.Shape)
				}
			}
			if _, _, err := f.Tensor("lm_head.bias"); err == nil {
				t.Error("unknown tensor: no error")
			}
		})
	}
}

// ropeInterleaved rotates pairs (2i, 2i+1) of each head as llama2.c's run.c.
func ropeInterleaved(q []float32, dh, pos int) {
	for j := 0; j < len(q); j += 2 {
		hd := j % dh
		a := float64(pos) / math.Pow(10000, float64(hd)/float64(dh))
		c, s := float32(math.Cos(a)), float32(math.Sin(a))
		q[j], q[j+1] = q[j]*c-q[j+1]*s, q[j]*s+q[j+1]*c
	}
}

// ropeHalf rotates (i, i+Dh/2) of each head as transformers' rotate_half.
func ropeHalf(q []float32, dh, pos int) {
	half := dh / 2
	for h := 0; h < len(q); h += dh {
		for i := 0; i < half; i++ {
			a := float64(pos) / math.Pow(10000, float64(2*i)/float64(dh))
			c, s := float32(math.Cos(a)), float32(math.Sin(a))
			x, y := q[h+i], q[h+i+half]
			q[h+i], q[h+i+half] = x*c-y*s, y*c+x*s
		}
	}
}

func matvec(w []float32, rows, cols int, x []float32) []float32 {
	out := make([]float32, rows)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			out[r] += w[r*cols+c] * x[c]
		}
	}
	return out
}

// TestPermutationMatchesRoPE checks that a llama2.c (interleaved) projection
// with run.c's RoPE gives the same attention scores as its permuted HF form
// with rotate_half RoPE.
func TestPermutationMatchesRoPE(t *testing.T) {
	const heads, dh, cols = 2, 8, 6
	rows := heads * dh
	r := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	wqMeta, wkMeta := rnd(rows*cols), rnd(rows*cols)
	wqHF, wkHF := PermuteToHF(wqMeta, heads, rows, cols), PermuteToHF(wkMeta, heads, rows, cols)
	if !slices.Equal(PermuteFromHF(wqHF, heads, rows, cols), wqMeta) {
		t.Fatal("PermuteFromHF is not the inverse of PermuteToHF")
	}
	if slices.Equal(wqHF, wqMeta) {
		t.Fatal("permutation is the identity")
	}
	xq, xk := rnd(cols), rnd(cols)
	qm, km := matvec(wqMeta, rows, cols, xq), matvec(wkMeta, rows, cols, xk)
	qh, kh := matvec(wqHF, rows, cols, xq), matvec(wkHF, rows, cols, xk)
	ropeInterleaved(qm, dh, 5)
	ropeInterleaved(km, dh, 2)
	ropeHalf(qh, dh, 5)
	ropeHalf(kh, dh, 2)
	for h := 0; h < heads; h++ {
		var sm, sh float64
		for i := 0; i < dh; i++ {
			sm += float64(qm[h*dh+i] * km[h*dh+i])
			sh += float64(qh[h*dh+i] * kh[h*dh+i])
		}
		if math.Abs(sm-sh) > 1e-4 {
			t.Fatalf("head %d: score %g (llama2.c) vs %g (HF)", h, sm, sh)
		}
	}
}

func header(v ...int32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return b
}

func TestParseHeaderErrors(t *testing.T) {
	good := testHeader(true, 4)
	tests := []struct {
		name string
		b    []byte
		size int64
		want string
	}{
		{"short", []byte{1, 2}, 2, "shorter"},
		{"v1 magic", header(magicV1, 1, 0, 0, 0, 0, 0), 1000, "version 1/2"},
		{"zero dim", header(0, 48, 2, 4, 4, 40, 16), 1000, "dim = 0"},
		{"negative layers", header(32, 48, -2, 4, 4, 40, 16), 1000, "n_layers"},
		{"huge vocab", header(32, 48, 2, 4, 4, math.MinInt32, 16), 1000, "vocab_size"},
		{"odd head", header(30, 48, 2, 10, 10, 40, 16), 1000, "even head size"},
		{"bad gqa", header(32, 48, 2, 4, 3, 40, 16), 1000, "multiple"},
		{"truncated", header(32, 48, 2, 4, 4, 40, 16), good.FileSize() - 4, "truncated"},
		{"untied needs classifier", header(32, 48, 2, 4, 4, -40, 16), good.FileSize(), "truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHeader(tc.b, tc.size)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if h, err := ParseHeader(header(32, 48, 2, 4, 4, 40, 16), good.FileSize()); err != nil || h != good {
		t.Fatalf("good header: %+v %v", h, err)
	}
}

func TestOpenTruncated(t *testing.T) {
	h := testHeader(false, 2)
	p := filepath.Join(t.TempDir(), "m.bin")
	if err := Write(p, h, llama.RandomWeights(h.Config(), 1)); err != nil {
		t.Fatal(err)
	}
	os.Truncate(p, h.FileSize()-1)
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(p, []byte{1}, 0o644)
	if _, err := Open(p); err == nil {
		t.Fatal("1-byte file: no error")
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(header(32, 48, 2, 4, 4, 40, 16), testHeader(true, 4).FileSize())
	f.Add(header(32, 48, 2, 4, 2, -40, 16), testHeader(false, 2).FileSize())
	f.Add(header(288, 768, 6, 6, 6, 32000, 256), int64(60816028))
	f.Add([]byte{0, 0}, int64(2))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		h, err := ParseHeader(b, size)
		if err != nil {
			return
		}
		if h.FileSize() != size || h.Dim%h.Heads != 0 || h.Heads%h.KVHeads != 0 {
			t.Fatalf("inconsistent header accepted: %+v for %d bytes", h, size)
		}
		if err := h.Config().Validate(); err != nil {
			t.Fatalf("accepted header gives an invalid config: %v", err)
		}
	})
}
