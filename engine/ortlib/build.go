package ortlib

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Version is the ONNX Runtime version strata is built and tested against for
// the cpu and webgpu devices.
const Version = "1.30.0"

// CUDAVersion is the ONNX Runtime version of the pinned CUDA build, used for
// the cuda device: Microsoft's 1.29.0 GPU binaries for CUDA 13, as repackaged
// on the npm registry.
const CUDAVersion = "1.29.0"

// A build is one pinned ONNX Runtime build for one platform: the npm packages
// it comes in, the files strata takes out of them, and the cache directory
// they live in.
type build struct {
	id       string       // cache directory name under strata/ort: "1.30.0", "1.29.0-cuda"
	version  string       // ONNX Runtime version
	what     string       // for messages: "ONNX Runtime 1.29.0 (CUDA 13 build)"
	size     string       // download size for progress lines
	packages []npmPackage // fetched in order
	lib      string       // file name of the core library in the cache directory
	// needs lists the shared libraries the build's execution provider loads
	// from the system (CUDA's), checked before the build is used.
	needs []string
}

// npmPackage is one npm tarball of a build.
type npmPackage struct {
	spec   string // `npm pack` argument: name@version (or a tarball path in tests)
	sha256 string // of the tarball
	files  []pinnedFile
}

// pinnedFile is a file taken out of a tarball into the cache directory.
type pinnedFile struct {
	member string // path inside the tarball
	file   string // name in the cache directory
	sha256 string
}

// cpuBuilds are onnxruntime-node's libraries: the CPU and WebGPU providers.
var cpuBuilds = map[string]*build{
	"linux/amd64": {
		id: Version, version: Version, what: "ONNX Runtime " + Version, size: "about 110 MB",
		lib: "libonnxruntime.so.1",
		packages: []npmPackage{{
			spec:   "onnxruntime-node@" + Version,
			sha256: "6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75",
			files: []pinnedFile{{
				member: "package/bin/napi-v6/linux/x64/libonnxruntime.so.1",
				file:   "libonnxruntime.so.1",
				sha256: "ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23",
			}},
		}},
	},
	"linux/arm64": {
		id: Version, version: Version, what: "ONNX Runtime " + Version, size: "about 110 MB",
		lib: "libonnxruntime.so.1",
		packages: []npmPackage{{
			spec:   "onnxruntime-node@" + Version,
			sha256: "6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75",
			files: []pinnedFile{{
				member: "package/bin/napi-v6/linux/arm64/libonnxruntime.so.1",
				file:   "libonnxruntime.so.1",
				sha256: "1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76",
			}},
		}},
	},
}

// CUDALibraries are the shared libraries the pinned CUDA build's provider
// (libonnxruntime_providers_cuda.so, built for CUDA 13) needs from the
// system: the CUDA 13 runtime, cuBLAS, cuRAND and the driver. cuDNN is loaded
// only by operators strata's graphs do not use.
var CUDALibraries = []string{"libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcuda.so.1"}

// cudaBuilds are the pinned CUDA builds: the core library of
// com.github.asus4.onnxruntime (Microsoft's 1.29.0 GPU release, which loads
// the CUDA provider from its own directory) and the providers of
// com.github.asus4.onnxruntime.linux-x64-gpu.
var cudaBuilds = map[string]*build{
	"linux/amd64": {
		id: CUDAVersion + "-cuda", version: CUDAVersion, what: "ONNX Runtime " + CUDAVersion + " (CUDA 13 build)",
		size: "about 330 MB", lib: "libonnxruntime.so.1", needs: CUDALibraries,
		packages: []npmPackage{
			{
				spec:   "com.github.asus4.onnxruntime@0.4.9",
				sha256: "e59788788818fdde1b2e522e766a21ba0f7d8391de55737abf81e32cc801785d",
				files: []pinnedFile{{
					member: "package/Plugins/Linux/x64/libonnxruntime.so",
					file:   "libonnxruntime.so.1",
					sha256: "5715f06d8992ca8eeeddcce43df3a7d38f97d537052126f558e912cb312460ca",
				}},
			},
			{
				spec:   "com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9",
				sha256: "2b459e0c17f340c92970c10ed86de4f37a3009f93c14053e6ad4334cbb6be412",
				files: []pinnedFile{
					{
						member: "package/Plugins/Linux/x64/libonnxruntime_providers_shared.so",
						file:   "libonnxruntime_providers_shared.so",
						sha256: "c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772",
					},
					{
						member: "package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so",
						file:   "libonnxruntime_providers_cuda.so",
						sha256: "56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037",
					},
				},
			},
		},
	},
}

func platform() string { return runtime.GOOS + "/" + runtime.GOARCH }

// cpuBuild is the pinned CPU/WebGPU build for this platform.
func cpuBuild() (*build, error) {
	if b, ok := cpuBuilds[platform()]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("strata has no pinned ONNX Runtime %s build for %s; set %s to a libonnxruntime you installed: %w",
		Version, platform(), EnvLibrary, ErrNoPinnedBuild)
}

// cudaBuild is the pinned CUDA build for this platform.
func cudaBuild() (*build, error) {
	if b, ok := cudaBuilds[platform()]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("strata has no pinned ONNX Runtime CUDA build for %s; set %s to an ONNX Runtime GPU build you installed: %w",
		platform(), EnvLibrary, ErrNoPinnedBuild)
}

// cacheRoot is $XDG_CACHE_HOME/strata/ort, or the OS user cache directory's.
func cacheRoot() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		var err error
		if base, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("locate user cache directory: %w", err)
		}
	}
	return filepath.Join(base, "strata", "ort"), nil
}

// dir is the build's cache directory.
func (b *build) dir() (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, b.id), nil
}

// files lists every file the build puts in its cache directory, the core
// library last.
func (b *build) files() []pinnedFile {
	var out []pinnedFile
	var core *pinnedFile
	for _, p := range b.packages {
		for i, f := range p.files {
			if f.file == b.lib {
				core = &p.files[i]
				continue
			}
			out = append(out, f)
		}
	}
	if core != nil {
		out = append(out, *core)
	}
	return out
}

// CacheDir returns the directory where strata keeps the fetched ONNX Runtime
// Version library: $XDG_CACHE_HOME/strata/ort/<Version>, or under the OS user
// cache directory.
func CacheDir() (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, Version), nil
}

// CUDACacheDir returns the directory of the fetched CUDA build:
// $XDG_CACHE_HOME/strata/ort/<CUDAVersion>-cuda.
func CUDACacheDir() (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, CUDAVersion+"-cuda"), nil
}

// Identify hashes the library at path and names the pinned build it is
// ("1.30.0", "1.29.0-cuda"), or returns "" when it is none of them.
func Identify(path string) (string, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return "", err
	}
	for _, builds := range []map[string]*build{cpuBuilds, cudaBuilds} {
		for _, b := range builds {
			for _, f := range b.files() {
				if f.file == b.lib && f.sha256 == sum {
					return b.id, nil
				}
			}
		}
	}
	return "", nil
}
