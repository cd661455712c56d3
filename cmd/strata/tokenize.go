package main

import "github.com/urfave/cli/v2"

func tokenizeCommand() *cli.Command {
	return &cli.Command{Name: "tokenize", Usage: "(not built yet)", Action: notBuilt("tokenize")}
}
