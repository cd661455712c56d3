package engine

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// copyPackage copies the package in dir into a new temporary directory.
func copyPackage(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestFusedSessionSharesWeights: on the CPU a fused decode graph holds no
// weights of its own. Once the per-layer sessions are open, each of the
// package's external data files is replaced by zeros: a fused session
// that loaded (or packed) its own copy of its weights would read zeros and
// decode other ids than the per-layer chain, while one handed the
// per-layer sessions' tensors and packed weights decodes the same ids and
// adds no tensor to the shared set (each of its initializers is one a
// per-layer session already reads).
func TestFusedSessionSharesWeights(t *testing.T) {
	src, _, _ := testPackage(t)
	dir := copyPackage(t, src)
	ref, err := Load(src, Options{NoTokenizer: true, Threads: 1, Fuse: FuseOff})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	m, err := Load(dir, Options{NoTokenizer: true, Threads: 1, Fuse: FuseOn})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	w := m.g.weights
	if w == nil {
		t.Fatal("a package on the CPU opened without shared weights")
	}
	tensors := len(w.tensors)
	var dataFiles []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".data") {
			dataFiles = append(dataFiles, e.Name())
		}
	}
	if tensors == 0 || len(dataFiles) == 0 || len(w.files) != len(dataFiles) {
		t.Fatalf("%d shared tensors over %d mapped files; the package has data files %v", tensors, len(w.files), dataFiles)
	}
	// Each data file is replaced by a new file of zeros (the sessions'
	// mappings keep the old one).
	for _, f := range dataFiles {
		path := filepath.Join(dir, f)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".zeros", make([]byte, st.Size()), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".zeros", path); err != nil {
			t.Fatal(err)
		}
	}
	for _, speedup := range []float64{1, 2} {
		req := Request{PromptIDs: []int{1, 17, 5, 33}, MaxTokens: 5, IgnoreEOS: true, Schedule: "uls", Speedup: speedup}
		got, err := m.Generate(t.Context(), req)
		if err != nil {
			t.Fatalf("speedup %g: %v", speedup, err)
		}
		want, err := ref.Generate(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.TokenIDs, want.TokenIDs) {
			t.Errorf("speedup %g: fused ids %v, per-layer %v", speedup, got.TokenIDs, want.TokenIDs)
		}
	}
	if n := len(m.g.fusion.sessions); n != 2 {
		t.Errorf("%d fused sessions open, want 2", n)
	}
	if n := len(w.tensors); n != tensors {
		t.Errorf("the fused sessions added %d shared tensors to the per-layer sessions' %d", n-tensors, tensors)
	}
}
