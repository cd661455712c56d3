package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Decode converts little-endian raw bytes of dtype d into dst (len(dst)
// elements). It fails for non-float types and when the sizes disagree.
func Decode(dst []float32, raw []byte, d DType) error {
	if !d.Float() {
		return fmt.Errorf("dtype %s does not convert to float32 (want F32, F16 or BF16)", d)
	}
	if len(raw) != len(dst)*d.Size() {
		return fmt.Errorf("%d bytes of %s cannot hold %d elements", len(raw), d, len(dst))
	}
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(raw[2*i:])).Float32()
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	}
	return nil
}

// Encode appends the little-endian encoding of src as dtype d to dst.
// F16 and BF16 round to nearest even.
func Encode(dst []byte, src []float32, d DType) ([]byte, error) {
	switch d {
	case F32:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case F16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, float16.Fromfloat32(v).Bits())
		}
	case BF16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, ToBF16(v))
		}
	default:
		return dst, fmt.Errorf("cannot encode float32 data as %s (want F32, F16 or BF16)", d)
	}
	return dst, nil
}

// ToBF16 rounds a float32 to bfloat16 (nearest even; NaN stays NaN).
func ToBF16(v float32) uint16 {
	b := math.Float32bits(v)
	if v != v {
		return uint16(b>>16) | 0x40 // keep a quiet NaN
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// RoundTrip returns v as it reads back after being stored as dtype d.
func RoundTrip(v float32, d DType) float32 {
	switch d {
	case F16:
		return float16.Fromfloat32(v).Float32()
	case BF16:
		return math.Float32frombits(uint32(ToBF16(v)) << 16)
	}
	return v
}
