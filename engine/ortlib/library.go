// Package ortlib finds, and on first use fetches, the ONNX Runtime shared
// library for a device, and names the devices strata can ask for (Devices).
// Sessions are opened elsewhere, by engine/ortdev's cgo layer.
//
// Two pinned builds exist. The cpu and webgpu devices use onnxruntime-node's
// ONNX Runtime Version library; the cuda device uses ONNX Runtime
// CUDAVersion's CUDA 13 build (the only GPU build on the npm registry), whose
// core library loads the CUDA execution provider from its own directory.
// LibraryFor resolves a device's library in this order (docs/design.md, "ONNX Runtime"): an
// explicit path, the STRATA_ORT_LIB environment variable, the build's
// directory in the user cache ($XDG_CACHE_HOME/strata/ort/<build>/), system
// library paths (cpu and webgpu only), and finally a fetch into the cache
// with `npm pack` (install scripts never run) checked against pinned sha256
// values of the tarballs and of every extracted file.
package ortlib

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// EnvLibrary is the environment variable naming an ONNX Runtime library to
// use for every device.
const EnvLibrary = "STRATA_ORT_LIB"

// Source says where a library was found.
type Source string

// The places a library can come from, in resolution order.
const (
	SourceFlag    Source = "flag"
	SourceEnv     Source = "env " + EnvLibrary
	SourceCache   Source = "user cache"
	SourceSystem  Source = "system"
	SourceFetched Source = "fetched with npm pack"
)

// Library is a resolved ONNX Runtime shared library.
type Library struct {
	Path   string
	Source Source
	// Verified is true when the file's sha256 matched the pinned value.
	Verified bool
	// Build names the pinned build a verified library belongs to ("1.30.0",
	// "1.29.0-cuda"); empty when not verified.
	Build string
}

// ErrNoPinnedBuild means strata pins no ONNX Runtime build for this platform
// (or this device on this platform).
var ErrNoPinnedBuild = errors.New("no pinned ONNX Runtime build for this platform")

// systemPaths lists where a system-wide ORT install usually lives.
var systemPaths = []string{
	"/usr/local/lib/libonnxruntime.so.1",
	"/usr/local/lib/libonnxruntime.so",
	"/usr/lib/libonnxruntime.so.1",
	"/usr/lib/libonnxruntime.so",
	"/usr/lib/x86_64-linux-gnu/libonnxruntime.so.1",
	"/usr/lib/aarch64-linux-gnu/libonnxruntime.so.1",
}

// ErrNotFound means no library was found and none could be fetched.
var ErrNotFound = errors.New("ONNX Runtime library not found")

// Find resolves the cpu/webgpu library without fetching anything. explicit
// is a path the user gave ("" when none). An explicit path or the
// environment variable that does not exist is an error, not a fall-through.
func Find(explicit string) (Library, error) {
	if explicit != "" {
		return existing(explicit, SourceFlag)
	}
	if env := envLibrary(); env != "" {
		return existing(env, SourceEnv)
	}
	if b, err := cpuBuild(); err == nil {
		if lib, ok, err := b.cached(Progress); err != nil {
			return Library{}, err
		} else if ok {
			return lib, nil
		}
	}
	for _, p := range systemPaths {
		if fileExists(p) {
			return Library{Path: p, Source: SourceSystem}, nil
		}
	}
	return Library{}, ErrNotFound
}

// Resolve is Find, falling back to Fetch when nothing is found and npm is
// available. progress receives human-readable progress lines (may be nil).
func Resolve(explicit string, progress func(string)) (Library, error) {
	lib, err := Find(explicit)
	if !errors.Is(err, ErrNotFound) {
		return lib, err
	}
	if !npmAvailable() {
		return Library{}, fmt.Errorf("ONNX Runtime %s not found and npm is not installed: install npm to fetch it, or set %s to a libonnxruntime: %w", Version, EnvLibrary, ErrNotFound)
	}
	return Fetch(progress)
}

func existing(path string, src Source) (Library, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return Library{}, fmt.Errorf("ONNX Runtime library %s (from %s) is a directory: give the path of libonnxruntime itself", path, src)
	}
	if !fileExists(path) {
		return Library{}, fmt.Errorf("ONNX Runtime library %s (from %s) does not exist", path, src)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Library{}, fmt.Errorf("ONNX Runtime library %s: %w", path, err)
	}
	return Library{Path: abs, Source: src}, nil
}

// cached returns the build's library from the user cache if every file of
// the build is present and intact. A corrupted file (sha256 mismatch) is
// removed so that the build is fetched again. The library that is loaded is
// hashed every time (about 45 ms for the 45 MB CPU library): a file
// corrupted with its size and modification time kept would pass its stamp
// and crash the process when loaded. Its companions (the CUDA provider,
// 230 MB) trust an up-to-date stamp.
func (b *build) cached(progress func(string)) (Library, bool, error) {
	dir, err := b.dir()
	if err != nil {
		return Library{}, false, err
	}
	for _, f := range b.files() {
		path := filepath.Join(dir, f.file)
		if !fileExists(path) {
			return Library{}, false, nil
		}
		ok, err := verifyCached(path, f.sha256, f.file != b.lib)
		if err != nil {
			return Library{}, false, err
		}
		if !ok {
			if progress != nil {
				progress("the cached file " + path + " failed its sha256 check; fetching it again")
			}
			slog.Warn("corrupted ONNX Runtime cache file removed", "file", path)
			os.Remove(path)
			os.Remove(stampPath(path))
			return Library{}, false, nil
		}
	}
	return Library{Path: filepath.Join(dir, b.lib), Source: SourceCache, Verified: true, Build: b.id}, true, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func envLibrary() string { return os.Getenv(EnvLibrary) }
