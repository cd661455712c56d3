// Package placement checks, without a GPU and without ONNX Runtime, that
// every node of a strata package has a kernel on a device: it reads the
// package's graphs (models/onnx), infers the element type of every value,
// and looks each node up in the kernel table of the ONNX Runtime build the
// device runs (engine/ortlib/kernels), by ONNX Runtime's own rules: the op's
// schema version at the model's opset must fall in a registered kernel's
// versions, and each type the kernel constrains must allow the node's
// types (docs/design.md, Placement check).
package placement

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-llm/strata/engine/ortlib"
	"github.com/strata-llm/strata/engine/ortlib/kernels"
	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// Miss is a node without a kernel on the device.
type Miss struct {
	// Graph is the graph file's name within the package.
	Graph  string
	Node   string
	Domain string // "ai.onnx" or "com.microsoft"
	Op     string
	// Opset is the version of the op's schema the node uses (0 when the
	// model's opsets give it none).
	Opset int64
	// Inputs are the element types of the node's inputs, 0 for an omitted
	// optional input.
	Inputs []onnx.DataType
	// Reason says why no kernel fits.
	Reason string
}

// InputTypes formats the node's input types as "float,float,-,int32"
// ("-" for an omitted input).
func (m Miss) InputTypes() string {
	names := make([]string, len(m.Inputs))
	for i, t := range m.Inputs {
		names[i] = "-"
		if t != 0 {
			names[i] = kernels.TypeName(t)
		}
	}
	return strings.Join(names, ",")
}

// String is the miss as one line: graph, node, domain:op, input types and
// reason, separated by two spaces.
func (m Miss) String() string {
	return strings.Join([]string{m.Graph, m.Node, m.Domain + ":" + m.Op, m.InputTypes(), m.Reason}, "  ")
}

// Report is the outcome of checking graphs for one device.
type Report struct {
	Device string
	// ORTVersion is the ONNX Runtime version whose kernels were checked.
	ORTVersion string
	Graphs     int
	Nodes      int
	// CastFallbacks counts the nodes that have only a float32 kernel on
	// the CPU for their float16 types; ONNX Runtime runs them between
	// Cast nodes it inserts (its InsertCastTransformer), so they place.
	CastFallbacks int
	Misses        []Miss
}

// OK reports whether every node has a kernel.
func (r *Report) OK() bool { return len(r.Misses) == 0 }

// Summary is one line: how many nodes of how many graphs lack a kernel,
// or that all have one.
func (r *Report) Summary() string {
	where := fmt.Sprintf("on %s (ORT %s)", r.Device, r.ORTVersion)
	if r.OK() {
		s := fmt.Sprintf("every node of %d graphs has a kernel %s", r.Graphs, where)
		if r.CastFallbacks > 0 {
			s += fmt.Sprintf("; %d run in float32 between Casts ONNX Runtime inserts", r.CastFallbacks)
		}
		return s
	}
	graphs := map[string]bool{}
	for _, m := range r.Misses {
		graphs[m.Graph] = true
	}
	return fmt.Sprintf("%d of %d nodes in %d of %d graphs have no kernel %s",
		len(r.Misses), r.Nodes, len(graphs), r.Graphs, where)
}

// Table returns the kernel table of the ONNX Runtime build device runs:
// cuda's pinned CUDA build (ortlib.CUDAVersion), else ortlib.Version.
func Table(device string) (*kernels.Table, error) {
	if err := ortlib.CheckDevice(device); err != nil {
		return nil, err
	}
	version := ortlib.Version
	if device == "cuda" {
		version = ortlib.CUDAVersion
	}
	return kernels.Load(device, version)
}

