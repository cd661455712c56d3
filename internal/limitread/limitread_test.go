package limitread

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("hello"), 0o644)
	if data, err := ReadFile(small, 5); err != nil || string(data) != "hello" {
		t.Errorf("ReadFile(small, 5) = %q, %v", data, err)
	}
	if _, err := ReadFile(small, 4); err == nil || !strings.Contains(err.Error(), "above the 4-byte limit") {
		t.Errorf("ReadFile(small, 4): %v", err)
	}
	// /dev/zero never ends: the limit stops the read.
	if _, err := ReadFile("/dev/zero", 1<<10); err == nil || !strings.Contains(err.Error(), "more than the 1024-byte limit") {
		t.Errorf("ReadFile(/dev/zero): %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "nope"), 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
