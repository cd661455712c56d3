package filelock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestTryLock checks that a second open file of the same path cannot take
// the lock while the first holds it, and can once the first is closed.
func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	a, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := TryLock(a); err != nil {
		t.Fatalf("first lock: %v", err)
	}
	b, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := TryLock(b); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock while the first is held: %v, want ErrLocked", err)
	}
	a.Close()
	if err := TryLock(b); err != nil {
		t.Fatalf("second lock after the first closed: %v", err)
	}
}
