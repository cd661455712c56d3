package ortlib

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// CUDADependency is one shared library the CUDA execution provider needs,
// and where it was found.
type CUDADependency struct {
	// Name is the library's soname, e.g. "libcublas.so.13".
	Name string
	// Path is the file found ("" when none was).
	Path string
	// OnLoaderPath is true when the dynamic loader finds the library by name
	// unaided (the ld.so cache, LD_LIBRARY_PATH or a default directory).
	// A library found elsewhere (a pip package, a CUDA install folder off the
	// loader path) is loaded by strata from its full path before the CUDA
	// provider, which then finds it already in the process.
	OnLoaderPath bool
	// Fix says in one line how to get a missing library.
	Fix string
}

// Found reports whether a file was found.
func (d CUDADependency) Found() bool { return d.Path != "" }

// cudaFixes says how to get each library the CUDA build needs.
var cudaFixes = map[string]string{
	"libcuda.so.1":      "install the NVIDIA driver (CUDA 13 needs driver 580 or newer)",
	"libcudart.so.13":   "install the CUDA 13 runtime: pip install 'nvidia-cuda-runtime==13.*', or the CUDA 13 toolkit",
	"libcublas.so.13":   "install cuBLAS for CUDA 13: pip install 'nvidia-cublas==13.*', or the CUDA 13 toolkit",
	"libcublasLt.so.13": "install cuBLAS for CUDA 13: pip install 'nvidia-cublas==13.*', or the CUDA 13 toolkit",
	"libcurand.so.10":   "install cuRAND for CUDA 13: pip install 'nvidia-curand==10.*', or the CUDA 13 toolkit",
}

// cudaSearch is where FindCUDADependencies looks; a variable so that tests
// can point it at a fake file tree.
type cudaSearch struct {
	// ldconfig returns `ldconfig -p` output (the loader's cache).
	ldconfig func() ([]byte, error)
	// ldLibraryPath is $LD_LIBRARY_PATH.
	ldLibraryPath string
	// defaultDirs are searched by the loader without any configuration.
	defaultDirs []string
	// installDirs are glob patterns of CUDA install folders off the loader path.
	installDirs []string
	// sitePackages lists Python site-packages folders; their nvidia/*/lib
	// folders hold pip-installed CUDA libraries.
	sitePackages func() []string
}

// systemCUDASearch searches this machine.
func systemCUDASearch() cudaSearch {
	return cudaSearch{
		ldconfig: func() ([]byte, error) {
			for _, exe := range []string{"ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"} {
				if out, err := exec.Command(exe, "-p").Output(); err == nil {
					return out, nil
				}
			}
			return nil, fmt.Errorf("ldconfig not found")
		},
		ldLibraryPath: os.Getenv("LD_LIBRARY_PATH"),
		defaultDirs:   []string{"/lib", "/usr/lib", "/lib64", "/usr/lib64", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"},
		installDirs: []string{
			"/usr/local/cuda/lib64", "/usr/local/cuda-*/lib64",
			"/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/cuda-*/targets/x86_64-linux/lib",
			"/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/wsl/lib",
		},
		sitePackages: systemSitePackages,
	}
}

// systemSitePackages lists the usual site-packages folders and those of the
// python3 on PATH, of an active virtual environment and of conda.
func systemSitePackages() []string {
	patterns := []string{
		"/usr/lib/python3*/site-packages", "/usr/lib/python3/dist-packages",
		"/usr/local/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
	}
	if home, err := os.UserHomeDir(); err == nil {
		patterns = append(patterns, filepath.Join(home, ".local/lib/python3*/site-packages"))
	}
	for _, env := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if v := os.Getenv(env); v != "" {
			patterns = append(patterns, filepath.Join(v, "lib/python3*/site-packages"))
		}
	}
	var dirs []string
	for _, p := range patterns {
		m, _ := filepath.Glob(p)
		dirs = append(dirs, m...)
	}
	if py, err := exec.LookPath("python3"); err == nil {
		out, err := exec.Command(py, "-c", "import site; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))").Output()
		if err == nil {
			dirs = append(dirs, strings.Fields(string(out))...)
		}
	}
	return dirs
}

