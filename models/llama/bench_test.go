package llama

import "testing"

// benchConfig is a small model with realistic proportions (GQA 8/2 heads of
// 64, SwiGLU 2.75× wide); the engine's BenchmarkLayerDecodeORT times ONNX
// layers of this shape.
func benchConfig(layers int) Config {
	return Config{ModelType: "llama", NumLayers: layers, HiddenSize: 512, NumHeads: 8, NumKVHeads: 2, HeadDim: 64,
		IntermediateSize: 1408, VocabSize: 2000, MaxPositionEmbeddings: 128, RopeTheta: 10000, RMSNormEps: 1e-5, BOSID: 1}
}

const benchMaxSeq = 128

// BenchmarkReferenceDecode is one token through the plain-Go reference:
// embedding, one layer (the other is skipped) and the head.
func BenchmarkReferenceDecode(b *testing.B) {
	cfg := benchConfig(2)
	ref, err := NewReference(cfg, RandomWeights(cfg, 9))
	if err != nil {
		b.Fatal(err)
	}
	layer := []int{0}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ref.Pos() >= benchMaxSeq {
			ref.Reset()
		}
		if _, err := ref.Forward([]int{i % cfg.VocabSize}, layer); err != nil {
			b.Fatal(err)
		}
	}
}
