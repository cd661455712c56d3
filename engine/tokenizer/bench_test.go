package tokenizer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/strata-llm/strata/internal/cputime"
)

// benchText builds a ~100 KB mixed document (prose, code, numbers, CJK,
// emoji) from the golden corpus, with varying numbers so that not every
// word is a cache hit.
func benchText(b *testing.B) string {
	var sb strings.Builder
	cases := readGoldens(b)[0].Cases
	for i := 0; sb.Len() < 100_000; i++ {
		c := cases[i%len(cases)]
		if len(c.Text) > 400 { // skip the pathological long words
			continue
		}
		sb.WriteString(c.Text)
		fmt.Fprintf(&sb, " item %d costs %d.%02d\n", i, i*7919%10007, i%100)
	}
	return sb.String()
}

// BenchmarkEncode reports single-threaded encode throughput (MB/s) per
// tokenizer family.
func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	for _, name := range []string{"llama2", "llama3", "qwen3", "gpt2", "gemma3", "deepseek_v3", "gpt4o"} {
		b.Run(name, func(b *testing.B) {
			tk, err := FromJSON(familyJSON(b, name))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			cpu0 := cputime.Process()
			for b.Loop() {
				if _, err := tk.Encode(text, true); err != nil {
					b.Fatal(err)
				}
			}
			// Throughput per CPU second (GC included), steadier than wall
			// time on a loaded machine.
			if cpu := cputime.Process() - cpu0; cpu > 0 {
				b.ReportMetric(float64(b.N)*float64(len(text))/cpu.Seconds()/1e6, "MB/cpu-s")
			}
		})
	}
}

// BenchmarkDecodeStream reports streaming decode speed per token.
func BenchmarkDecodeStream(b *testing.B) {
	text := benchText(b)[:4000]
	for _, name := range []string{"llama2", "llama3"} {
		b.Run(name, func(b *testing.B) {
			tk, err := FromJSON(familyJSON(b, name))
			if err != nil {
				b.Fatal(err)
			}
			enc, err := tk.Encode(text, false)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				sd := tk.NewStreamDecoder(true)
				for _, id := range enc.IDs {
					sd.Next(id)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(enc.IDs)), "ns/token")
		})
	}
}
