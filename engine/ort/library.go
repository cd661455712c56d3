// Package ort is strata's thin layer over github.com/yalue/onnxruntime_go:
// it finds (and on first use fetches) the ONNX Runtime shared library,
// initialises the runtime once per process, and creates sessions for an
// execution provider.
//
// Library resolution order (docs/design.md, "ONNX Runtime"): an explicit path (the --ort-lib
// flag), the STRATA_ORT_LIB environment variable, the user cache
// ($XDG_CACHE_HOME/strata/ort/1.30.0/), then system library paths. When
// nothing is found and npm is on PATH, the library is fetched into the user
// cache with `npm pack onnxruntime-node@1.30.0` (install scripts never run)
// and its sha256 is checked against a pinned value.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Version is the ONNX Runtime version strata is built and tested against.
const Version = "1.30.0"

// npmPackage is the npm package whose tarball carries the ORT shared library.
const npmPackage = "onnxruntime-node@" + Version

// EnvLibrary is the environment variable naming an ONNX Runtime library to use.
const EnvLibrary = "STRATA_ORT_LIB"

// platformLib describes the library file for one OS/architecture inside the
// npm package, and its pinned sha256.
type platformLib struct {
	member string // path inside the npm tarball
	file   string // file name in the cache
	sha256 string
}

var platformLibs = map[string]platformLib{
	"linux/amd64": {
		member: "package/bin/napi-v6/linux/x64/libonnxruntime.so.1",
		file:   "libonnxruntime.so.1",
		sha256: "ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23",
	},
	"linux/arm64": {
		member: "package/bin/napi-v6/linux/arm64/libonnxruntime.so.1",
		file:   "libonnxruntime.so.1",
		sha256: "1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76",
	},
}

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
}

// CacheDir returns the directory where strata keeps the fetched library:
// $XDG_CACHE_HOME/strata/ort/<Version>, or the OS user cache directory.
func CacheDir() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		var err error
		if base, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("locate user cache directory: %w", err)
		}
	}
	return filepath.Join(base, "strata", "ort", Version), nil
}

func currentPlatform() (platformLib, error) {
	key := runtime.GOOS + "/" + runtime.GOARCH
	p, ok := platformLibs[key]
	if !ok {
		return platformLib{}, fmt.Errorf("strata has no pinned ONNX Runtime %s build for %s; pass --ort-lib or set %s to a libonnxruntime you installed", Version, key, EnvLibrary)
	}
	return p, nil
}

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

// Find resolves the library without fetching anything. explicit is the
// --ort-lib flag value ("" when not given). An explicit path or the
// environment variable that does not exist is an error, not a fall-through.
func Find(explicit string) (Library, error) {
	if explicit != "" {
		return existing(explicit, SourceFlag)
	}
	if env := os.Getenv(EnvLibrary); env != "" {
		return existing(env, SourceEnv)
	}
	if lib, ok, err := cached(); err != nil {
		return Library{}, err
	} else if ok {
		return lib, nil
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
		return Library{}, fmt.Errorf("ONNX Runtime %s not found and npm is not installed: install npm and run `strata runtime fetch`, or point --ort-lib / %s at libonnxruntime", Version, EnvLibrary)
	}
	return Fetch(progress)
}

func existing(path string, src Source) (Library, error) {
	if !fileExists(path) {
		return Library{}, fmt.Errorf("ONNX Runtime library %s (from %s) does not exist", path, src)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Library{}, fmt.Errorf("ONNX Runtime library %s: %w", path, err)
	}
	return Library{Path: abs, Source: src}, nil
}

// cached returns the library in the user cache if present and intact. A
// corrupted file (sha256 mismatch) is removed so that it is fetched again.
func cached() (Library, bool, error) {
	plat, err := currentPlatform()
	if err != nil {
		return Library{}, false, nil
	}
	dir, err := CacheDir()
	if err != nil {
		return Library{}, false, err
	}
	path := filepath.Join(dir, plat.file)
	if !fileExists(path) {
		return Library{}, false, nil
	}
	ok, err := verifyCached(path, plat.sha256)
	if err != nil {
		return Library{}, false, err
	}
	if !ok {
		if Progress != nil {
			Progress("the cached ONNX Runtime library " + path + " failed its sha256 check; fetching it again")
		}
		os.Remove(path)
		os.Remove(stampPath(path))
		return Library{}, false, nil
	}
	return Library{Path: path, Source: SourceCache, Verified: true}, true, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
