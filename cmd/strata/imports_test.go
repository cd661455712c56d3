package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLeavesBeamOut checks the strata binary's import graph: Apache
// Beam's SDK (and the Beam transform) belong to cmd/strata-beam only.
func TestBinaryLeavesBeamOut(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/strata-llm/strata/cmd/strata").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	var sawEngine bool
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/apache/beam/") || p == "github.com/strata-llm/strata/engine/beamgen" {
			t.Errorf("cmd/strata depends on %s", p)
		}
		sawEngine = sawEngine || p == "github.com/strata-llm/strata/engine"
	}
	if !sawEngine {
		t.Fatalf("go list -deps did not list the engine; output:\n%s", out)
	}
}
