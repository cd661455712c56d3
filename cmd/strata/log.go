package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"
)

var logLevelFlag = &cli.StringFlag{
	Name:    "log-level",
	Value:   "warn",
	Usage:   "log verbosity: debug, info, warn or error",
	EnvVars: []string{"STRATA_LOG"},
}

func setupLogging(c *cli.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usageError(fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level")))
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	return nil
}

// notBuilt is the action of a command whose implementation has not landed yet.
func notBuilt(name string) cli.ActionFunc {
	return func(*cli.Context) error {
		return cli.Exit(fmt.Sprintf("strata %s is not built yet", name), 2)
	}
}
