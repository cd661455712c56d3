package onnx

import (
	"errors"
	"fmt"
	"slices"
)

// Part is one graph of a composition (Compose). Every value, node and
// initializer name of the part takes Prefix, except the names in Rename,
// which become the name Rename gives: that is how parts are chained (one
// part's output renamed to the name of the next part's input) and how a
// value is shared by several parts (each renames it to the same name).
type Part struct {
	Prefix string
	Model  *Model
	Rename map[string]string
}

// Compose joins parts, in order, into one graph named name whose inputs and
// outputs are the listed names (after renaming). A part's input must be a
// composed input or an output of an earlier part; a composed input takes
// the declaration of the first part that reads it, a composed output that
// of the part that computes it. Initializers keep their data: inline bytes
// are shared with the parts, external data keeps its location, offset and
// length, so the composed model must be opened with its external data
// resolved where the parts' was (ORT's
// session.model_external_initializers_file_folder_path). Each domain is
// imported at the highest version any part imports. Attributes holding
// graphs and initializers stored in typed fields cannot be carried (ReadModel
// does not keep them) and are an error naming the part.
func Compose(name string, parts []Part, inputs, outputs []string) (*Model, error) {
	if len(parts) == 0 {
		return nil, errors.New("compose: no parts")
	}
	out := &Model{Graph: Graph{Name: name}, Opsets: []Opset{}}
	defined := map[string]bool{} // values available to later parts
	inDecl := map[string]ValueInfo{}
	outDecl := map[string]ValueInfo{}
	for _, p := range parts {
		if p.Model == nil {
			return nil, fmt.Errorf("compose: part %q has no model", p.Prefix)
		}
		rename := func(n string) string {
			if n == "" {
				return ""
			}
			if r, ok := p.Rename[n]; ok {
				return r
			}
			return p.Prefix + n
		}
		g := &p.Model.Graph
		out.IRVersion = max(out.IRVersion, p.Model.IRVersion)
		for _, o := range p.Model.Opsets {
			mergeOpset(&out.Opsets, o)
		}
		for _, in := range g.Inputs {
			r := rename(in.Name)
			if defined[r] {
				continue
			}
			if !slices.Contains(inputs, r) {
				return nil, fmt.Errorf("compose: part %q: input %q (as %q) is neither a composed input nor computed by an earlier part", p.Prefix, in.Name, r)
			}
			if _, ok := inDecl[r]; !ok {
				in.Name = r
				inDecl[r] = in
				out.Graph.Inputs = append(out.Graph.Inputs, in)
			}
		}
		for _, t := range g.Initializers {
			if t.Raw == nil && t.Location == "" && t.NumElements() > 0 {
				return nil, fmt.Errorf("compose: part %q: initializer %q keeps its values in typed fields, which are not carried", p.Prefix, t.Name)
			}
			t.Name = rename(t.Name)
			out.Graph.Initializers = append(out.Graph.Initializers, t)
		}
		for _, n := range g.Nodes {
			for _, a := range n.Attrs {
				if !carried(a.Type) {
					return nil, fmt.Errorf("compose: part %q: node %q: attribute %q of type %d is not carried", p.Prefix, n.Name, a.Name, a.Type)
				}
			}
			n.Name = p.Prefix + n.Name
			n.Inputs = mapNames(n.Inputs, rename)
			n.Outputs = mapNames(n.Outputs, rename)
			out.Graph.Nodes = append(out.Graph.Nodes, n)
		}
		// Only what the part declares as output is visible to later parts;
		// its inputs are visible too (a shared input stays shared).
		for _, in := range g.Inputs {
			defined[rename(in.Name)] = true
		}
		for _, o := range g.Outputs {
			r := rename(o.Name)
			defined[r] = true
			o.Name = r
			outDecl[r] = o
		}
	}
	for _, in := range inputs {
		if _, ok := inDecl[in]; !ok {
			return nil, fmt.Errorf("compose: input %q is read by no part", in)
		}
	}
	for _, o := range outputs {
		d, ok := outDecl[o]
		if !ok {
			return nil, fmt.Errorf("compose: output %q is computed by no part", o)
		}
		out.Graph.Outputs = append(out.Graph.Outputs, d)
	}
	if err := out.Graph.validate(); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	return out, nil
}

// carried reports whether Compose can carry an attribute of type t.
func carried(t AttrType) bool {
	switch t {
	case AttrFloat, AttrInt, AttrString, AttrTensor, AttrFloats, AttrInts, AttrStrings:
		return true
	}
	return false
}

func mapNames(names []string, f func(string) string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = f(n)
	}
	return out
}

// mergeOpset adds o to opsets, keeping the higher version of a domain
// imported twice ("" and "ai.onnx" are the same domain).
func mergeOpset(opsets *[]Opset, o Opset) {
	dom := func(d string) string {
		if d == "ai.onnx" {
			return ""
		}
		return d
	}
	for i, have := range *opsets {
		if dom(have.Domain) == dom(o.Domain) {
			(*opsets)[i].Version = max(have.Version, o.Version)
			return
		}
	}
	*opsets = append(*opsets, o)
}
