package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawFile builds a safetensors file from a literal header and data bytes.
func rawFile(headerLen uint64, header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, headerLen)
	out = append(out, header...)
	return append(out, data...)
}

// st builds a well-formed length prefix for header.
func st(header string, data []byte) []byte { return rawFile(uint64(len(header)), header, data) }

func writeRaw(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	vals := []float32{0, 1, -2.5, 0.1, 3.14159, -1e-3, 65504, 1e-8}
	for _, dt := range []DType{F32, F16, BF16} {
		t.Run(string(dt), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "m.safetensors")
			err := WriteFile(p, []Tensor{
				{Name: "a", DType: dt, Shape: []int{2, 4}, Data: vals},
				{Name: "b", DType: dt, Shape: []int{3}, Data: []float32{7, 8, 9}},
				{Name: "s", DType: dt, Shape: nil, Data: []float32{42}},
			}, map[string]string{"format": "pt"})
			if err != nil {
				t.Fatal(err)
			}
			f, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := f.Header().Metadata["format"]; got != "pt" {
				t.Errorf("metadata format = %q", got)
			}
			if got := strings.Join(f.Names(), ","); got != "a,b,s" {
				t.Errorf("names = %s", got)
			}
			if f.Header().DataStart%8 != 0 {
				t.Errorf("data section at %d is not 8-byte aligned", f.Header().DataStart)
			}
			data, shape, err := f.Tensor("a")
			if err != nil {
				t.Fatal(err)
			}
			if len(shape) != 2 || shape[0] != 2 || shape[1] != 4 {
				t.Fatalf("shape = %v", shape)
			}
			for i, v := range vals {
				want := RoundTrip(v, dt)
				if data[i] != want {
					t.Errorf("a[%d] = %g, want %g", i, data[i], want)
				}
				if rel := math.Abs(float64(data[i]-v)) / math.Max(1e-6, math.Abs(float64(v))); dt == F32 && rel != 0 || rel > 1e-2 && v > 1e-4 {
					t.Errorf("a[%d] = %g too far from %g", i, data[i], v)
				}
			}
			s, shape, err := f.Tensor("s")
			if err != nil || len(shape) != 0 || s[0] != 42 {
				t.Errorf("scalar = %v %v %v", s, shape, err)
			}
			if _, _, err := f.Tensor("missing"); err == nil {
				t.Error("missing tensor: no error")
			}
			f.Close()
			if _, _, err := f.Tensor("a"); err == nil {
				t.Error("read after close: no error")
			}
		})
	}
}

func TestToBF16Rounding(t *testing.T) {
	tests := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1.0 exact
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f80c000, 0x3f81}, // above half
		{0x7f800000, 0x7f80}, // +Inf
		{0xff800000, 0xff80}, // -Inf
	}
	for _, tc := range tests {
		if got := ToBF16(math.Float32frombits(tc.in)); got != tc.want {
			t.Errorf("ToBF16(%#x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	if v := math.Float32frombits(uint32(ToBF16(float32(math.NaN()))) << 16); v == v {
		t.Error("NaN did not stay NaN")
	}
}

func TestOpenErrors(t *testing.T) {
	okHeader := `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"short", []byte{1, 2, 3}, "too short"},
		{"header beyond file", rawFile(1000, okHeader, make([]byte, 8)), "beyond the file size"},
		{"absurd header", rawFile(1<<62, okHeader, nil), "limit"},
		{"bad json", rawFile(5, "{nope", nil), "header JSON"},
		{"not object", rawFile(2, "[]", nil), "header JSON"},
		{"offsets outside", rawFile(uint64(len(okHeader)), okHeader, make([]byte, 4)), "outside"},
		{"shape mismatch", st(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}} `, make([]byte, 8)), "needs 12 bytes"},
		{"reversed offsets", st(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}} `, make([]byte, 8)), "outside"},
		{"negative dim", st(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}} `, make([]byte, 8)), "invalid dimension"},
		{"huge shape", st(`{"w":{"dtype":"F32","shape":[2000000000,2000000000,2000000000],"data_offsets":[0,8]}}  `, make([]byte, 8)), "too large"},
		{"unknown dtype", st(`{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}  `, make([]byte, 8)), "unknown dtype"},
		{"one offset", st(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, make([]byte, 8)), "2 numbers"},
		{"bad metadata", st(`{"__metadata__":[1]}`, nil), "__metadata__"},
		{"aliased tensors", st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)), `overlap tensor "a"`},
		{"overlapping tensors", st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), "overlap"},
		{"gap between tensors", st(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12)), "4 unused bytes"},
		{"trailing garbage", st(okHeader, make([]byte, 13)), "5 bytes of trailing data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(writeRaw(t, tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestNonFloatTensor(t *testing.T) {
	h := `{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`
	f, err := Open(writeRaw(t, rawFile(uint64(len(h)), h, make([]byte, 8))))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := f.Tensor("ids"); err == nil || !strings.Contains(err.Error(), "does not convert") {
		t.Fatalf("err = %v", err)
	}
	raw, info, err := f.Raw("ids")
	if err != nil || len(raw) != 8 || info.DType != I64 {
		t.Fatalf("raw = %v %v %v", raw, info, err)
	}
}

func TestWriterErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(filepath.Join(dir, "a"), []Spec{{Name: "x", DType: I64}}, nil); err == nil {
		t.Error("I64 accepted")
	}
	if _, err := Create(filepath.Join(dir, "b"), []Spec{{Name: "x", DType: F32}, {Name: "x", DType: F32}}, nil); err == nil {
		t.Error("duplicate accepted")
	}
	w, err := Create(filepath.Join(dir, "c"), []Spec{{Name: "x", DType: F32, Shape: []int{2}}, {Name: "y", DType: F32, Shape: []int{1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write("y", []float32{1}); err == nil {
		t.Error("out-of-order write accepted")
	}
	if err := w.Close(); err == nil {
		t.Error("close after failed write: no error")
	}
	w, _ = Create(filepath.Join(dir, "d"), []Spec{{Name: "x", DType: F32, Shape: []int{2}}}, nil)
	if err := w.Write("x", []float32{1}); err == nil {
		t.Error("wrong length accepted")
	}
	w, _ = Create(filepath.Join(dir, "e"), []Spec{{Name: "x", DType: F32, Shape: []int{1}}}, nil)
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "0 of 1") {
		t.Errorf("missing tensor: %v", err)
	}
}

func TestCheckpointSharded(t *testing.T) {
	dir := t.TempDir()
	shards := map[string][]Tensor{
		"model-00001-of-00002.safetensors": {{Name: "a", DType: BF16, Shape: []int{2}, Data: []float32{1, 2}}},
		"model-00002-of-00002.safetensors": {{Name: "b", DType: F16, Shape: []int{1, 1}, Data: []float32{3}}},
	}
	idx := Index{WeightMap: map[string]string{}}
	for file, ts := range shards {
		if err := WriteFile(filepath.Join(dir, file), ts, nil); err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			idx.WeightMap[x.Name] = file
		}
	}
	writeIndex := func(idx Index) {
		b, _ := json.Marshal(idx)
		if err := os.WriteFile(filepath.Join(dir, IndexFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeIndex(idx)
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Names(), ","); got != "a,b" {
		t.Errorf("names = %s", got)
	}
	b, shape, err := c.Tensor("b")
	if err != nil || b[0] != 3 || len(shape) != 2 {
		t.Errorf("b = %v %v %v", b, shape, err)
	}
	if info, ok := c.Info("a"); !ok || info.DType != BF16 {
		t.Errorf("info a = %v %v", info, ok)
	}
	if _, _, err := c.Tensor("zz"); err == nil {
		t.Error("missing tensor: no error")
	}
	c.Close()

	bad := []struct {
		name string
		wm   map[string]string
		want string
	}{
		{"escaping shard", map[string]string{"a": "../x.safetensors"}, "plain file name"},
		{"wrong shard", map[string]string{"a": "model-00002-of-00002.safetensors"}, "not in shard"},
		{"missing shard", map[string]string{"a": "nope.safetensors"}, "no such file"},
		{"empty", map[string]string{}, "empty weight_map"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			writeIndex(Index{WeightMap: tc.wm})
			_, err := OpenCheckpoint(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	os.Remove(filepath.Join(dir, IndexFile))
	if _, err := OpenCheckpoint(dir); err == nil || !strings.Contains(err.Error(), "no model.safetensors.index.json") {
		t.Errorf("two shards without index: %v", err)
	}
}

func TestCheckpointSingle(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenCheckpoint(dir); err == nil {
		t.Error("empty dir: no error")
	}
	p := filepath.Join(dir, "model.safetensors")
	if err := WriteFile(p, []Tensor{{Name: "w", DType: F32, Shape: []int{1}, Data: []float32{5}}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, p} {
		c, err := OpenCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		if v, _, err := c.Tensor("w"); err != nil || v[0] != 5 {
			t.Errorf("%s: w = %v %v", path, v, err)
		}
		c.Close()
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(st(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(rawFile(2, `{}`, nil))
	f.Add(st(`{"__metadata__":{"format":"pt"}}        `, nil))
	f.Add(rawFile(1<<40, `{}`, nil))
	f.Add(st(`{"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}  `, make([]byte, 8)))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b, int64(len(b)))
		if err != nil {
			return
		}
		end := int64(0)
		for _, name := range h.Names() {
			info := h.Tensors[name]
			if info.Begin != end {
				t.Fatalf("tensor %q: begins at %d, the previous tensor ends at %d", name, info.Begin, end)
			}
			end = info.End
		}
		if h.DataStart+end != int64(len(b)) {
			t.Fatalf("data section of %d bytes, tensors end at %d", int64(len(b))-h.DataStart, end)
		}
		for name, info := range h.Tensors {
			if info.Begin < 0 || info.End < info.Begin || h.DataStart+info.End > int64(len(b)) {
				t.Fatalf("tensor %q: offsets [%d,%d] escape %d bytes", name, info.Begin, info.End, len(b))
			}
			if info.NumElements()*int64(info.DType.Size()) != info.End-info.Begin {
				t.Fatalf("tensor %q: size mismatch accepted", name)
			}
		}
	})
}

func TestConcurrentReads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.safetensors")
	var ts []Tensor
	for i := 0; i < 8; i++ {
		data := make([]float32, 4096)
		for j := range data {
			data[j] = float32(i*10000 + j)
		}
		ts = append(ts, Tensor{Name: string(rune('a' + i)), DType: F32, Shape: []int{64, 64}, Data: data})
	}
	if err := WriteFile(p, ts, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		go func(g int) {
			i := g % len(ts)
			data, _, err := f.Tensor(ts[i].Name)
			if err == nil && (data[0] != float32(i*10000) || data[4095] != float32(i*10000+4095)) {
				err = fmt.Errorf("tensor %s read wrong values", ts[i].Name)
			}
			errs <- err
		}(g)
	}
	for g := 0; g < 32; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
