package ortdev

import (
	"bytes"
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
	checkSlotSince(t, header, matches)
}

// checkSlotSince compares slotSince with the "\since Version 1.N" note in the
// doc comment of each declared function in ORT's header (no note: a function
// of the first API versions, which slotSince leaves out).
func checkSlotSince(t *testing.T, header string, slots [][]string) {
	t.Helper()
	text, err := os.ReadFile(header)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(text, []byte("struct OrtApi {"))
	if start < 0 {
		t.Fatal("no struct OrtApi in the header")
	}
	body := string(text[start:])
	since := regexp.MustCompile(`\\since Version 1\.(\d+)`)
	for _, m := range slots {
		name := m[1]
		short := strings.TrimPrefix(name, "Release")
		decl := regexp.MustCompile(`ORT_API2_STATUS\(\s*` + name + `\s*,|ORT_API_CALL\s*\*\s*` + name +
			`\s*\)|ORT_CLASS_RELEASE\(\s*` + short + `\s*\)`).FindStringIndex(body)
		if decl == nil {
			t.Errorf("%s: no declaration in the ORT header", name)
			continue
		}
		comment := body[strings.LastIndex(body[:decl[0]], ";")+1 : decl[0]]
		got := 0
		if s := since.FindStringSubmatch(comment); s != nil {
			got, _ = strconv.Atoi(s[1])
		}
		if slotSince[name] != got {
			t.Errorf("%s: slotSince says API %d, the ORT header %d", name, slotSince[name], got)
		}
	}
	if MinAPIVersion != 23 {
		t.Errorf("MinAPIVersion = %d, want 23 (CopyTensors)", MinAPIVersion)
	}
}
