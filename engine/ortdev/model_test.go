package ortdev

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// A tiny ONNX model, hand-encoded as protobuf so the test depends on nothing
// but the wire format (field numbers from onnx.proto):
//
//	hidden_out = MatMul(hidden, W)   hidden, hidden_out: float [1,4]; W: [4,4] initializer
//	state_out  = Add(state, hidden)  state, state_out:   float [1,4]
//
// hidden_out can feed hidden again (ping-pong between two buffers), and
// state/state_out can be the same buffer (accumulated in place, like a KV
// cache bound as past and present).

const modelDim = 4

// testWeights is W, row-major [modelDim][modelDim].
func testWeights() []float32 {
	w := make([]float32, modelDim*modelDim)
	for i := range w {
		w[i] = float32(i%5)*0.25 - 0.5
	}
	return w
}

func field(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func str(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func varint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// valueInfo encodes a ValueInfoProto for a float tensor of fixed shape.
func valueInfo(name string, shape ...int64) []byte {
	var dims []byte
	for _, d := range shape {
		dims = field(dims, 1, varint(nil, 1, uint64(d))) // TensorShapeProto.dim{dim_value}
	}
	tensorType := varint(nil, 1, 1)         // elem_type FLOAT
	tensorType = field(tensorType, 2, dims) // shape
	typeProto := field(nil, 1, tensorType)  // TypeProto.tensor_type
	b := str(nil, 1, name)
	return field(b, 2, typeProto)
}

func node(op string, out string, in ...string) []byte {
	var b []byte
	for _, s := range in {
		b = str(b, 1, s)
	}
	b = str(b, 2, out)
	b = str(b, 3, op+"_"+out)
	return str(b, 4, op)
}

func floatTensor(name string, data []float32, shape ...int64) []byte {
	var b []byte
	for _, d := range shape {
		b = varint(b, 1, uint64(d)) // dims
	}
	b = varint(b, 2, 1) // data_type FLOAT
	b = str(b, 8, name)
	raw := make([]byte, 0, 4*len(data))
	for _, f := range data {
		raw = protowire.AppendFixed32(raw, math.Float32bits(f))
	}
	b = protowire.AppendTag(b, 9, protowire.BytesType) // raw_data
	return protowire.AppendBytes(b, raw)
}

// testModel encodes the ModelProto.
func testModel() []byte {
	var g []byte
	g = field(g, 1, node("MatMul", "hidden_out", "hidden", "W"))
	g = field(g, 1, node("Add", "state_out", "state", "hidden"))
	g = str(g, 2, "ortdev_test")
	g = field(g, 5, floatTensor("W", testWeights(), modelDim, modelDim))
	g = field(g, 11, valueInfo("hidden", 1, modelDim))
	g = field(g, 11, valueInfo("state", 1, modelDim))
	g = field(g, 12, valueInfo("hidden_out", 1, modelDim))
	g = field(g, 12, valueInfo("state_out", 1, modelDim))

	m := varint(nil, 1, 8) // ir_version
	m = str(m, 2, "strata-ortdev-test")
	m = field(m, 7, g)
	return field(m, 8, varint(nil, 2, 17)) // opset_import {domain "", version 17}
}

// writeTestModel writes the model into a temporary directory.
func writeTestModel(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.onnx")
	if err := os.WriteFile(path, testModel(), 0o644); err != nil {
		t.Fatalf("write model: %v", err)
	}
	return path
}

// refMatVec is Go's reference for hidden·W.
func refMatVec(h []float32) []float32 {
	w := testWeights()
	out := make([]float32, modelDim)
	for j := 0; j < modelDim; j++ {
		var s float32
		for i := 0; i < modelDim; i++ {
			s += h[i] * w[i*modelDim+j]
		}
		out[j] = s
	}
	return out
}
