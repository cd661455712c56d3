package ortdev

// #include <stdlib.h>
import "C"

import (
	"context"
	"log/slog"
	"unsafe"
)

// ORT's log messages go through log/slog instead of ORT's own coloured,
// multi-line stderr output. Every failure ORT logs is also returned to the
// caller as an error, so its messages are diagnostic detail: ORT warnings
// and errors are logged at slog's Info level (shown with --log-level info),
// ORT info and verbose messages at Debug.

// slogLevel maps an ORT logging level to the slog level its messages get.
func slogLevel(severity LogLevel) slog.Level {
	if severity >= LogWarning {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// severityName is ORT's name of a logging level.
func severityName(severity LogLevel) string {
	switch severity {
	case LogVerbose:
		return "verbose"
	case LogInfo:
		return "info"
	case LogWarning:
		return "warning"
	case LogError:
		return "error"
	}
	return "fatal"
}

//export strataOrtLog
func strataOrtLog(_ unsafe.Pointer, severity C.int, category, logid, location, message *C.char) {
	level := LogLevel(severity)
	l := slog.Default()
	if !l.Enabled(context.Background(), slogLevel(level)) {
		return
	}
	l.Log(context.Background(), slogLevel(level), "onnxruntime: "+C.GoString(message),
		"ort_severity", severityName(level), "category", C.GoString(category), "where", C.GoString(location))
}
