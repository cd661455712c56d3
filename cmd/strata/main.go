// Command strata runs, exports and measures LLMs on ONNX Runtime with
// Unified Layer Skipping (arXiv 2404.06954).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
)

func main() {
	disableORTTelemetry()
	os.Exit(run(os.Args))
}

// disableORTTelemetry stops ONNX Runtime's telemetry, which otherwise keeps
// a device id and an event database under $XDG_CACHE_HOME/Microsoft/
// (ORT reads ORT_DISABLE_TELEMETRY when it starts; a value the user set is
// kept).
func disableORTTelemetry() {
	if _, set := os.LookupEnv("ORT_DISABLE_TELEMETRY"); !set {
		os.Setenv("ORT_DISABLE_TELEMETRY", "1")
	}
}

// run executes the CLI and turns any error into one line on stderr and a
// non-zero exit status (exitcode.go).
func run(args []string) int {
	app := newApp()
	err := app.Run(args)
	code := exitCode(err)
	if err != nil && code != exitOK {
		// ORT and some libraries format errors over several lines; a user
		// gets one.
		fmt.Fprintln(os.Stderr, "strata:", strings.Join(strings.Fields(userMessage(err)), " "))
	}
	return code
}

func newApp() *cli.App {
	app := &cli.App{
		Name:  "strata",
		Usage: "LLM inference on ONNX Runtime with Unified Layer Skipping",
		Description: "strata runs decoder-only language models exported as one ONNX graph per layer.\n" +
			"The prompt runs through every layer; each generated token runs through a fixed,\n" +
			"evenly spread subset of layers chosen from a speedup ratio (--speedup).",
		HideHelpCommand: true,
		Flags:           []cli.Flag{ortLibFlag, logLevelFlag},
		Before:          setupLogging,
		Commands: []*cli.Command{
			generateCommand(),
			batchCommand(),
			exportCommand(),
			synthCommand(),
			verifyCommand(),
			benchCommand(),
			evalCommand(),
			tokenizeCommand(),
			runtimeCommand(),
			inspectCommand(),
			versionCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError(fmt.Errorf("unknown command %q: see strata --help", c.Args().First()))
			}
			return cli.ShowAppHelp(c)
		},
		// Errors are printed once, by run.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
	}
	markUsageErrors(app.Commands)
	return app
}

// userMessage is err's text with the CLI's advice for errors the libraries
// report without naming commands or flags.
func userMessage(err error) string {
	msg := err.Error()
	if errors.Is(err, engine.ErrNonFiniteLogits) {
		msg += "; check the package with strata verify --model DIR"
	}
	if errors.Is(err, context.Canceled) { // the commands cancel only on SIGINT or SIGTERM
		msg = "interrupted (SIGINT or SIGTERM) before the command finished"
	}
	return msg
}
