package engine

import (
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// checked is a package's files, type-checked.
type checked struct {
	fset  *token.FileSet
	files []*ast.File
	pkg   *types.Package
	info  *types.Info
}

// check type-checks files as the package path.
func check(fset *token.FileSet, files []*ast.File, path string, imp types.Importer) (*checked, error) {
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	pkg, err := (&types.Config{Importer: imp}).Check(path, fset, files, info)
	if err != nil {
		return nil, err
	}
	return &checked{fset: fset, files: files, pkg: pkg, info: info}, nil
}

// checkEngine type-checks package engine's files, tests left out, against
// its dependencies' export data.
func checkEngine(t *testing.T) *checked {
	t.Helper()
	out, err := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	exports := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, file, _ := strings.Cut(line, "\t")
		exports[path] = file
	}
	out, err = exec.Command("go", "list", "-f", "{{.ImportPath}}\n{{join .GoFiles \"\\n\"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range lines[1:] {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		if exports[path] == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(exports[path])
	})
	c, err := check(fset, files, lines[0], imp)
	if err != nil {
		t.Fatalf("type-check engine: %v", err)
	}
	return c
}

// method is the method name of the package's type typ.
func (c *checked) method(t *testing.T, typ, name string) types.Object {
	t.Helper()
	tn := c.pkg.Scope().Lookup(typ)
	if tn == nil {
		t.Fatalf("no type %s", typ)
	}
	m, _, _ := types.LookupFieldOrMethod(types.NewPointer(tn.Type()), true, c.pkg, name)
	if _, ok := m.(*types.Func); !ok {
		t.Fatalf("no method %s.%s", typ, name)
	}
	return m
}

// loopers lists the functions in which target is used (called, or taken as
// a method value) inside a for or range statement, as Type.method or func.
func (c *checked) loopers(target types.Object) []string {
	var found []string
	for _, f := range c.files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			if c.usedInLoop(fd.Body, target) {
				found = append(found, funcName(fd))
			}
		}
	}
	sort.Strings(found)
	return found
}

// usedInLoop reports whether target is used inside a loop in body.
func (c *checked) usedInLoop(body *ast.BlockStmt, target types.Object) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		switch n.(type) {
		case *ast.ForStmt, *ast.RangeStmt:
			ast.Inspect(n, func(m ast.Node) bool {
				if id, ok := m.(*ast.Ident); ok && c.info.Uses[id] == target {
					found = true
				}
				return !found
			})
			return false
		}
		return !found
	})
	return found
}

func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	typ := fd.Recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// TestOneStepLoop: runSteps is the one function in package engine that
// runs a runner's steps in a loop (docs/design.md, "The step loop"); every
// other way through a batch is a policy of it.
func TestOneStepLoop(t *testing.T) {
	c := checkEngine(t)
	if got, want := c.loopers(c.method(t, "runner", "step")), []string{"runSteps"}; !slices.Equal(got, want) {
		t.Errorf("functions running runner.step in a loop: %v, want only %v", got, want)
	}
}

// TestLoopers: the search TestOneStepLoop relies on finds a method used in
// a loop however the loop nests it, and nothing else.
func TestLoopers(t *testing.T) {
	const head = `package p
type runner struct{}
func (r *runner) step() error { return nil }
type policy struct{ step int }
`
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"one loop", `func run(r *runner) { for { r.step() } }`, []string{"run"}},
		{"two functions", `func a(r *runner) { for i := 0; i < 3; i++ { r.step() } }
func (p *policy) b(r *runner) { for range 3 { if p.step > 0 { _ = r.step() } } }`, []string{"a", "policy.b"}},
		{"in a closure in a loop", `func run(r *runner) { for range 3 { func() { r.step() }() } }`, []string{"run"}},
		{"a method value", `func run(r *runner) { for _, f := range []func() error{r.step} { f() } }`, []string{"run"}},
		{"a loop in a closure", `func run(r *runner) func() { return func() { for { r.step() } } }`, []string{"run"}},
		{"one call, no loop", `func run(r *runner) error { return r.step() }`, nil},
		{"a field of the same name in a loop", `func run(p *policy) { for p.step < 3 { p.step++ } }`, nil},
	} {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "p.go", head+tc.src, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c, err := check(fset, []*ast.File{f}, "p", nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := c.loopers(c.method(t, "runner", "step")); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// requestSide are the files of requests, sequences, batching and the step
// loop; runnerSide those that run a step, which know nothing of requests.
var (
	requestSide = []string{"request.go", "sequence.go", "stop.go", "generate.go", "static.go", "batching.go", "decode.go",
		"lossless.go", "loop.go", "stats.go"}
	runnerSide = []string{"runner.go", "buffers.go", "kvcache.go", "graphs.go", "fused.go", "prefill.go"}
)

// TestRequestSideFiles: no request-side file refers to a file that refers
// back to it (types, functions, methods, fields, constants), and the runner
// side refers to no request-side file.
func TestRequestSideFiles(t *testing.T) {
	c := checkEngine(t)
	refs := map[[2]string]string{} // [user, declarer] → an identifier
	for id, obj := range c.info.Uses {
		if obj.Pkg() != c.pkg || !obj.Pos().IsValid() {
			continue
		}
		from := filepath.Base(c.fset.Position(id.Pos()).Filename)
		to := filepath.Base(c.fset.Position(obj.Pos()).Filename)
		if from != to {
			refs[[2]string{from, to}] = id.Name
		}
	}
	present := map[string]bool{}
	for _, f := range c.files {
		present[filepath.Base(c.fset.Position(f.Pos()).Filename)] = true
	}
	for _, f := range slices.Concat(requestSide, runnerSide) {
		if !present[f] {
			t.Errorf("%s is not in package engine any more: update the lists", f)
		}
	}
	var ties []string
	for k, name := range refs {
		back, ok := refs[[2]string{k[1], k[0]}]
		if ok && k[0] < k[1] && (slices.Contains(requestSide, k[0]) || slices.Contains(requestSide, k[1])) {
			ties = append(ties, fmt.Sprintf("%s → %s (%s) and back (%s)", k[0], k[1], name, back))
		}
		if slices.Contains(runnerSide, k[0]) && slices.Contains(requestSide, k[1]) {
			ties = append(ties, fmt.Sprintf("%s refers to %s of the request side (%s)", k[0], name, k[1]))
		}
	}
	sort.Strings(ties)
	for _, tie := range ties {
		t.Error(tie)
	}
}
