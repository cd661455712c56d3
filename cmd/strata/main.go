// Command strata runs, exports and measures LLMs on ONNX Runtime with
// Unified Layer Skipping (arXiv 2404.06954).
package main

import (
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
// non-zero exit status.
func run(args []string) int {
	app := newApp()
	if err := app.Run(args); err != nil {
		var exit cli.ExitCoder
		if errors.As(err, &exit) && exit.ExitCode() == 0 {
			return 0
		}
		// ORT and some libraries format errors over several lines; a user
		// gets one.
		fmt.Fprintln(os.Stderr, "strata:", strings.Join(strings.Fields(userMessage(err)), " "))
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		return 1
	}
	return 0
}

func newApp() *cli.App {
	return &cli.App{
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
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("unknown command %q: see strata --help", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		// Errors are printed once, by run.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// userMessage is err's text with the CLI's advice for errors the libraries
// report without naming commands or flags.
func userMessage(err error) string {
	msg := err.Error()
	if errors.Is(err, engine.ErrNonFiniteLogits) {
		msg += "; check the package with strata verify --model DIR"
	}
	return msg
}
