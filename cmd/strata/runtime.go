package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/engine/ortlib"
)

// ortLibFlag is the global --ort-lib flag; every command that loads ONNX
// Runtime passes its value on as the explicit library path.
var ortLibFlag = &cli.StringFlag{
	Name: "ort-lib",
	Usage: "path to libonnxruntime for every device (default: $" + ortlib.EnvLibrary + ", else the device's build in the user cache: " +
		ortlib.Version + " for cpu and webgpu, " + ortlib.CUDAVersion + "'s CUDA build for cuda, fetched with npm on first use)",
}

// ortLibFor resolves the ONNX Runtime library for the command's --device
// (--ort-lib, $STRATA_ORT_LIB, else the device's pinned build, fetched on
// first use) and loads it into the process. Its path goes on to the engine
// as the library to use.
func ortLibFor(c *cli.Context) (string, error) {
	lib, err := ortlib.InitFor(c.String("device"), c.String("ort-lib"))
	if err != nil {
		return "", err
	}
	return lib.Path, nil
}

func runtimeCommand() *cli.Command {
	return &cli.Command{
		Name:  "runtime",
		Usage: "show or fetch the ONNX Runtime libraries strata uses",
		Subcommands: []*cli.Command{
			{
				Name:  "info",
				Usage: "print each device's ONNX Runtime library, where it came from, and what each execution provider needs",
				Action: func(c *cli.Context) error {
					return runtimeInfo(c.App.Writer, c.String("ort-lib"))
				},
			},
			{
				Name: "fetch",
				Usage: "download a pinned ONNX Runtime build into the user cache with npm pack and verify it " +
					"(cpu/webgpu: " + ortlib.Version + ", about 110 MB; cuda: " + ortlib.CUDAVersion + "'s CUDA 13 build, about 330 MB)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "provider", Value: "cpu", Usage: "the execution provider to fetch a build for: cpu, webgpu or cuda"},
				},
				Action: func(c *cli.Context) error {
					fetch := ortlib.Fetch
					switch p := c.String("provider"); p {
					case "cpu", "webgpu":
					case "cuda":
						fetch = ortlib.FetchCUDA
					default:
						return fmt.Errorf("--provider %q: want cpu, webgpu or cuda", p)
					}
					lib, err := fetch(ortlib.Progress)
					if err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, lib.Path)
					return nil
				},
			},
		},
	}
}

// runtimeInfo loads the cpu/webgpu library (fetching it on first use) and
// reports it, then reports the cuda library and the CUDA libraries its
// provider needs, without fetching the 330 MB CUDA build.
func runtimeInfo(w io.Writer, explicit string) error {
	lib, err := ortlib.InitFor("cpu", explicit)
	if err != nil {
		return err
	}
	api, err := ortdev.Open(lib.Path)
	if err != nil {
		return fmt.Errorf("load ONNX Runtime from %s: %w", lib.Path, err)
	}
	fmt.Fprintf(w, "cpu, webgpu: ONNX Runtime %s (strata pins %s)\n", api.Version(), ortlib.Version)
	fmt.Fprintf(w, "  library:   %s (%s)\n", lib.Path, lib.Source)
	fmt.Fprintf(w, "  sha256:    %s\n", pinnedLine(lib))
	fmt.Fprintf(w, "  cpu:       always available\n")
	fmt.Fprintf(w, "  webgpu:    needs a GPU with a Vulkan driver (Metal on macOS, D3D12 on Windows); checked when a session starts\n")

	fmt.Fprintf(w, "cuda: ONNX Runtime %s (CUDA 13 build)\n", ortlib.CUDAVersion)
	cuda, err := ortlib.FindFor("cuda", explicit)
	switch {
	case errors.Is(err, ortlib.ErrNoPinnedBuild):
		fmt.Fprintf(w, "  library:   none pinned for this platform; point --ort-lib or %s at an ONNX Runtime GPU build\n", ortlib.EnvLibrary)
		return nil
	case errors.Is(err, ortlib.ErrNotFound):
		fmt.Fprintf(w, "  library:   not fetched yet: `strata runtime fetch --provider cuda` (about 330 MB), or fetched on the first --device cuda\n")
	case err != nil:
		return err
	default:
		fmt.Fprintf(w, "  library:   %s (%s)\n", cuda.Path, cuda.Source)
		fmt.Fprintf(w, "  sha256:    %s\n", pinnedLine(cuda))
		if cuda.CUDAProvider() == "" {
			fmt.Fprintf(w, "  provider:  no %s next to it: this library cannot run cuda\n", ortlib.CUDAProviderFile)
		}
	}
	deps := ortlib.FindCUDADependencies()
	missing := 0
	for i, d := range deps {
		label := "  needs:     "
		if i > 0 {
			label = "             "
		}
		switch {
		case !d.Found():
			missing++
			fmt.Fprintf(w, "%s%-18s missing: %s\n", label, d.Name, d.Fix)
		case d.OnLoaderPath:
			fmt.Fprintf(w, "%s%-18s %s\n", label, d.Name, d.Path)
		default:
			fmt.Fprintf(w, "%s%-18s %s (off the loader path; strata loads it from there)\n", label, d.Name, d.Path)
		}
	}
	if missing > 0 {
		fmt.Fprintf(w, "  cuda:      cannot run here: %d of the %d CUDA libraries above are missing\n", missing, len(deps))
	} else {
		fmt.Fprintf(w, "  cuda:      every CUDA library it needs is present; the GPU itself is checked when a session starts\n")
	}
	return nil
}

// pinnedLine says whether lib is one of strata's pinned builds, hashing it
// when the resolver did not verify it already.
func pinnedLine(lib ortlib.Library) string {
	build := lib.Build
	if !lib.Verified {
		id, err := ortlib.Identify(lib.Path)
		if err != nil {
			return "could not be read: " + err.Error()
		}
		build = id
	}
	if build == "" {
		return "not one of strata's pinned builds"
	}
	return "matches strata's pinned " + build + " build"
}
