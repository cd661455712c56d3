package export

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-llm/strata/export/safetensors"
	"github.com/strata-llm/strata/export/synth"
)

// largeSpec is a LLaMA-shaped checkpoint of about 1.08 GB of F32 weights
// (270M parameters: 16 layers, hidden 1024, vocabulary 32000).
func largeSpec() synth.Spec {
	s := synth.Llama2Like()
	s.Layers, s.Hidden, s.Heads, s.KVHeads, s.Intermediate, s.Vocab, s.MaxPos = 16, 1024, 16, 16, 2816, 32000, 2048
	s.DType = safetensors.F32
	s.Shards = 3
	return s
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func peakRSS(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status: peak RSS is measured on Linux only")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("VmHWM not found")
	return 0
}

// BenchmarkExportLarge exports a ~1 GB checkpoint and reports the peak RSS
// of the export alone (the peak is reset after the checkpoint is written).
// It takes minutes and ~2 GB of disk; run it by hand:
//
//	go test ./export -run XXX -bench ExportLarge -benchtime 1x
func BenchmarkExportLarge(b *testing.B) {
	for _, dtype := range []string{"fp16", "int4"} {
		b.Run(dtype, func(b *testing.B) {
			s := largeSpec()
			ckpt := filepath.Join(b.TempDir(), "ckpt")
			if err := synth.Write(ckpt, s); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out := filepath.Join(b.TempDir(), "pkg")
				// Return the checkpoint writer's garbage to the OS, then reset
				// VmHWM by writing "5" to clear_refs (Linux ≥ 4.0).
				runtime.GC()
				debug.FreeOSMemory()
				if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
					b.Skipf("cannot reset peak RSS: %v", err)
				}
				if err := Export(context.Background(), Options{In: ckpt, Out: out, DType: dtype, MaxSeqLen: 2048}); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(peakRSS(b))/(1<<20), "peakRSS-MiB")
				os.RemoveAll(out)
			}
			b.ReportMetric(float64(s.Bytes())/(1<<20), "ckpt-MiB")
		})
	}
}
