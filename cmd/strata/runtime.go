package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine/ort"
	"github.com/strata-llm/strata/engine/ortdev"
)

// ortLibFlag is the global --ort-lib flag; every command that loads ONNX
// Runtime passes its value on as the library to load.
var ortLibFlag = &cli.StringFlag{
	Name:  "ort-lib",
	Usage: "path to libonnxruntime (default: $" + ort.EnvLibrary + ", the user cache, system paths, else fetched with npm)",
}

// loadORT resolves (fetching it on first use) and loads the ONNX Runtime
// library for a command.
func loadORT(c *cli.Context) (ort.Library, *ortdev.API, error) {
	lib, err := ort.Resolve(c.String("ort-lib"), ort.Progress)
	if err != nil {
		return lib, nil, err
	}
	api, err := ortdev.Open(lib.Path)
	return lib, api, err
}

func runtimeCommand() *cli.Command {
	return &cli.Command{
		Name:  "runtime",
		Usage: "show or fetch the ONNX Runtime library strata uses",
		Subcommands: []*cli.Command{
			{
				Name:  "info",
				Usage: "print which ONNX Runtime library is used, its version and where it came from",
				Action: func(c *cli.Context) error {
					lib, api, err := loadORT(c)
					if err != nil {
						return err
					}
					verified := "not checked (not strata's pinned build)"
					if lib.Verified {
						verified = "matches the pinned " + ort.Version + " build"
					}
					fmt.Fprintf(c.App.Writer, "library: %s\nsource:  %s\nversion: %s (strata targets %s)\nsha256:  %s\ndevices: %v\n",
						lib.Path, lib.Source, api.Version(), ort.Version, verified, []ortdev.Device{ortdev.DeviceCPU, ortdev.DeviceCUDA, ortdev.DeviceWebGPU})
					return nil
				},
			},
			{
				Name:  "fetch",
				Usage: "download ONNX Runtime " + ort.Version + " into the user cache with npm pack and verify it",
				Action: func(c *cli.Context) error {
					lib, err := ort.Fetch(ort.Progress)
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
