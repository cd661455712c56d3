package ortdev

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestSlotNumbersMatchHeader checks every slot number in ortdev.h against
// ONNX Runtime's own C API header as shipped in onnxruntime_go's module
// directory (read at test time, never copied): a C program prints
// offsetof(OrtApi, Name)/sizeof(void*) for each declared slot.
func TestSlotNumbersMatchHeader(t *testing.T) {
	decl, err := os.ReadFile("ortdev.h")
	if err != nil {
		t.Fatal(err)
	}
	matches := regexp.MustCompile(`(?m)^\s*SD_(\w+) = (\d+),`).FindAllStringSubmatch(string(decl), -1)
	if len(matches) < 50 {
		t.Fatalf("found only %d slot declarations in ortdev.h", len(matches))
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Fatalf("locate onnxruntime_go: %v", err)
	}
	header := filepath.Join(strings.TrimSpace(string(out)), "onnxruntime_c_api.h")
	if _, err := os.Stat(header); err != nil {
		t.Fatalf("ORT C API header: %v (run `go mod download github.com/yalue/onnxruntime_go`)", err)
	}

	var prog strings.Builder
	fmt.Fprintf(&prog, "#include <stdio.h>\n#include <stddef.h>\n#include %q\nint main(void) {\n", header)
	for _, m := range matches {
		fmt.Fprintf(&prog, "  printf(\"%s %%zu\\n\", offsetof(OrtApi, %s) / sizeof(void *));\n", m[1], m[1])
	}
	prog.WriteString("  return 0;\n}\n")
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "slots.c"), filepath.Join(dir, "slots")
	if err := os.WriteFile(src, []byte(prog.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	if msg, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compile slot probe: %v\n%s", err, msg)
	}
	got, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run slot probe: %v", err)
	}
	want := map[string]int{}
	for _, m := range matches {
		want[m[1]], _ = strconv.Atoi(m[2])
	}
	for _, line := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		var name string
		var slot int
		if _, err := fmt.Sscan(line, &name, &slot); err != nil {
			t.Fatalf("probe output %q: %v", line, err)
		}
		if want[name] != slot {
			t.Errorf("%s: ortdev.h says slot %d, the ORT header %d", name, want[name], slot)
		}
		delete(want, name)
	}
	if len(want) != 0 {
		t.Errorf("slots not checked: %v", want)
	}
}
