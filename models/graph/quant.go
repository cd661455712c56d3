package graph

import (
	"fmt"
	"math"

	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// Int4BlockSize is the default MatMulNBits block size along K
// (manifest.DefaultInt4BlockSize).
const Int4BlockSize = manifest.DefaultInt4BlockSize

// QuantizeInt4 quantizes a [n, k] weight (Hugging Face [out, in] layout)
// for com.microsoft.MatMulNBits with bits=4, the given block_size and no
// zero points (so the default zero point 8 applies): each row is cut into
// ceil(k/block) blocks along K (the last one zero-padded); a block's scale
// is its largest-magnitude value divided by -8, as ORT's own blockwise
// quantizer does, and code = clamp(round(w/scale)+8, 0, 15). packed is
// [n, kBlocks, block/2] bytes, two codes per byte, the even K index in the
// low nibble; scales is [n, kBlocks].
func QuantizeInt4(w []float32, n, k, block int) (packed []byte, scales []float32, kBlocks int) {
	kBlocks = (k + block - 1) / block
	blob := block / 2
	packed = make([]byte, n*kBlocks*blob)
	scales = make([]float32, n*kBlocks)
	for r := 0; r < n; r++ {
		row := w[r*k : (r+1)*k]
		for b := 0; b < kBlocks; b++ {
			lo, hi := b*block, min((b+1)*block, k)
			var vmax float32
			for _, v := range row[lo:hi] {
				if abs32(v) > abs32(vmax) {
					vmax = v
				}
			}
			scale := vmax / -8
			scales[r*kBlocks+b] = scale
			var inv float32
			if scale != 0 {
				inv = 1 / scale
			}
			out := packed[(r*kBlocks+b)*blob:]
			for j := 0; j < block; j++ {
				code := byte(8) // padding and all-zero blocks dequantize to 0
				if lo+j < hi {
					q := math.Round(float64(row[lo+j]*inv)) + 8
					code = byte(min(max(q, 0), 15))
				}
				if j%2 == 0 {
					out[j/2] = code
				} else {
					out[j/2] |= code << 4
				}
			}
		}
	}
	return packed, scales, kBlocks
}

// DequantizeInt4 inverts QuantizeInt4: it returns the [n, k] weight that
// MatMulNBits multiplies by.
func DequantizeInt4(packed []byte, scales []float32, n, k, block int) []float32 {
	kBlocks := (k + block - 1) / block
	w := make([]float32, n*k)
	for r := 0; r < n; r++ {
		for c := 0; c < k; c++ {
			b, j := c/block, c%block
			byt := packed[(r*kBlocks+b)*(block/2)+j/2]
			code := byt & 0x0f
			if j%2 == 1 {
				code = byt >> 4
			}
			w[r*k+c] = float32(int(code)-8) * scales[r*kBlocks+b]
		}
	}
	return w
}

func abs32(v float32) float32 { return float32(math.Abs(float64(v))) }

// Weight dtypes of an exported package.
const (
	DTypeFP32 = "fp32"
	DTypeFP16 = "fp16"
	DTypeInt4 = "int4"
)

// CheckDType returns an error for an unknown weight dtype.
func CheckDType(dtype string) error {
	switch dtype {
	case DTypeFP32, DTypeFP16, DTypeInt4:
		return nil
	}
	return fmt.Errorf("unknown dtype %q (want fp32, fp16 or int4)", dtype)
}

// storedSource serves weights rounded the way an export of dtype stores them.
type storedSource struct {
	src   WeightSource
	dtype string
	embed string
	block int
}

// StoredWeights wraps src so that every tensor comes back exactly as the
// graphs of dtype hold it: fp16 rounds the embedding and the linear
// weights to half precision; int4 rounds the embedding to half precision
// and quantizes the linear weights (lm_head included) to 4 bits. Norm
// weights and biases stay fp32. A Reference over StoredWeights isolates
// the graphs' arithmetic from the weight rounding. (With tied embeddings
// and int4 the head really uses a 4-bit copy of the fp16 embedding; the
// wrapper returns the fp16 one, so the head differs slightly.) embed names
// the family's embedding matrix; block is the int4 block size.
func StoredWeights(src WeightSource, dtype, embed string, block int) WeightSource {
	return storedSource{src: src, dtype: dtype, embed: embed, block: block}
}

// Tensor implements WeightSource.
func (s storedSource) Tensor(name string) ([]float32, []int, error) {
	data, shape, err := s.src.Tensor(name)
	if err != nil || s.dtype == DTypeFP32 || len(shape) != 2 {
		return data, shape, err
	}
	if s.dtype == DTypeInt4 && name != s.embed {
		p, sc, _ := QuantizeInt4(data, shape[0], shape[1], s.block)
		return DequantizeInt4(p, sc, shape[0], shape[1], s.block), shape, nil
	}
	out := make([]float32, len(data))
	for i, v := range data {
		out[i] = onnx.RoundFloat16(v)
	}
	return out, shape, nil
}
