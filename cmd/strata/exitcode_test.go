package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCode(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"plain", base, exitFailure},
		{"usage", usageError(base), exitUsage},
		{"input", inputError(base), exitBadInput},
		{"verify", verifyFailed(base), exitVerifyFailed},
		{"interrupted", interrupted(base), exitInterrupted},
		{"wrapped input", fmt.Errorf("export: %w", inputError(base)), exitBadInput},
		{"first mark wins", usageError(inputError(base)), exitBadInput},
		{"cancelled context", fmt.Errorf("export: %w", context.Canceled), exitInterrupted},
		{"marked cancelled context", inputError(context.Canceled), exitBadInput},
		{"required flag", errors.New(`Required flag "in" not set`), exitUsage},
	}
	for _, tc := range tests {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
	if err := usageError(base); err.Error() != "boom" || !errors.Is(err, base) {
		t.Errorf("usageError changes the message or hides the cause: %q", err)
	}
	if usageError(nil) != nil {
		t.Error("usageError(nil) is not nil")
	}
}

func TestCLIExitCodes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"--no-such-flag", "runtime", "info"}, exitUsage},
		{[]string{"--log-level", "loud", "runtime", "info"}, exitUsage},
		{[]string{"no-such-command"}, exitUsage},
		{[]string{"export", "--no-such-flag"}, exitUsage},
		{[]string{"export", "--out", filepath.Join(dir, "pkg")}, exitUsage},
		{[]string{"export", "--in", filepath.Join(dir, "missing"), "--out", filepath.Join(dir, "pkg")}, exitBadInput},
		{[]string{"export", "--in", dir, "--out", filepath.Join(dir, "pkg"), "--dtype", "fp8"}, exitUsage},
		{[]string{"runtime", "info", "--no-such-flag"}, exitUsage},
	}
	for _, tc := range tests {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != tc.want || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasPrefix(stderr, "strata: ") {
			t.Errorf("strata %s: exit %d, stderr %q, stdout %d bytes; want exit %d and one line", strings.Join(tc.args, " "), code, stderr, len(stdout), tc.want)
		}
	}
}
