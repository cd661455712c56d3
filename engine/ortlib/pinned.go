package ortlib

// PinnedBuild describes an ONNX Runtime build strata fetches for this
// platform: which devices use it, its version, and the sha256 of every
// npm tarball and library file, as checked at fetch time.
type PinnedBuild struct {
	// Devices are the --device values that use the build.
	Devices []string `json:"devices"`
	// Version is the ONNX Runtime version.
	Version string `json:"version"`
	// Packages are the npm tarballs the build comes in.
	Packages []PinnedFile `json:"packages"`
	// Files are the library files taken out of them.
	Files []PinnedFile `json:"files"`
}

// PinnedFile is a pinned file: an npm package spec or a library name, and
// its sha256 (hex).
type PinnedFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Pinned returns the builds strata fetches on this platform (none where it
// pins none and a library must be named with EnvLibrary).
func Pinned() []PinnedBuild {
	var out []PinnedBuild
	add := func(b *build, devices ...string) {
		p := PinnedBuild{Devices: devices, Version: b.version}
		for _, pkg := range b.packages {
			p.Packages = append(p.Packages, PinnedFile{Name: pkg.spec, SHA256: pkg.sha256})
			for _, f := range pkg.files {
				p.Files = append(p.Files, PinnedFile{Name: f.file, SHA256: f.sha256})
			}
		}
		out = append(out, p)
	}
	if b, err := cpuBuild(); err == nil {
		add(b, "cpu", "webgpu")
	}
	if b, err := cudaBuild(); err == nil {
		add(b, "cuda")
	}
	return out
}
