// Package kernels holds the kernel tables of the ONNX Runtime builds strata
// pins (engine/ortlib): for each execution provider, which ops have a kernel,
// for which opset versions and which element types. The tables are plain
// tab-separated files embedded in the binary; README.md says where each
// one was taken from. engine/placement reads them to tell, without a GPU
// and without ONNX Runtime, whether every node of a package can run on a
// device (docs/design.md, Placement check).
package kernels

import (
	"bufio"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-llm/strata/models/onnx"
)

//go:embed *.tsv
var files embed.FS

// ErrNoTable means no kernel table is pinned for a provider and version.
var ErrNoTable = errors.New("no kernel table")

// Open is the Until of a kernel registered for every later opset version.
const Open = 0

// Kernel is one registered kernel: the op it implements, the opset
// versions it covers and, for each type constraint it registers, the
// element types it accepts.
type Kernel struct {
	Provider string
	// Domain is "ai.onnx" or "com.microsoft".
	Domain string
	Op     string
	// Since and Until bound the opset versions; Until is Open for a
	// kernel registered "Since+".
	Since, Until int64
	// Constraints maps a type constraint's name (T, T1, Tind, …) to the
	// element type names it allows, sorted ("float", "float16", …; see
	// TypeName).
	Constraints map[string][]string
}

// Matches reports whether the kernel serves a node whose op schema has
// opset version since, by ONNX Runtime's rule (KernelRegistry's version
// check): an open-ended kernel serves only the version it starts at, a
// bounded one every version in its range.
func (k Kernel) Matches(since int64) bool {
	if k.Until == Open {
		return since == k.Since
	}
	return k.Since <= since && since <= k.Until
}

// Range formats the kernel's versions as ONNX Runtime's operator tables
// do: "14+", "13" or "[7, 12]".
func (k Kernel) Range() string {
	switch {
	case k.Until == Open:
		return fmt.Sprintf("%d+", k.Since)
	case k.Until == k.Since:
		return strconv.FormatInt(k.Since, 10)
	}
	return fmt.Sprintf("[%d, %d]", k.Since, k.Until)
}

// Allows reports whether constraint name accepts the element type typ
// (a TypeName). A constraint the kernel does not register accepts every
// type, as in ONNX Runtime.
func (k Kernel) Allows(name, typ string) bool {
	allowed, ok := k.Constraints[name]
	return !ok || slices.Contains(allowed, typ)
}

// Table is one provider's kernels.
type Table struct {
	Provider string
	// Version is the ONNX Runtime version the table describes.
	Version string
	kernels map[string][]Kernel // by Domain + ":" + Op
}

// Load returns the pinned table of provider ("cpu", "cuda", "webgpu") for
// ONNX Runtime version, or an error wrapping ErrNoTable.
func Load(provider, version string) (*Table, error) {
	name := provider + "-" + version + ".tsv"
	f, err := files.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w for %s with ONNX Runtime %s", ErrNoTable, provider, version)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Parse(f, name)
	if err != nil {
		return nil, err
	}
	if t.Provider != "" && t.Provider != provider {
		return nil, fmt.Errorf("kernel table %s lists provider %s", name, t.Provider)
	}
	t.Provider, t.Version = provider, version
	return t, nil
}

// Parse reads a kernel table: one kernel per line, tab-separated columns
// provider, domain, op, since, until ("-" for open-ended) and constraints
// ("T=float,float16;Tind=int32,int64", or "-" for none). Lines starting
// with "#" and blank lines are skipped. Every row must name the same
// provider. name labels errors.
func Parse(r io.Reader, name string) (*Table, error) {
	t := &Table{kernels: map[string][]Kernel{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		k, err := parseRow(text)
		if err != nil {
			return nil, fmt.Errorf("kernel table %s line %d: %w", name, line, err)
		}
		if t.Provider == "" {
			t.Provider = k.Provider
		} else if k.Provider != t.Provider {
			return nil, fmt.Errorf("kernel table %s line %d: provider %s after %s", name, line, k.Provider, t.Provider)
		}
		key := k.Domain + ":" + k.Op
		for _, o := range t.kernels[key] {
			if overlaps(o, k) {
				return nil, fmt.Errorf("kernel table %s line %d: %s %s overlaps %s", name, line, key, k.Range(), o.Range())
			}
		}
		t.kernels[key] = append(t.kernels[key], k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel table %s: %w", name, err)
	}
	return t, nil
}

func overlaps(a, b Kernel) bool {
	end := func(k Kernel) int64 {
		if k.Until == Open {
			return 1 << 62
		}
		return k.Until
	}
	return a.Since <= end(b) && b.Since <= end(a)
}

func parseRow(text string) (Kernel, error) {
	cols := strings.Split(text, "\t")
	if len(cols) != 6 {
		return Kernel{}, fmt.Errorf("%d columns, want 6 (provider, domain, op, since, until, constraints)", len(cols))
	}
	k := Kernel{Provider: cols[0], Domain: NormalizeDomain(cols[1]), Op: cols[2]}
	if k.Provider == "" || k.Op == "" {
		return k, errors.New("empty provider or op")
	}
	var err error
	if k.Since, err = strconv.ParseInt(cols[3], 10, 64); err != nil || k.Since < 1 {
		return k, fmt.Errorf("since %q is not an opset version", cols[3])
	}
	if cols[4] != "-" {
		if k.Until, err = strconv.ParseInt(cols[4], 10, 64); err != nil || k.Until < k.Since {
			return k, fmt.Errorf("until %q is not an opset version from %d on", cols[4], k.Since)
		}
	}
	k.Constraints = map[string][]string{}
	if cols[5] == "-" {
		return k, nil
	}
	for _, c := range strings.Split(cols[5], ";") {
		name, list, ok := strings.Cut(c, "=")
		if !ok || name == "" || list == "" {
			return k, fmt.Errorf("constraint %q is not name=type,type", c)
		}
		if _, dup := k.Constraints[name]; dup {
			return k, fmt.Errorf("constraint %s given twice", name)
		}
		types := strings.Split(list, ",")
		for _, typ := range types {
			if !knownType(typ) {
				return k, fmt.Errorf("constraint %s: unknown element type %q", name, typ)
			}
		}
		slices.Sort(types)
		k.Constraints[name] = types
	}
	return k, nil
}

// Lookup returns the kernels of op in domain ("" is "ai.onnx"), in table
// order; none when the provider has no kernel for the op.
func (t *Table) Lookup(domain, op string) []Kernel {
	return t.kernels[NormalizeDomain(domain)+":"+op]
}

// Ops lists the table's ops as "domain:op", sorted.
func (t *Table) Ops() []string {
	out := make([]string, 0, len(t.kernels))
	for k := range t.kernels {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// NormalizeDomain maps the default domain "" to "ai.onnx".
func NormalizeDomain(domain string) string {
	if domain == "" {
		return "ai.onnx"
	}
	return domain
}

// typeNames are the element type names the tables use (those of ONNX
// Runtime's operator tables), indexed by TensorProto.DataType.
var typeNames = map[onnx.DataType]string{
	1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
	8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64",
	14: "complex64", 15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz",
	19: "float8e5m2", 20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1",
	25: "uint2", 26: "int2",
}

// TypeName names an element type as the tables do ("float", "float16",
// "int64", …); an unknown type is "type(N)".
func TypeName(t onnx.DataType) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", int32(t))
}

func knownType(name string) bool {
	for _, n := range typeNames {
		if n == name {
			return true
		}
	}
	return false
}
