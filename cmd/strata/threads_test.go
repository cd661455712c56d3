package main

import (
	"encoding/json"
	"os/exec"
	"reflect"
	"testing"
)

// TestSharedThreadPool: one spinning thread pool for every graph (the
// default) decodes the same tokens as a pool per graph. Each runs in its own process, since
// ONNX Runtime's environment (which owns a shared pool) is made once per
// process.
func TestSharedThreadPool(t *testing.T) {
	bin, pkg := strataBinary(t), testPackage(t)
	var ids [2][]int
	for i, extra := range [][]string{{"--shared-threads=false"}, {"--threads", "2"}} {
		args := append([]string{"generate", "--model", pkg, "--prompt-ids", "1,5,9,13", "--max-tokens", "8", "--speedup", "2", "--json"}, extra...)
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("%v: %v", extra, err)
		}
		var res generateJSON
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("%v: output %q: %v", extra, out, err)
		}
		ids[i] = res.TokenIDs
	}
	if len(ids[0]) != 8 || !reflect.DeepEqual(ids[0], ids[1]) {
		t.Errorf("per-graph pools %v, shared pool %v", ids[0], ids[1])
	}
}
