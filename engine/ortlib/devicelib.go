package ortlib

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// ErrOtherLibrary means the process has already loaded a different ONNX
// Runtime library than the one a device needs; one process runs one library.
var ErrOtherLibrary = errors.New("another ONNX Runtime library is already loaded in this process")

// FindFor resolves the library for device ("cpu", "webgpu", "cuda"; "" is
// cpu) without fetching anything: explicit (a path the user gave), else
// $STRATA_ORT_LIB, else the device's pinned build in the user cache (and, for
// cpu and webgpu, system library paths). It returns ErrNotFound when the
// build is not there.
func FindFor(device, explicit string) (Library, error) {
	if err := checkDeviceName(device); err != nil {
		return Library{}, err
	}
	if device != "cuda" || explicit != "" || envLibrary() != "" {
		return Find(explicit)
	}
	b, err := cudaBuild()
	if err != nil {
		return Library{}, err
	}
	lib, ok, err := b.cached(Progress)
	if err != nil {
		return Library{}, err
	}
	if !ok {
		return Library{}, fmt.Errorf("%s is not in the user cache: %w", b.what, ErrNotFound)
	}
	return lib, nil
}

// LibraryFor is FindFor that fetches the device's pinned build into the user
// cache when it is not there (see Fetch and FetchCUDA; progress lines go to
// Progress). For cuda with strata's pinned build it first checks that the
// CUDA libraries the provider needs are on this machine (a
// *MissingCUDAError, before anything is downloaded, when one is not), and
// loads those found off the loader path by their full path so that the
// provider finds them. A library the user names explicitly or in
// $STRATA_ORT_LIB is used as it is, for every device.
func LibraryFor(device, explicit string) (Library, error) {
	if err := checkDeviceName(device); err != nil {
		return Library{}, err
	}
	if device != "cuda" || explicit != "" || envLibrary() != "" {
		return Resolve(explicit, Progress)
	}
	b, err := cudaBuild()
	if err != nil {
		return Library{}, err
	}
	if err := checkCUDADependencies(cudaSearchFor(b)); err != nil {
		return Library{}, err
	}
	if lib, ok, err := b.cached(Progress); err != nil {
		return Library{}, err
	} else if ok {
		return lib, nil
	}
	if !npmAvailable() {
		return Library{}, fmt.Errorf("%s is not in the user cache and npm is not installed: install npm to fetch it, or set %s to an ONNX Runtime GPU build: %w",
			b.what, EnvLibrary, ErrNotFound)
	}
	return b.fetch(Progress)
}

// InitFor resolves the library for device (LibraryFor) and initialises
// ONNX Runtime in this process from it, returning the library in use. A
// process holds one library: when an earlier Init or InitFor loaded another
// one (the cpu build, then a cuda model), InitFor returns ErrOtherLibrary.
func InitFor(device, explicit string) (Library, error) {
	initMu.Lock()
	defer initMu.Unlock()
	if initLib != nil {
		// Asking again for the same device is cheap: no re-check, no fetch.
		want, err := FindFor(device, explicit)
		if err == nil && want.Path == initLib.Path {
			return *initLib, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Library{}, err
		}
		// A missing CUDA library is the more useful message.
		if b, berr := cudaBuild(); device == "cuda" && explicit == "" && envLibrary() == "" && berr == nil {
			if err := checkCUDADependencies(cudaSearchFor(b)); err != nil {
				return Library{}, err
			}
		}
		return Library{}, fmt.Errorf("the %s device needs its own ONNX Runtime library, but %s is loaded: %w",
			deviceOrCPU(device), initLib.Path, ErrOtherLibrary)
	}
	lib, err := LibraryFor(device, explicit)
	if err != nil {
		return Library{}, err
	}
	if device == "cuda" && lib.CUDAProvider() != "" {
		if err := LoadCUDALibraries(); err != nil {
			return Library{}, err
		}
	}
	initLib = &lib
	return lib, nil
}

// The library the process uses: ONNX Runtime is loaded once per process.
var (
	initMu  sync.Mutex
	initLib *Library
)

// Devices lists the execution providers strata can ask for.
var Devices = []string{"cpu", "cuda", "webgpu"}

// CheckDevice returns an error for an unknown device name.
func CheckDevice(device string) error {
	if slices.Contains(Devices, device) {
		return nil
	}
	return fmt.Errorf("unknown device %q: want one of %s", device, strings.Join(Devices, ", "))
}

// cudaSearchFor finds the libraries b's provider needs on this machine.
var cudaSearchFor = func(b *build) []CUDADependency {
	return systemCUDASearch().find(b.needs)
}

func checkDeviceName(device string) error {
	return CheckDevice(deviceOrCPU(device))
}

func deviceOrCPU(device string) string {
	if device == "" {
		return "cpu"
	}
	return device
}

// CUDAProviderFile is the file name of ONNX Runtime's CUDA execution-provider
// library, which lives next to the core library.
const CUDAProviderFile = "libonnxruntime_providers_cuda.so"

// CUDAProvider is the CUDA execution-provider library next to the core
// library (register it with the ORT environment to run on cuda), or "" when
// there is none.
func (l Library) CUDAProvider() string {
	p := filepath.Join(filepath.Dir(l.Path), CUDAProviderFile)
	if !fileExists(p) {
		return ""
	}
	return p
}
