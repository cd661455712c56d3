package main

import "github.com/urfave/cli/v2"

func generateCommand() *cli.Command {
	return &cli.Command{Name: "generate", Usage: "(not built yet)", Action: notBuilt("generate")}
}
