package ortlib

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCachedLibraryCorruptedInPlace checks that a cached library whose
// bytes changed while its size and modification time were kept — so its
// stamp still matches — is caught by its sha256 before it is loaded.
func TestCachedLibraryCorruptedInPlace(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	b := &build{id: "9.9.9", version: "9.9.9", what: "fake cpu build", lib: "libonnxruntime.so.1",
		packages: []npmPackage{{files: []pinnedFile{{file: "libonnxruntime.so.1", sha256: shaOf(fakeCPU)}}}}}
	dir, err := b.dir()
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, b.lib)
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(lib, []byte(fakeCPU), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeStamp(lib, shaOf(fakeCPU)); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := b.cached(nil); !ok || err != nil || got.Path != lib {
		t.Fatalf("intact cache: %+v, %v, %v", got, ok, err)
	}
	st, _ := os.Stat(lib)
	corrupt := []byte(strings.Repeat("\xcc", len(fakeCPU)))
	if err := os.WriteFile(lib, corrupt, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(lib, time.Now(), st.ModTime()) // the stamp still matches
	var lines []string
	if _, ok, err := b.cached(func(s string) { lines = append(lines, s) }); ok || err != nil {
		t.Fatalf("a library corrupted in place was accepted (ok %v, err %v)", ok, err)
	}
	if fileExists(lib) || len(lines) != 1 || !strings.Contains(lines[0], "sha256") {
		t.Errorf("corrupted library not removed or not reported: exists %v, lines %q", fileExists(lib), lines)
	}
}

// TestExplicitLibraryIsADirectory checks the message for --ort-lib naming
// a directory.
func TestExplicitLibraryIsADirectory(t *testing.T) {
	_, err := Find(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Find(a directory) = %v", err)
	}
}
