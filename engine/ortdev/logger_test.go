package ortdev

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestSlogLevel(t *testing.T) {
	for sev, want := range map[LogLevel]slog.Level{LogVerbose: slog.LevelDebug, LogInfo: slog.LevelDebug,
		LogWarning: slog.LevelInfo, LogError: slog.LevelInfo, LogFatal: slog.LevelInfo} {
		if got := slogLevel(sev); got != want {
			t.Errorf("slogLevel(%s) = %v, want %v", severityName(sev), got, want)
		}
	}
}

// TestEnvLogsThroughSlog checks that ORT's messages arrive in log/slog as
// one-line records (with the environment at verbose level, creating a
// session logs several).
func TestEnvLogsThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)
	a := openAPI(t)
	e, err := a.NewEnv(LogVerbose, "logtest")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, err := e.NewSession(writeTestModel(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	out := buf.String()
	if !strings.Contains(out, "msg=\"onnxruntime: ") || !strings.Contains(out, "ort_severity=") {
		t.Fatalf("no ORT messages in slog output:\n%.2000s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("ANSI escapes in the slog output")
	}
}
