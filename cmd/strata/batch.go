package main

import "github.com/urfave/cli/v2"

func batchCommand() *cli.Command {
	return &cli.Command{Name: "batch", Usage: "(not built yet)", Action: notBuilt("batch")}
}
