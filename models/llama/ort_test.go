package llama

import (
	"fmt"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/strata-llm/strata/engine/ort/orttest"
)

// The ORT test helpers, under the names these tests use.
type runner = orttest.Runner

func initORT(t *testing.T) { orttest.Init(t) }

func newRunner(t *testing.T, dir string, cfg Config, maxSeq, batch int) *runner {
	return orttest.NewRunner(t, dir, cfg.Decoder().Dims(), maxSeq, batch)
}

func split(flat []float32, b, s, v int) [][][]float32 { return orttest.Split(flat, b, s, v) }

func must[T any](v T, err error) func(t testing.TB) T { return orttest.Must(v, err) }

func maxDiff(a, b []float32) (diff, scale float64) { return orttest.MaxDiff(a, b) }

func describe(step string, pos int) string { return fmt.Sprintf("%s (position %d)", step, pos) }

func ortSession(t *testing.T, path string, in, out []string) *ortgo.DynamicAdvancedSession {
	return orttest.Session(t, path, in, out)
}