// FindCUDADependencies looks for every library in CUDALibraries: on the
// loader path (the ld.so cache, LD_LIBRARY_PATH, the default directories),
// in CUDA install folders (/usr/local/cuda*/lib64, …) and in pip-installed
// nvidia/*/lib folders under Python's site-packages.
func FindCUDADependencies() []CUDADependency {
	return systemCUDASearch().find(CUDALibraries)
}

func (s cudaSearch) find(names []string) []CUDADependency {
	cache := map[string]string{}
	if s.ldconfig != nil {
		if out, err := s.ldconfig(); err == nil {
			cache = parseLdconfig(out)
		}
	}
	var loaderDirs []string
	for _, d := range filepath.SplitList(s.ldLibraryPath) {
		if d != "" {
			loaderDirs = append(loaderDirs, d)
		}
	}
	loaderDirs = append(loaderDirs, s.defaultDirs...)
	var otherDirs []string
	for _, p := range s.installDirs {
		m, _ := filepath.Glob(p)
		sort.Sort(sort.Reverse(sort.StringSlice(m))) // newest cuda-13.x first
		otherDirs = append(otherDirs, m...)
	}
	if s.sitePackages != nil {
		for _, sp := range s.sitePackages() {
			m, _ := filepath.Glob(filepath.Join(sp, "nvidia", "*", "lib"))
			otherDirs = append(otherDirs, m...)
		}
	}
	deps := make([]CUDADependency, len(names))
	for i, name := range names {
		d := CUDADependency{Name: name, Fix: cudaFixes[name]}
		if d.Fix == "" {
			d.Fix = "install " + name + " and add its folder to LD_LIBRARY_PATH"
		}
		for _, dir := range loaderDirs {
			if p := filepath.Join(dir, name); fileExists(p) {
				d.Path, d.OnLoaderPath = p, true
				break
			}
		}
		if p, ok := cache[name]; ok && d.Path == "" {
			d.Path, d.OnLoaderPath = p, true
		}
		for _, dir := range otherDirs {
			if d.Path != "" {
				break
			}
			if p := filepath.Join(dir, name); fileExists(p) {
				d.Path = p
			}
		}
		deps[i] = d
	}
	return deps
}

// parseLdconfig reads `ldconfig -p` lines such as
// "	libcudart.so.13 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.13",
// keeping the first entry for this architecture of each name.
func parseLdconfig(out []byte) map[string]string {
	arch := map[string]string{"amd64": "x86-64", "arm64": "AArch64"}[runtime.GOARCH]
	libs := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, " (")
		if !ok {
			continue
		}
		flags, path, ok := strings.Cut(rest, ") => ")
		if !ok || (arch != "" && !strings.Contains(flags, arch)) {
			continue
		}
		if _, seen := libs[name]; !seen {
			libs[name] = strings.TrimSpace(path)
		}
	}
	return libs
}

// MissingCUDAError lists the CUDA libraries the CUDA execution provider needs
// and that were not found.
type MissingCUDAError struct {
	Missing []CUDADependency
}

// Error names the missing libraries and how to get the first one, on one line.
func (e *MissingCUDAError) Error() string {
	names := make([]string, len(e.Missing))
	for i, d := range e.Missing {
		names[i] = d.Name
	}
	return fmt.Sprintf("the CUDA execution provider needs %s, not found on this machine: %s",
		strings.Join(names, ", "), e.Missing[0].Fix)
}

// checkCUDADependencies returns a *MissingCUDAError when any library is
// missing, and otherwise loads those found off the loader path by their full
// path, so that the CUDA provider finds them in the process.
func checkCUDADependencies(deps []CUDADependency) error {
	var missing []CUDADependency
	for _, d := range deps {
		if !d.Found() {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		return &MissingCUDAError{Missing: missing}
	}
	for _, d := range deps {
		if !d.OnLoaderPath {
			if err := preload(d.Path); err != nil {
				return fmt.Errorf("load %s for the CUDA execution provider: %w", d.Path, err)
			}
		}
	}
	return nil
}

// LoadCUDALibraries finds the libraries in CUDALibraries and loads those
// that lie off the loader path by their full path, so that the CUDA
// provider, loaded afterwards, finds them in the process. It returns a
// *MissingCUDAError when one is not on this machine. LibraryFor does this for
// the cuda device; call it before registering a CUDA provider library by
// other means.
func LoadCUDALibraries() error {
	return checkCUDADependencies(FindCUDADependencies())
}
