package engine

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/strata-llm/strata/"

// testAllowed names the forbidden dependencies a package's tests (never the
// package itself) may have, with the reason: each is a test whose job needs
// the other side. An entry that nothing uses any more fails the test too,
// so the list stays what is true.
var testAllowed = map[string][]struct{ dep, reason string }{
	"models/default": {
		{"export/hf", "the tests read the pinned built-in checkpoint as export reads a Hugging Face checkpoint"},
		{"export/safetensors", "the tests read the pinned built-in checkpoint's weights"},
		{"engine/tokenizer", "the tests tokenize with the pinned tokenizer as the engine does"},
	},
	"engine/placement": {
		{"export", "its job includes export's output: every package export writes places on each device"},
	},
	"engine/beamgen": {
		{"export", "the pipeline tests run a package exported from a synthetic checkpoint (with and without a fine-tuned ratio)"},
	},
	"engine/eval": {
		{"export", "the tests evaluate a package exported from a synthetic checkpoint"},
	},
	"engine/ortdev": {
		{"github.com/yalue/onnxruntime_go", "the tests read ORT's C API header from its module (the slot numbers) and run both bindings in one process"},
	},
}

// TestLayering: dependencies point one way (docs/design.md, "Layers of
// packages"): models, tests included, imports neither export nor engine;
// engine, tests included, never imports export; nothing in the module,
// tests included, uses onnxruntime_go but engine/ortdev's tests
// (docs/design.md, "Dependencies"). Exceptions are tests only, listed in
// testAllowed with their reason.
func TestLayering(t *testing.T) {
	used := map[string]bool{}
	for _, tc := range []struct {
		pkgs      string
		test      bool
		forbidden []string
	}{
		{"../models/...", true, []string{"export", "engine"}},
		{"./...", true, []string{"export"}},
		{"../...", true, []string{"github.com/yalue/onnxruntime_go"}},
	} {
		args := []string{"list", "-f", "{{.ImportPath}}|{{join .Deps \" \"}}", tc.pkgs}
		if tc.test {
			args = []string{"list", "-test", "-f", "{{.ImportPath}}|{{join .Deps \" \"}}", tc.pkgs}
		}
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			pkg, deps, _ := strings.Cut(line, "|")
			owner, isTest := ownerOf(pkg)
			for _, dep := range strings.Fields(deps) {
				f := forbiddenMatch(dep, tc.forbidden)
				if f == "" {
					continue
				}
				if isTest {
					if key := allowedBy(owner, dep); key != "" {
						used[owner+" "+key] = true
						continue
					}
				}
				t.Errorf("%s depends on %s (forbidden: %s)", pkg, dep, f)
			}
		}
	}
	var stale []string
	for owner, entries := range testAllowed {
		for _, e := range entries {
			if !used[owner+" "+e.dep] {
				stale = append(stale, owner+" → "+e.dep)
			}
		}
	}
	sort.Strings(stale)
	for _, s := range stale {
		t.Errorf("testAllowed entry %s is no longer needed: remove it", s)
	}
}

// ownerOf returns the module-relative package a go list -test entry belongs
// to ("models/llama" for "…/models/llama [….test]", "…/models/llama_test
// […]" and "…/models/llama.test") and whether the entry is a test build.
func ownerOf(pkg string) (string, bool) {
	path, variant, _ := strings.Cut(pkg, " ")
	isTest := variant != ""
	if p, ok := strings.CutSuffix(path, ".test"); ok {
		path, isTest = p, true
	}
	if p, ok := strings.CutSuffix(path, "_test"); ok {
		path, isTest = p, true
	}
	return strings.TrimPrefix(path, module), isTest
}

// forbiddenMatch returns the entry of forbidden that dep is or lies below.
func forbiddenMatch(dep string, forbidden []string) string {
	for _, f := range forbidden {
		if under(dep, f) {
			return f
		}
	}
	return ""
}

// allowedBy returns the testAllowed entry of owner that covers dep.
func allowedBy(owner, dep string) string {
	for _, e := range testAllowed[owner] {
		if under(dep, e.dep) {
			return e.dep
		}
	}
	return ""
}

// under reports whether dep is path or a package below it; path is
// module-relative unless it starts with github.com/.
func under(dep, path string) bool {
	if !strings.HasPrefix(path, "github.com/") {
		path = module + path
	}
	return dep == path || strings.HasPrefix(dep, path+"/")
}
