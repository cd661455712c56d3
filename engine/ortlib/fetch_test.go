package ortlib

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeTarball writes an npm tarball holding package.json and the given
// files, and returns its path and sha256. `npm pack <tarball>` hands it back
// byte for byte, so the fetch code runs its real npm path offline.
func fakeTarball(t *testing.T, name string, files map[string]string) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".tgz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	all := map[string]string{"package/package.json": `{"name":"` + name + `","version":"1.0.0"}`}
	for k, v := range files {
		all[k] = v
	}
	for member, content := range all {
		hdr := &tar.Header{Name: member, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, sha(t, path)
}

func sha(t *testing.T, path string) string {
	t.Helper()
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func shaOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Contents of the fake builds' files.
const (
	fakeCore     = "fake core library"
	fakeShared   = "fake shared provider library"
	fakeProvider = "fake CUDA provider library"
	fakeCPU      = "fake cpu library"
)

// fakeCUDABuild is a two-package build shaped like the pinned CUDA build.
func fakeCUDABuild(t *testing.T) *build {
	t.Helper()
	core, coreSum := fakeTarball(t, "fake-core", map[string]string{"package/lib/libonnxruntime.so": fakeCore})
	gpu, gpuSum := fakeTarball(t, "fake-gpu", map[string]string{
		"package/lib/libonnxruntime_providers_shared.so": fakeShared,
		"package/lib/libonnxruntime_providers_cuda.so":   fakeProvider,
		"package/lib/unused.so":                          "not taken",
	})
	return &build{
		id: "9.9.9-cuda", version: "9.9.9", what: "fake CUDA build", size: "tiny", lib: "libonnxruntime.so.1",
		needs: []string{"libfake-cuda.so.1"},
		packages: []npmPackage{
			{spec: core, sha256: coreSum, files: []pinnedFile{
				{member: "package/lib/libonnxruntime.so", file: "libonnxruntime.so.1", sha256: shaOf(fakeCore)},
			}},
			{spec: gpu, sha256: gpuSum, files: []pinnedFile{
				{member: "package/lib/libonnxruntime_providers_shared.so", file: "libonnxruntime_providers_shared.so", sha256: shaOf(fakeShared)},
				{member: "package/lib/libonnxruntime_providers_cuda.so", file: "libonnxruntime_providers_cuda.so", sha256: shaOf(fakeProvider)},
			}},
		},
	}
}

func fakeCPUBuild(t *testing.T) *build {
	t.Helper()
	tgz, sum := fakeTarball(t, "fake-cpu", map[string]string{"package/bin/libonnxruntime.so.1": fakeCPU})
	return &build{
		id: "9.9.9", version: "9.9.9", what: "fake cpu build", size: "tiny", lib: "libonnxruntime.so.1",
		packages: []npmPackage{{spec: tgz, sha256: sum, files: []pinnedFile{
			{member: "package/bin/libonnxruntime.so.1", file: "libonnxruntime.so.1", sha256: shaOf(fakeCPU)},
		}}},
	}
}

func needNPM(t *testing.T) {
	t.Helper()
	if !npmAvailable() {
		t.Fatal("these tests need npm (scripts/test.sh installs it)")
	}
}

// noNPM hides npm from the process for one test.
func noNPM(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFetchBuild(t *testing.T) {
	needNPM(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	b := fakeCUDABuild(t)
	var lines []string
	lib, err := b.fetch(func(s string) { lines = append(lines, s) })
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := b.dir()
	if lib.Path != filepath.Join(dir, "libonnxruntime.so.1") || lib.Source != SourceFetched || !lib.Verified || lib.Build != b.id {
		t.Errorf("fetch = %+v", lib)
	}
	for file, want := range map[string]string{
		"libonnxruntime.so.1": fakeCore, "libonnxruntime_providers_shared.so": fakeShared, "libonnxruntime_providers_cuda.so": fakeProvider,
	} {
		if got := readFile(t, filepath.Join(dir, file)); got != want {
			t.Errorf("%s holds %q, want %q", file, got, want)
		}
	}
	if fileExists(filepath.Join(dir, "unused.so")) {
		t.Error("a file that is not pinned was installed")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".fetch-*")); len(left) != 0 {
		t.Errorf("download directories left behind: %v", left)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "npm pack") {
		t.Errorf("progress lines %q do not mention npm pack", lines)
	}

	// The cache is reused: no npm needed the second time.
	noNPM(t)
	again, err := b.fetch(nil)
	if err != nil || again.Source != SourceCache || again.Path != lib.Path {
		t.Fatalf("second fetch = %+v, %v; want the cached build", again, err)
	}
}

func TestFetchRefetchesCorruptedFile(t *testing.T) {
	needNPM(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	b := fakeCUDABuild(t)
	if _, err := b.fetch(nil); err != nil {
		t.Fatal(err)
	}
	dir, _ := b.dir()
	provider := filepath.Join(dir, "libonnxruntime_providers_cuda.so")
	// Same length, other bytes, later modification time: the stamp no
	// longer matches, so the file is hashed and rejected.
	if err := os.WriteFile(provider, []byte(strings.Repeat("x", len(fakeProvider))), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	os.Chtimes(provider, future, future)
	var lines []string
	if _, ok, err := b.cached(func(s string) { lines = append(lines, s) }); ok || err != nil {
		t.Fatalf("cached() accepted a corrupted provider (ok %v, err %v)", ok, err)
	}
	if fileExists(provider) || len(lines) != 1 || !strings.Contains(lines[0], "sha256") {
		t.Errorf("corrupted file not removed or not reported: exists %v, lines %q", fileExists(provider), lines)
	}
	lib, err := b.fetch(nil)
	if err != nil || lib.Source != SourceFetched {
		t.Fatalf("refetch = %+v, %v", lib, err)
	}
	if got := readFile(t, provider); got != fakeProvider {
		t.Errorf("refetched provider holds %q", got)
	}
}

func TestFetchErrors(t *testing.T) {
	needNPM(t)
	tests := []struct {
		name  string
		spoil func(b *build)
		want  string
	}{
		{"tarball checksum", func(b *build) { b.packages[1].sha256 = strings.Repeat("0", 64) }, "refusing to use it"},
		{"file checksum", func(b *build) { b.packages[1].files[1].sha256 = strings.Repeat("0", 64) }, "refusing to use it"},
		{"missing member", func(b *build) { b.packages[0].files[0].member = "package/lib/nothing.so" }, "is not in the"},
		{"npm pack fails", func(b *build) { b.packages[0].spec = filepath.Join(t.TempDir(), "absent.tgz") }, "npm pack"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			b := fakeCUDABuild(t)
			tc.spoil(b)
			_, err := b.fetch(nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("fetch error = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			dir, _ := b.dir()
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != ".lock" {
					t.Errorf("left in the cache after a failed fetch: %s", e.Name())
				}
			}
		})
	}
}

func TestFetchWithoutNPM(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	noNPM(t)
	_, err := fakeCUDABuild(t).fetch(nil)
	if err == nil || !strings.Contains(err.Error(), "npm is not installed") {
		t.Fatalf("fetch without npm: %v", err)
	}
}

// withFakeBuilds installs fake builds for this platform and a CUDA
// dependency search that finds (or misses) every library.
func withFakeBuilds(t *testing.T, cudaFound bool) (cpu, cuda *build) {
	t.Helper()
	cpu, cuda = fakeCPUBuild(t), fakeCUDABuild(t)
	oldCPU, oldCUDA, oldSearch := cpuBuilds, cudaBuilds, cudaSearchFor
	cpuBuilds = map[string]*build{platform(): cpu}
	cudaBuilds = map[string]*build{platform(): cuda}
	cudaSearchFor = func(b *build) []CUDADependency {
		var deps []CUDADependency
		for _, n := range b.needs {
			d := CUDADependency{Name: n, Fix: "install " + n}
			if cudaFound {
				d.Path, d.OnLoaderPath = "/usr/lib/"+n, true
			}
			deps = append(deps, d)
		}
		return deps
	}
	t.Cleanup(func() { cpuBuilds, cudaBuilds, cudaSearchFor = oldCPU, oldCUDA, oldSearch })
	return cpu, cuda
}

func TestLibraryForPicksTheDevicesBuild(t *testing.T) {
	needNPM(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(EnvLibrary, "")
	cpu, cuda := withFakeBuilds(t, true)
	cpuDir, _ := cpu.dir()
	cudaDir, _ := cuda.dir()
	if _, err := FindFor("cuda", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FindFor(cuda) on an empty cache: %v, want ErrNotFound", err)
	}
	user := filepath.Join(t.TempDir(), "libonnxruntime.so")
	os.WriteFile(user, []byte("user's build"), 0o644)

	tests := []struct {
		device, explicit, env string
		want                  string
		source                Source
	}{
		{"cuda", "", "", filepath.Join(cudaDir, "libonnxruntime.so.1"), SourceFetched},
		{"cuda", "", "", filepath.Join(cudaDir, "libonnxruntime.so.1"), SourceCache},
		{"cpu", "", "", filepath.Join(cpuDir, "libonnxruntime.so.1"), SourceFetched},
		{"", "", "", filepath.Join(cpuDir, "libonnxruntime.so.1"), SourceCache},
		{"webgpu", "", "", filepath.Join(cpuDir, "libonnxruntime.so.1"), SourceCache},
		{"cuda", user, "", user, SourceFlag},
		{"cpu", user, "", user, SourceFlag},
		{"cuda", "", user, user, SourceEnv},
		{"webgpu", "", user, user, SourceEnv},
	}
	for _, tc := range tests {
		t.Setenv(EnvLibrary, tc.env)
		lib, err := LibraryFor(tc.device, tc.explicit)
		if err != nil {
			t.Fatalf("LibraryFor(%q, %q) with env %q: %v", tc.device, tc.explicit, tc.env, err)
		}
		if lib.Path != tc.want || lib.Source != tc.source {
			t.Errorf("LibraryFor(%q, %q) with env %q = %s (%s), want %s (%s)", tc.device, tc.explicit, tc.env, lib.Path, lib.Source, tc.want, tc.source)
		}
		found, err := FindFor(tc.device, tc.explicit)
		if err != nil || found.Path != tc.want {
			t.Errorf("FindFor(%q, %q) = %s, %v; want %s", tc.device, tc.explicit, found.Path, err, tc.want)
		}
	}
	if _, err := LibraryFor("tpu", ""); err == nil || !strings.Contains(err.Error(), "unknown device") {
		t.Errorf("LibraryFor(tpu): %v", err)
	}
}

func TestLibraryForCUDAWithoutCUDALibraries(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(EnvLibrary, "")
	_, cuda := withFakeBuilds(t, false)
	_, err := LibraryFor("cuda", "")
	var missing *MissingCUDAError
	if !errors.As(err, &missing) || len(missing.Missing) != 1 || missing.Missing[0].Name != "libfake-cuda.so.1" {
		t.Fatalf("LibraryFor(cuda) without CUDA: %v, want a MissingCUDAError for libfake-cuda.so.1", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "install libfake-cuda.so.1") {
		t.Errorf("error %q: want one line with the fix", msg)
	}
	// Nothing was downloaded for a provider that cannot run.
	dir, _ := cuda.dir()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the CUDA build's cache directory exists after a refused LibraryFor: %v", err)
	}
}

func TestIdentify(t *testing.T) {
	cpu, cuda := withFakeBuilds(t, true)
	dir := t.TempDir()
	for _, tc := range []struct{ content, want string }{
		{fakeCPU, cpu.id}, {fakeCore, cuda.id}, {fakeProvider, ""}, {"something else", ""},
	} {
		p := filepath.Join(dir, "lib")
		os.WriteFile(p, []byte(tc.content), 0o644)
		got, err := Identify(p)
		if err != nil || got != tc.want {
			t.Errorf("Identify(%q) = %q, %v; want %q", tc.content, got, err, tc.want)
		}
	}
	if _, err := Identify(filepath.Join(dir, "absent")); err == nil {
		t.Error("Identify of a missing file succeeded")
	}
}

// TestFetchCUDA fetches the real pinned CUDA build (about 330 MB) into the
// user cache, where it stays: the first run on a machine downloads it, later
// runs (and the tests that load it) find it cached and verify it.
func TestFetchCUDA(t *testing.T) {
	if _, err := cudaBuild(); err != nil {
		t.Skip(err) // strata pins a CUDA build for linux/amd64 only
	}
	needNPM(t)
	t.Setenv(EnvLibrary, "")
	lib, err := FetchCUDA(Progress)
	if err != nil {
		t.Fatal(err)
	}
	if !lib.Verified || lib.Build != CUDAVersion+"-cuda" {
		t.Fatalf("FetchCUDA = %+v", lib)
	}
	dir, _ := CUDACacheDir()
	for _, f := range []string{"libonnxruntime.so.1", "libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"} {
		if !fileExists(filepath.Join(dir, f)) {
			t.Errorf("%s missing from %s", f, dir)
		}
	}
	found, err := FindFor("cuda", "")
	if err != nil || found.Path != lib.Path || found.Source != SourceCache {
		t.Errorf("FindFor(cuda) after the fetch = %+v, %v", found, err)
	}
	if id, err := Identify(lib.Path); err != nil || id != lib.Build {
		t.Errorf("Identify(%s) = %q, %v", lib.Path, id, err)
	}
}
