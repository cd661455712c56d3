package placement

import (
	"fmt"

	"github.com/strata-llm/strata/engine/ortlib/kernels"
	"github.com/strata-llm/strata/models/onnx"
)

// Types returns the element type of every value of g: its inputs and
// initializers as declared, and each node's outputs by the op's rule (Cast
// takes its 'to', Shape gives int64, MatMulNBits and GroupQueryAttention
// the type of their first input, …). A node whose op has no rule, an input
// defined by no graph input, initializer or earlier node, or a graph
// output whose declared type differs from the inferred one is an error: the
// check never passes a node whose types it does not know.
func Types(g *onnx.Graph) (map[string]onnx.DataType, error) {
	types := map[string]onnx.DataType{}
	for _, v := range g.Inputs {
		types[v.Name] = v.Type
	}
	for _, t := range g.Initializers {
		types[t.Name] = t.Type
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		spec, ok := ops[opKey(n.Domain, n.OpType)]
		if !ok {
			return nil, fmt.Errorf("node %q: op %s has no type rule (the placement check knows the ops strata exports)", n.Name, opKey(n.Domain, n.OpType))
		}
		in, err := inputTypes(n, types)
		if err != nil {
			return nil, err
		}
		if len(n.Inputs) > len(spec.inputs) && !spec.variadicIn {
			return nil, fmt.Errorf("node %q (%s): %d inputs, the op has %d", n.Name, n.OpType, len(n.Inputs), len(spec.inputs))
		}
		if len(n.Outputs) > len(spec.outputs) && !spec.variadicOut {
			return nil, fmt.Errorf("node %q (%s): %d outputs, the op has %d", n.Name, n.OpType, len(n.Outputs), len(spec.outputs))
		}
		out, err := spec.infer(n, in)
		if err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
		}
		for j, name := range n.Outputs {
			if name != "" {
				types[name] = out[j]
			}
		}
	}
	for _, v := range g.Outputs {
		got, ok := types[v.Name]
		if !ok {
			return nil, fmt.Errorf("graph output %q is never computed", v.Name)
		}
		if got != v.Type {
			return nil, fmt.Errorf("graph output %q is declared %s but computed as %s",
				v.Name, kernels.TypeName(v.Type), kernels.TypeName(got))
		}
	}
	return types, nil
}

// inputTypes returns the element types of n's inputs, 0 for an omitted
// optional one.
func inputTypes(n *onnx.Node, types map[string]onnx.DataType) ([]onnx.DataType, error) {
	in := make([]onnx.DataType, len(n.Inputs))
	for i, name := range n.Inputs {
		if name == "" {
			continue
		}
		t, ok := types[name]
		if !ok {
			return nil, fmt.Errorf("node %q (%s): input %q is not defined before it", n.Name, n.OpType, name)
		}
		in[i] = t
	}
	return in, nil
}
