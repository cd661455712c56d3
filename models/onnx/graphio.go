package onnx

import (
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// GraphIO reads the declared inputs and outputs of the main graph of the
// ONNX model at path, without ONNX Runtime: names, element types and shapes
// (a symbolic dimension has Param set, an absent one neither). A file that
// is not a valid ONNX protobuf is an error naming it.
func GraphIO(path string) (inputs, outputs []ValueInfo, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read onnx model: %w", err)
	}
	graphs := 0
	err = fields(data, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
		if num != modelGraph {
			return nil
		}
		graphs++
		if typ != protowire.BytesType {
			return errCorrupt
		}
		return fields(p, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
			if num != graphInput && num != graphOutput {
				return nil
			}
			if typ != protowire.BytesType {
				return errCorrupt
			}
			v, err := valueInfo(p)
			if err != nil {
				return err
			}
			if num == graphInput {
				inputs = append(inputs, v)
			} else {
				outputs = append(outputs, v)
			}
			return nil
		})
	})
	if err == nil && graphs == 0 {
		err = errors.New("the file holds no graph (empty or not an ONNX model)")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("onnx model %s: %w", path, err)
	}
	return inputs, outputs, nil
}

// valueInfo decodes a ValueInfoProto of a tensor.
func valueInfo(b []byte) (ValueInfo, error) {
	var v ValueInfo
	rank := -1
	err := fields(b, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
		switch num {
		case valueInfoName:
			v.Name = string(p)
		case valueInfoType:
			return fields(p, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
				if num != typeTensorType {
					return nil
				}
				return fields(p, func(num protowire.Number, typ protowire.Type, p []byte, x uint64) error {
					switch num {
					case tensorElemType:
						v.Type = DataType(x)
					case tensorTypeShape:
						rank = 0
						return fields(p, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
							if num != shapeDim {
								return nil
							}
							rank++
							var d Dim
							err := fields(p, func(num protowire.Number, typ protowire.Type, p []byte, x uint64) error {
								switch num {
								case dimValue:
									d.Value = int64(x)
								case dimParam:
									d.Param = string(p)
								}
								return nil
							})
							v.Dims = append(v.Dims, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	v.Scalar = rank == 0
	return v, err
}

// Shape returns the dimensions, -1 for a symbolic or unknown one.
func (v ValueInfo) Shape() []int64 {
	out := make([]int64, len(v.Dims))
	for i, d := range v.Dims {
		out[i] = d.Value
		if d.Param != "" || d.Value <= 0 {
			out[i] = -1
		}
	}
	return out
}
