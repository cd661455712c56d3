package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers read by CheckExternalData, from onnx.proto, beyond those
// the writer uses.
const (
	modelTrainingInfo = 20
	modelFunctions    = 25

	trainingInit      = 1
	trainingAlgorithm = 2

	functionNode = 7

	graphSparseInitializer = 15

	attrG             = 6
	attrTensors       = 10
	attrGraphs        = 11
	attrSparseTensor  = 22
	attrSparseTensors = 23

	sparseValues  = 1
	sparseIndices = 2
)

// ortMemoryAddressTag is the location ONNX Runtime reads as "offset is a
// memory address in this process"; it must never come from a file.
const ortMemoryAddressTag = "*/_ORT_MEM_ADDR_/*"

// maxNesting bounds how deeply graphs may nest inside node attributes, so a
// hostile file cannot exhaust the stack.
const maxNesting = 64

// CheckExternalData reads the ONNX model at modelPath and checks every
// tensor that keeps its data in an external file (initializers, sparse
// initializers, node attribute tensors, and the same inside nested graphs,
// functions and training info). Each location must be a relative path
// without ".." elements that names an existing regular file which, after
// following symbolic links, lies inside the model's directory, and each
// offset and length must fit inside that file. A file that is not a valid
// protobuf, or that has no graph, is an error too. Call it before ONNX
// Runtime opens the model: ORT follows locations wherever they point.
func CheckExternalData(modelPath string) error {
	data, err := os.ReadFile(modelPath)
	if err != nil {
		return fmt.Errorf("check onnx model: %w", err)
	}
	dir := filepath.Dir(modelPath)
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("check onnx model %s: %w", modelPath, err)
	}
	c := &externalChecker{dir: dir, root: root, sizes: map[string]int64{}}
	if err := c.model(data); err != nil {
		return fmt.Errorf("onnx model %s: %w", modelPath, err)
	}
	return nil
}

// externalChecker walks a ModelProto; dir is the model's directory as
// given (ORT joins locations onto it) and root the same with symbolic
// links resolved.
type externalChecker struct {
	dir, root string
	// sizes caches the size of each external file already checked.
	sizes map[string]int64
}

// errCorrupt marks a file that is not a valid ONNX protobuf.
var errCorrupt = errors.New("not a valid ONNX protobuf (corrupted or truncated file)")

// fields calls fn for every field of the message in b, with the payload of
// a bytes field or the value of a varint or fixed field (scan).
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, payload []byte, v uint64) error) error {
	return scan(b, func(f wireField) error { return fn(f.num, f.typ, f.payload, f.v) })
}

// sub walks payload with walk when the field has the bytes wire type and
// reports a corrupt file otherwise.
func sub(typ protowire.Type, payload []byte, depth int, walk func([]byte, int) error) error {
	if typ != protowire.BytesType {
		return errCorrupt
	}
	return walk(payload, depth)
}

func (c *externalChecker) model(b []byte) error {
	graphs := 0
	err := fields(b, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
		switch num {
		case modelGraph:
			graphs++
			return sub(typ, p, 0, c.graph)
		case modelFunctions:
			return sub(typ, p, 0, c.function)
		case modelTrainingInfo:
			return sub(typ, p, 0, c.trainingInfo)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if graphs == 0 {
		return errors.New("the file holds no graph (empty or not an ONNX model)")
	}
	return nil
}

func (c *externalChecker) trainingInfo(b []byte, depth int) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
		if num == trainingInit || num == trainingAlgorithm {
			return sub(typ, p, depth, c.graph)
		}
		return nil
	})
}

func (c *externalChecker) function(b []byte, depth int) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
		if num == functionNode {
			return sub(typ, p, depth, c.node)
		}
		return nil
	})
}

func (c *externalChecker) graph(b []byte, depth int) error {
	if depth > maxNesting {
		return fmt.Errorf("graphs nest more than %d deep", maxNesting)
	}
	return fields(b, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
		switch num {
		case graphNode:
			return sub(typ, p, depth, c.node)
		case graphInitializer:
			return sub(typ, p, depth, c.tensor)
		case graphSparseInitializer:
			return sub(typ, p, depth, c.sparse)
		}
		return nil
	})
}

func (c *externalChecker) node(b []byte, depth int) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
		if num == nodeAttribute {
			return sub(typ, p, depth, c.attribute)
		}
		return nil
	})
}

