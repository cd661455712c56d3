package engine

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering: dependencies point one way (docs/design.md, "Layers of
// packages"): models imports neither export nor engine, engine never
// imports export, and nothing the strata binary links uses onnxruntime_go.
func TestLayering(t *testing.T) {
	for _, tc := range []struct {
		pkgs      string
		forbidden []string
	}{
		{"../models/...", []string{"/strata/export", "/strata/engine", "yalue/onnxruntime_go"}},
		{"./...", []string{"/strata/export"}},
		{"../cmd/strata", []string{"yalue/onnxruntime_go"}},
	} {
		out, err := exec.Command("go", "list", "-deps", tc.pkgs).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tc.pkgs, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range tc.forbidden {
				if strings.Contains(dep, f) {
					t.Errorf("%s depends on %s", tc.pkgs, dep)
				}
			}
		}
	}
}