// Check checks every graph of the package in dir (manifest.json's files:
// embedding, layers, head, head_last and model_full when present) for
// device ("cpu", "cuda", "webgpu"). Neither ONNX Runtime nor the weights
// are read.
func Check(dir, device string) (*Report, error) {
	t, err := Table(device)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Load(dir)
	if err != nil {
		return nil, err
	}
	f := m.Files
	names := slices.Concat([]string{f.Embed}, f.Layers, []string{f.Head, f.HeadLast, f.Full})
	r := &Report{Device: device, ORTVersion: t.Version}
	for _, name := range names {
		if name == "" {
			continue
		}
		path, err := manifest.Resolve(dir, name)
		if err != nil {
			return nil, err
		}
		if err := r.add(path, name, t); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// CheckGraph checks one graph file for device.
func CheckGraph(path, device string) (*Report, error) {
	t, err := Table(device)
	if err != nil {
		return nil, err
	}
	r := &Report{Device: device, ORTVersion: t.Version}
	if err := r.add(path, filepath.Base(path), t); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Report) add(path, name string, t *kernels.Table) error {
	model, err := onnx.ReadModel(path)
	if err != nil {
		return err
	}
	misses, fallbacks, err := CheckModel(model, name, t)
	if err != nil {
		return err
	}
	r.Graphs++
	r.Nodes += len(model.Graph.Nodes)
	r.CastFallbacks += fallbacks
	r.Misses = append(r.Misses, misses...)
	return nil
}

// CheckModel checks the nodes of model, named name in the misses, against
// table t. It also returns how many nodes place only through ONNX
// Runtime's float16 to float32 casts on the CPU. A node whose types cannot
// be inferred is an error.
func CheckModel(model *onnx.Model, name string, t *kernels.Table) (misses []Miss, castFallbacks int, err error) {
	types, err := Types(&model.Graph)
	if err != nil {
		return nil, 0, fmt.Errorf("graph %s: %w", name, err)
	}
	for i := range model.Graph.Nodes {
		n := &model.Graph.Nodes[i]
		in, _ := inputTypes(n, types) // Types checked every input
		out := make([]onnx.DataType, len(n.Outputs))
		for j, o := range n.Outputs {
			out[j] = types[o]
		}
		miss := Miss{Graph: name, Node: n.Name, Domain: kernels.NormalizeDomain(n.Domain), Op: n.OpType, Inputs: in}
		var reason string
		miss.Opset, reason = place(model, n, in, out, t)
		// ONNX Runtime's InsertCastTransformer gives a node with float16
		// inputs that no kernel takes the CPU's float32 kernel between Casts.
		if reason != "" && t.Provider == "cpu" && hasFloat16(in) {
			if _, r := place(model, n, toFloat(in), toFloat(out), t); r == "" {
				castFallbacks++
				continue
			}
		}
		if reason != "" {
			miss.Reason = reason
			misses = append(misses, miss)
		}
	}
	return misses, castFallbacks, nil
}

// place returns the node's schema version and why no kernel of t fits it
// ("" when one does).
func place(model *onnx.Model, n *onnx.Node, in, out []onnx.DataType, t *kernels.Table) (int64, string) {
	domain := kernels.NormalizeDomain(n.Domain)
	spec := ops[opKey(n.Domain, n.OpType)]
	imported, ok := model.OpsetVersion(n.Domain)
	if !ok {
		return 0, fmt.Sprintf("the model imports no opset of domain %s", domain)
	}
	since, ok := spec.sinceVersion(imported)
	if !ok {
		return 0, fmt.Sprintf("%s has no schema at opset %d", n.OpType, imported)
	}
	registered := t.Lookup(domain, n.OpType)
	if len(registered) == 0 {
		return since, fmt.Sprintf("%s has no %s kernel for %s", t.Provider, domain, n.OpType)
	}
	var matching []kernels.Kernel
	var ranges []string
	for _, k := range registered {
		ranges = append(ranges, k.Range())
		if k.Matches(since) {
			matching = append(matching, k)
		}
	}
	if len(matching) == 0 {
		return since, fmt.Sprintf("opset %d (schema version %d) is outside the registered versions %s",
			imported, since, strings.Join(ranges, ", "))
	}
	var reason string
	for _, k := range matching {
		if reason = typeMismatch(spec, k, in, out); reason == "" {
			return since, ""
		}
	}
	return since, reason
}

// typeMismatch says which of the node's types kernel k does not allow, or
// "" when it allows all.
func typeMismatch(spec opSpec, k kernels.Kernel, in, out []onnx.DataType) string {
	check := func(what string, types []onnx.DataType, param func(int) (param, bool)) string {
		for i, typ := range types {
			if typ == 0 {
				continue
			}
			p, ok := param(i)
			if !ok {
				continue
			}
			name := kernels.TypeName(typ)
			for _, c := range p.constraints {
				if !k.Allows(c, name) {
					return fmt.Sprintf("type %s of %s %s is not allowed for %s (%s)",
						name, what, p.name, c, strings.Join(k.Constraints[c], ", "))
				}
			}
		}
		return ""
	}
	if r := check("input", in, spec.input); r != "" {
		return r
	}
	return check("output", out, spec.output)
}

func hasFloat16(types []onnx.DataType) bool {
	return slices.Contains(types, onnx.Float16)
}

func toFloat(types []onnx.DataType) []onnx.DataType {
	out := slices.Clone(types)
	for i, t := range out {
		if t == onnx.Float16 {
			out[i] = onnx.Float
		}
	}
	return out
}