func (c *externalChecker) attribute(b []byte, depth int) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
		switch num {
		case attrT, attrTensors:
			return sub(typ, p, depth, c.tensor)
		case attrG, attrGraphs:
			return sub(typ, p, depth+1, c.graph)
		case attrSparseTensor, attrSparseTensors:
			return sub(typ, p, depth, c.sparse)
		}
		return nil
	})
}

func (c *externalChecker) sparse(b []byte, depth int) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
		if num == sparseValues || num == sparseIndices {
			return sub(typ, p, depth, c.tensor)
		}
		return nil
	})
}

// tensor checks one TensorProto's external data references.
func (c *externalChecker) tensor(b []byte, _ int) error {
	var name string
	var external bool
	var entries [][2]string
	err := fields(b, func(num protowire.Number, typ protowire.Type, p []byte, v uint64) error {
		switch num {
		case tensorName:
			if typ != protowire.BytesType {
				return errCorrupt
			}
			name = string(p)
		case tensorDataLocation:
			if typ != protowire.VarintType {
				return errCorrupt
			}
			external = v == dataLocationExternal
		case tensorExternalData:
			if typ != protowire.BytesType {
				return errCorrupt
			}
			var kv [2]string
			err := fields(p, func(num protowire.Number, typ protowire.Type, p []byte, _ uint64) error {
				if num == entryKey || num == entryValue {
					if typ != protowire.BytesType {
						return errCorrupt
					}
					kv[num-entryKey] = string(p)
				}
				return nil
			})
			if err != nil {
				return err
			}
			entries = append(entries, kv)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := c.externalEntries(entries, external); err != nil {
		return fmt.Errorf("tensor %q: %w", name, err)
	}
	return nil
}

// externalEntries checks the key/value pairs of one tensor's external_data.
func (c *externalChecker) externalEntries(entries [][2]string, external bool) error {
	var location string
	offset, length := int64(0), int64(-1)
	for _, kv := range entries {
		switch kv[0] {
		case "location":
			if location != "" {
				return errors.New("external data has two locations")
			}
			if kv[1] == "" {
				return errors.New("external data location is empty")
			}
			location = kv[1]
		case "offset", "length":
			n, err := strconv.ParseInt(kv[1], 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("external data %s %q is not a non-negative integer", kv[0], kv[1])
			}
			if kv[0] == "offset" {
				offset = n
			} else {
				length = n
			}
		}
	}
	if location == "" {
		if external {
			return errors.New("data is marked external but has no location")
		}
		return nil
	}
	size, err := c.resolve(location)
	if err != nil {
		return err
	}
	if offset > size || (length >= 0 && length > size-offset) {
		return fmt.Errorf("external data offset %d length %d lies beyond the end of %s (%d bytes)", offset, length, location, size)
	}
	return nil
}

// resolve checks one location and returns the size of the file it names.
func (c *externalChecker) resolve(location string) (int64, error) {
	if size, ok := c.sizes[location]; ok {
		return size, nil
	}
	if err := checkLocation(location); err != nil {
		return 0, err
	}
	full, err := filepath.EvalSymlinks(filepath.Join(c.dir, location))
	if err != nil {
		return 0, fmt.Errorf("external data file %q: %w", location, err)
	}
	rel, err := filepath.Rel(c.root, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return 0, fmt.Errorf("external data location %q resolves outside the model directory", location)
	}
	st, err := os.Stat(full)
	if err != nil {
		return 0, fmt.Errorf("external data file %q: %w", location, err)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("external data location %q is not a regular file", location)
	}
	c.sizes[location] = st.Size()
	return st.Size(), nil
}

// checkLocation rejects locations that are absolute, contain a ".."
// element, backslashes, drive letters or NUL bytes, or are ORT's in-memory
// address tag.
func checkLocation(location string) error {
	if strings.HasPrefix(location, ortMemoryAddressTag) {
		return fmt.Errorf("external data location %q is ONNX Runtime's in-memory address tag", location)
	}
	if filepath.IsAbs(location) || strings.HasPrefix(location, "/") || strings.ContainsAny(location, "\\:\x00") {
		return fmt.Errorf("external data location %q must be a path relative to the model directory", location)
	}
	for _, elem := range strings.Split(location, "/") {
		if elem == ".." {
			return fmt.Errorf("external data location %q leaves the model directory", location)
		}
	}
	return nil
}
