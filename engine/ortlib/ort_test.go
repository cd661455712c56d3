package ortlib

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/engine/ortdev"
)

func TestFindErrors(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	tests := []struct {
		name     string
		explicit string
		env      string
		want     string
	}{
		{"missing flag path", "/nonexistent/libonnxruntime.so", "", "does not exist"},
		{"missing env path", "", "/nonexistent/libonnxruntime.so", "from env STRATA_ORT_LIB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvLibrary, tc.env)
			_, err := Find(tc.explicit)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Find(%q) error = %v, want one containing %q", tc.explicit, err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

func TestFindExplicitWins(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(lib, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvLibrary, "/nonexistent")
	got, err := Find(lib)
	if err != nil {
		t.Fatal(err)
	}
	if got.Path != lib || got.Source != SourceFlag {
		t.Errorf("Find = %+v, want %s from the flag", got, lib)
	}
}

func TestCorruptedCacheIsDiscarded(t *testing.T) {
	b, err := cpuBuild()
	if err != nil {
		t.Skip(err) // no pinned build for this platform
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(EnvLibrary, "")
	dir, _ := CacheDir()
	os.MkdirAll(dir, 0o755)
	lib := filepath.Join(dir, b.lib)
	os.WriteFile(lib, []byte("not a library"), 0o644)
	// A stale stamp claiming the right hash must not be trusted: size differs.
	os.WriteFile(stampPath(lib), []byte(b.files()[0].sha256+" 1 1\n"), 0o644)
	_, ok, err := b.cached(nil)
	if err != nil || ok {
		t.Fatalf("cached() = ok %v, err %v; want a rejected corrupted file", ok, err)
	}
	if fileExists(lib) {
		t.Error("corrupted library was left in the cache")
	}
}

// TestFetchAndInit fetches ORT with npm pack, exactly as `strata runtime
// fetch` does, into the user cache (where a later run finds it; the fetch
// mechanics on an empty cache are TestFetchBuild's), then loads it.
func TestFetchAndInit(t *testing.T) {
	t.Setenv(EnvLibrary, "")
	lib, err := Fetch(Progress)
	if err != nil {
		t.Fatal(err)
	}
	if !lib.Verified || lib.Build != Version || (lib.Source != SourceFetched && lib.Source != SourceCache) {
		t.Fatalf("Fetch = %+v", lib)
	}
	found, err := Find("")
	if err != nil || found.Source != SourceCache || found.Path != lib.Path {
		t.Fatalf("Find after fetch = %+v, %v", found, err)
	}
	api, err := ortdev.Open(lib.Path)
	if err != nil {
		t.Fatal(err)
	}
	if v := api.Version(); v != Version {
		t.Errorf("loaded version %q, want %q", v, Version)
	}
}
