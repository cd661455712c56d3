package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/strata-llm/strata/export"
	defaultmodel "github.com/strata-llm/strata/models/default"
	"github.com/strata-llm/strata/models/manifest"
)

// defaultModelDir returns the package directory of the built-in model. On
// first use it writes the embedded checkpoint and exports it into the user
// cache ($XDG_CACHE_HOME/strata/models/<name>-<version>); later calls reuse it.
func defaultModelDir(progress io.Writer) (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		var err error
		if base, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("locate the user cache for the built-in model: %w", err)
		}
	}
	root := filepath.Join(base, "strata", "models")
	dir := filepath.Join(root, defaultmodel.Name+"-"+defaultmodel.Version)
	if _, err := manifest.Load(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", root, err)
	}
	// Two strata processes starting at once: the second waits for the first.
	lock, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("lock %s: %w", root, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", root, err)
	}
	if _, err := manifest.Load(dir); err == nil {
		return dir, nil
	}
	fmt.Fprintf(progress, "strata: first use of the built-in model: exporting it into %s\n", dir)
	ckpt, err := os.MkdirTemp(root, ".checkpoint-")
	if err != nil {
		return "", fmt.Errorf("create a temporary directory: %w", err)
	}
	defer os.RemoveAll(ckpt)
	if err := defaultmodel.WriteCheckpoint(ckpt); err != nil {
		return "", fmt.Errorf("write the built-in checkpoint: %w", err)
	}
	if err := export.Export(context.Background(), export.Options{In: ckpt, Out: dir, DType: "fp32", Force: true}); err != nil {
		return "", fmt.Errorf("export the built-in model: %w", err)
	}
	return dir, nil
}
