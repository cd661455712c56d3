package main

import (
	"context"
	"errors"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit statuses a script can branch on (README, Exit status; docs/errors.md).
const (
	exitOK           = 0   // the command did what it was asked
	exitFailure      = 1   // any other failure (I/O, ONNX Runtime, a bug)
	exitUsage        = 2   // bad flags or arguments
	exitBadInput     = 3   // a file, checkpoint, package or request is invalid
	exitVerifyFailed = 4   // a check ran and the thing checked failed it
	exitInterrupted  = 130 // SIGINT or SIGTERM stopped the command
)

// exitError is an error that carries the exit status run returns for it.
// Its text is the wrapped error's.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode makes exitError a cli.ExitCoder.
func (e *exitError) ExitCode() int { return e.code }

// withCode wraps err with an exit status; nil stays nil, and an error that
// already carries a status keeps it.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	var has *exitError
	if errors.As(err, &has) {
		return err
	}
	return &exitError{code: code, err: err}
}

// usageError marks err as a mistake in the command line: exit status 2.
func usageError(err error) error { return withCode(exitUsage, err) }

// inputError marks err as a bad input file, checkpoint, package or
// request: exit status 3.
func inputError(err error) error { return withCode(exitBadInput, err) }

// verifyFailed marks err as a check that ran and failed: exit status 4.
func verifyFailed(err error) error { return withCode(exitVerifyFailed, err) }

// interrupted marks err as the result of SIGINT or SIGTERM: exit status 130.
func interrupted(err error) error { return withCode(exitInterrupted, err) }

// exitCode is the exit status for an error returned by the CLI: the status
// it carries, 130 for a cancelled context (the commands cancel theirs only
// on SIGINT or SIGTERM), 2 for urfave/cli's own usage errors, else 1.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var coded *exitError
	if errors.As(err, &coded) {
		return coded.code
	}
	var exit cli.ExitCoder
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if errors.Is(err, context.Canceled) {
		return exitInterrupted
	}
	// urfave/cli reports a missing required flag with an unexported type.
	if msg := err.Error(); strings.HasPrefix(msg, "Required flag ") || strings.HasPrefix(msg, "Required flags ") {
		return exitUsage
	}
	return exitFailure
}

// markUsageErrors makes every flag parsing error of cmds and their
// subcommands a usage error (exit status 2) that run prints as one line.
func markUsageErrors(cmds []*cli.Command) {
	for _, cmd := range cmds {
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = onUsageError
		}
		markUsageErrors(cmd.Subcommands)
	}
}

func onUsageError(_ *cli.Context, err error, _ bool) error { return usageError(err) }
