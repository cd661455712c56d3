package onnx

import (
	"encoding/binary"
	"math"

	"github.com/x448/float16"
)

// Float32Bytes encodes v as little-endian float32 bytes.
func Float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// Float16Bytes converts v to IEEE half precision (round to nearest even,
// overflow to ±Inf) and encodes it little endian.
func Float16Bytes(v []float32) []byte {
	b := make([]byte, 2*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(float16.Fromfloat32(f)))
	}
	return b
}

// Float16ToFloat32 decodes little-endian half-precision bytes.
func Float16ToFloat32(b []byte) []float32 {
	v := make([]float32, len(b)/2)
	for i := range v {
		v[i] = float16.Frombits(binary.LittleEndian.Uint16(b[2*i:])).Float32()
	}
	return v
}

// RoundFloat16 returns v rounded to the nearest half-precision value, the
// value an fp16 initializer holds after it is cast back to float32.
func RoundFloat16(v float32) float32 {
	return float16.Fromfloat32(v).Float32()
}

// Int32Bytes encodes v as little-endian int32 bytes.
func Int32Bytes(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// Int64Bytes encodes v as little-endian int64 bytes.
func Int64Bytes(v []int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}
