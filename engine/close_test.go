package engine

import (
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/manifest"
)

// TestCloseOrder checks the order in which a Model releases its ORT objects
// (docs/design.md, ONNX Runtime): the allocator, then the sessions from the
// last opened to the first, then the memory info and the environment — on
// host memory and on the device-memory code path — and that a Model closes
// cleanly after generating, with a Forward still open, and twice.
func TestCloseOrder(t *testing.T) {
	dir, _, _ := testPackage(t)
	for _, resident := range []bool{false, true} {
		m, err := Load(dir, Options{DeviceResident: resident, NoTokenizer: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range m.g.closeOrder() {
			got = append(got, c.name)
		}
		want := []string{"allocator", "session " + manifest.HeadFile}
		for i := len(m.Manifest.Files.Layers) - 1; i >= 0; i-- {
			want = append(want, "session "+m.Manifest.Files.Layers[i])
		}
		want = append(want, "session "+manifest.EmbedFile, "memory info", "environment")
		if !slices.Equal(got, want) {
			t.Errorf("resident=%v: close order\n%s\nwant\n%s", resident, strings.Join(got, ", "), strings.Join(want, ", "))
		}
		if _, err := m.Generate(t.Context(), Request{PromptIDs: []int{1, 5, 9}, MaxTokens: 3}); err != nil {
			t.Fatal(err)
		}
		f, err := m.NewForward()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Step([]int{1, 2}); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close() // after the model: its tensors and bindings go last, still without a crash
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
