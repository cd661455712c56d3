package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine/ortlib"
	"github.com/strata-llm/strata/internal/version"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print strata's version and the ONNX Runtime builds it pins",
		Description: "The first line is the version exports record in manifest.json (provenance.strata), with the\n" +
			"VCS revision of the binary when the Go toolchain stamped one. Then one line per pinned\n" +
			"ONNX Runtime build: the devices using it, its version and the sha256 of its npm tarballs and files.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON object: version, revision, modified, go, onnxruntime (the pinned builds)"},
		},
		Action: runVersion,
	}
}

// versionReport is what strata version --json prints.
type versionReport struct {
	version.Build
	ONNXRuntime []ortlib.PinnedBuild `json:"onnxruntime"`
}

func runVersion(c *cli.Context) error {
	if c.Args().Present() {
		return usageError(fmt.Errorf("unexpected argument %q (flags only)", c.Args().First()))
	}
	b := version.Current()
	if c.Bool("json") {
		return writeJSON(c.App.Writer, versionReport{Build: b, ONNXRuntime: ortlib.Pinned()})
	}
	fmt.Fprintf(c.App.Writer, "strata %s\n", b)
	if b.GoVersion != "" {
		fmt.Fprintf(c.App.Writer, "go %s\n", strings.TrimPrefix(b.GoVersion, "go"))
	}
	for _, p := range ortlib.Pinned() {
		var parts []string
		for _, f := range append(p.Packages, p.Files...) {
			parts = append(parts, fmt.Sprintf("%s sha256:%s", f.Name, f.SHA256))
		}
		fmt.Fprintf(c.App.Writer, "onnxruntime %s (%s): %s\n", p.Version, strings.Join(p.Devices, ", "), strings.Join(parts, "; "))
	}
	return nil
}
