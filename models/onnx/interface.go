package onnx

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// ReadInterface returns the declared inputs and outputs of the model's main
// graph (names, element types and shapes) without running it, so that a
// package's graphs can be checked against its manifest before any tensor
// is allocated.
func ReadInterface(modelPath string) (inputs, outputs []ValueInfo, err error) {
	data, err := os.ReadFile(modelPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read onnx model: %w", err)
	}
	var graph []byte
	err = fields(data, func(num protowire.Number, typ protowire.Type, payload []byte, _ uint64) error {
		if num == 7 { // ModelProto.graph
			if typ != protowire.BytesType {
				return errCorrupt
			}
			graph = payload
		}
		return nil
	})
	if err == nil && graph == nil {
		err = errCorrupt
	}
	if err == nil {
		err = fields(graph, func(num protowire.Number, typ protowire.Type, payload []byte, _ uint64) error {
			if num != 11 && num != 12 { // GraphProto.input, GraphProto.output
				return nil
			}
			if typ != protowire.BytesType {
				return errCorrupt
			}
			vi, err := readValueInfo(payload)
			if num == 11 {
				inputs = append(inputs, vi)
			} else {
				outputs = append(outputs, vi)
			}
			return err
		})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("onnx model %s: %w", modelPath, err)
	}
	return inputs, outputs, nil
}

// readValueInfo decodes a ValueInfoProto of a tensor type.
func readValueInfo(b []byte) (ValueInfo, error) {
	var vi ValueInfo
	hasShape := false
	err := fields(b, func(num protowire.Number, typ protowire.Type, payload []byte, _ uint64) error {
		switch num {
		case 1: // name
			vi.Name = string(payload)
		case 2: // TypeProto
			return fields(payload, func(num protowire.Number, typ protowire.Type, payload []byte, _ uint64) error {
				if num != 1 { // TypeProto.tensor_type
					return nil
				}
				return fields(payload, func(num protowire.Number, typ protowire.Type, payload []byte, v uint64) error {
					switch num {
					case 1: // elem_type
						vi.Type = DataType(v)
					case 2: // TensorShapeProto
						hasShape = true
						return fields(payload, func(num protowire.Number, typ protowire.Type, payload []byte, _ uint64) error {
							if num != 1 { // dim
								return nil
							}
							var d Dim
							err := fields(payload, func(num protowire.Number, typ protowire.Type, payload []byte, v uint64) error {
								switch num {
								case 1:
									d.Value = int64(v)
								case 2:
									d.Param = string(payload)
								}
								return nil
							})
							vi.Dims = append(vi.Dims, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	vi.Scalar = hasShape && len(vi.Dims) == 0
	return vi, err
}
