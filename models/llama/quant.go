package llama

import "github.com/strata-llm/strata/models/graph"

// Weight dtypes of an exported package.
const (
	DTypeFP32 = graph.DTypeFP32
	DTypeFP16 = graph.DTypeFP16
	DTypeInt4 = graph.DTypeInt4
)

// Int4BlockSize is the MatMulNBits block size along K.
const Int4BlockSize = graph.Int4BlockSize

// CheckDType returns an error for an unknown weight dtype.
func CheckDType(dtype string) error { return graph.CheckDType(dtype) }

// QuantizeInt4 quantizes a [n, k] weight for MatMulNBits (graph.QuantizeInt4).
func QuantizeInt4(w []float32, n, k int) (packed []byte, scales []float32, kBlocks int) {
	return graph.QuantizeInt4(w, n, k, Int4BlockSize)
}

// DequantizeInt4 inverts QuantizeInt4.
func DequantizeInt4(packed []byte, scales []float32, n, k int) []float32 {
	return graph.DequantizeInt4(packed, scales, n, k, Int4BlockSize)
}

// StoredWeights wraps src so that every tensor comes back exactly as the
// graphs of dtype hold it (graph.StoredWeights).
func StoredWeights(src WeightSource, dtype string) WeightSource {
	return graph.StoredWeights(src, dtype, EmbedName, Int4BlockSize)
}
