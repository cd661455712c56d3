// Package version is strata's version: a constant, recorded in every
// package strata exports (manifest.json "provenance"), plus the VCS
// revision of the build when the Go toolchain stamped one (shown by
// `strata version`, never written into a package, so that `go run` and a
// built binary of one tree export byte-identical packages).
package version

import "runtime/debug"

// Version is strata's release version. It changes with every release and
// with any change to what an export writes for the same checkpoint.
const Version = "0.9.0"

// Build describes the running binary.
type Build struct {
	// Version is the Version constant.
	Version string `json:"version"`
	// Revision is the VCS revision the binary was built from ("" when the
	// toolchain did not stamp one: go run, -buildvcs=false).
	Revision string `json:"revision,omitempty"`
	// Modified reports uncommitted changes in the built tree.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go"`
}

// Current returns the running binary's build description.
func Current() Build {
	b := Build{Version: Version}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = info.GoVersion
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is "0.9.0", with the revision appended when known:
// "0.9.0 (a1b2c3d4e5f6, modified)".
func (b Build) String() string {
	s := b.Version
	if b.Revision == "" {
		return s
	}
	rev := b.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if b.Modified {
		rev += ", modified"
	}
	return s + " (" + rev + ")"
}
