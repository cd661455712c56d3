package bench

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WriteJSON writes the rows as an indented JSON list (docs/design.md, "CLI contract").
func WriteJSON(w io.Writer, rows []Row) error {
	if rows == nil {
		rows = []Row{}
	}
	data, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return fmt.Errorf("encode bench rows: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// WriteText writes every field of every row as an aligned table for a
// terminal, then the notes.
func WriteText(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "batch\tratio\tkept\tprefill tok/s\tdecode tok/s\tTTFT ms\tKV MiB\tspeedup\tideal\tefficiency\tmono tok/s\toverhead %\troofline %\t")
	for _, r := range plainRows(rep.Rows) {
		mono, over := "-", "-"
		if r.MonoDecodeTPS != nil {
			mono, over = fmt.Sprintf("%.2f", *r.MonoDecodeTPS), fmt.Sprintf("%+.1f", *r.OverheadPct)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.1f\t%.2f\t%.0f\t%.1f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s\t\n",
			r.Batch, fmtRatio(r.Ratio), len(r.KeptLayers), r.PrefillTPS, r.DecodeTPS, r.TTFTMillis,
			float64(r.KVBytes)/(1<<20), r.Speedup, r.IdealSpeedup, r.Efficiency, mono, over, rooflineCell(r))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if fused := fusedRows(rep.Rows); len(fused) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "fused batch\tratio\tkept\tprefill tok/s\tdecode tok/s\tspeedup\tvs per-layer\tvs mono\tRSS MiB\t")
		for _, r := range fused {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%.1f\t%.2f\t%.2f\t%s\t%s\t%.0f\t\n", r.Batch, fmtRatio(r.Ratio), len(r.KeptLayers),
				r.PrefillTPS, r.DecodeTPS, r.Speedup, gain(r), times(r.FusedMonoGain), float64(r.RSSBytes)/(1<<20))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if lossless := losslessRows(rep.Rows); len(lossless) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "lossless batch\tdraft ratio\tdraft\tdecode tok/s\tspeedup\taccepted\ttokens/pass\tdraft agreement by position\t")
		for _, r := range lossless {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%.2f\t%.2f\t%s\t%s\t%s\t\n", r.Batch, fmtRatio(r.Ratio), r.Draft, r.DecodeTPS, r.Speedup,
				pct(r.AcceptanceRate), num(r.TokensPerPass), agreement(r.DraftAgreement))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if rep.Bandwidth != nil {
		fmt.Fprintln(w, "memory bandwidth:", rep.Bandwidth)
	}
	for _, n := range rep.Notes {
		if _, err := fmt.Fprintln(w, "note:", n); err != nil {
			return err
		}
	}
	return nil
}

// WriteMarkdown writes the report as Markdown: the setup, a table shaped
// like the paper's Table 4 (one line per batch size, decode tokens/s per
// ratio, realized speedups), the full row table and the notes.
func WriteMarkdown(w io.Writer, rep *Report) error {
	var b strings.Builder
	o := rep.Options
	fmt.Fprintf(&b, "Model: %s.  \n", describeModel(o.Model, rep.Manifest))
	fmt.Fprintf(&b, "Schedule %s; prompt %d tokens, %d new tokens per row (greedy, EOS disabled); %d warm-up + %d measured rounds, medians; device %s, threads %s, ONNX Runtime %s.\n\n",
		o.Schedule, o.PromptLen, o.Gen, o.Warmup, o.Reps, orDefault(o.Device, "cpu"), threads(o.Threads), rep.ORTVersion)

	ratios, batches := axes(rep.Rows)
	byKey := map[[2]float64]Row{}
	for _, r := range plainRows(rep.Rows) {
		byKey[[2]float64{float64(r.Batch), r.Ratio}] = r
	}
	b.WriteString("Decode tokens/s (realized speedup over full depth at the same batch):\n\n| batch |")
	for _, r := range ratios {
		fmt.Fprintf(&b, " %s |", ratioHeader(r))
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---|", len(ratios)))
	b.WriteString("\n")
	for _, bs := range batches {
		fmt.Fprintf(&b, "| %d |", bs)
		for _, r := range ratios {
			row, ok := byKey[[2]float64{float64(bs), r}]
			switch {
			case !ok:
				b.WriteString(" – |")
			case r == 1:
				fmt.Fprintf(&b, " %.2f |", row.DecodeTPS)
			default:
				fmt.Fprintf(&b, " %.2f (%.2f×) |", row.DecodeTPS, row.Speedup)
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("\nAll rows:\n\n| batch | ratio | kept layers | prefill tok/s | decode tok/s | TTFT ms | KV MiB | speedup | ideal | efficiency | mono decode tok/s | overhead % | weight MB/token | roofline % |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range plainRows(rep.Rows) {
		mono, over := "–", "–"
		if r.MonoDecodeTPS != nil {
			mono, over = fmt.Sprintf("%.2f", *r.MonoDecodeTPS), fmt.Sprintf("%+.1f", *r.OverheadPct)
		}
		fmt.Fprintf(&b, "| %d | %s | %d | %.1f | %.2f | %.0f | %.1f | %.2f | %.2f | %.2f | %s | %s | %.1f | %s |\n",
			r.Batch, fmtRatio(r.Ratio), len(r.KeptLayers), r.PrefillTPS, r.DecodeTPS, r.TTFTMillis,
			float64(r.KVBytes)/(1<<20), r.Speedup, r.IdealSpeedup, r.Efficiency, mono, over,
			float64(r.WeightBytesPerToken)/1e6, rooflineCell(r))
	}
	if rep.Bandwidth != nil {
		fmt.Fprintf(&b, "\nMemory bandwidth: %s.\n", rep.Bandwidth)
	}
	if fused := fusedRows(rep.Rows); len(fused) > 0 {
		b.WriteString("\nFused decoding (one graph per decode step; speedup over fused full depth, gain over the per-layer row and, at full depth, the monolithic graph):\n\n")
		b.WriteString("| batch | ratio | kept layers | prefill tok/s | decode tok/s | speedup | vs per-layer | vs mono | RSS MiB |\n")
		b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range fused {
			fmt.Fprintf(&b, "| %d | %s | %d | %.1f | %.2f | %.2f | %s | %s | %.0f |\n", r.Batch, fmtRatio(r.Ratio), len(r.KeptLayers),
				r.PrefillTPS, r.DecodeTPS, r.Speedup, gain(r), times(r.FusedMonoGain), float64(r.RSSBytes)/(1<<20))
		}
	}
	if lossless := losslessRows(rep.Rows); len(lossless) > 0 {
		b.WriteString("\nLossless decoding (speedup over plain full-depth decoding at the same batch):\n\n")
		b.WriteString("| batch | draft ratio | draft | decode tok/s | speedup | drafts accepted | tokens per pass | draft top-1 agreement by position | KV MiB |\n")
		b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
		for _, r := range lossless {
			fmt.Fprintf(&b, "| %d | %s | %d | %.2f | %.2f | %s | %s | %s | %.1f |\n", r.Batch, fmtRatio(r.Ratio), r.Draft,
				r.DecodeTPS, r.Speedup, pct(r.AcceptanceRate), num(r.TokensPerPass), agreement(r.DraftAgreement), float64(r.KVBytes)/(1<<20))
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WritePlot writes a PNG of decode tokens/s versus ratio, one line per
// batch size, to path.
func WritePlot(path string, rep *Report) error {
	p := plot.New()
	p.Title.Text = "strata decode throughput (" + rep.Manifest.DType + ", " + rep.Options.Schedule + ")"
	p.X.Label.Text = "speedup ratio r"
	p.Y.Label.Text = "decode tokens/s"
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	_, batches := axes(rep.Rows)
	for i, bs := range batches {
		var pts plotter.XYs
		for _, r := range plainRows(rep.Rows) {
			if r.Batch == bs {
				pts = append(pts, plotter.XY{X: r.Ratio, Y: r.DecodeTPS})
			}
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("plot batch %d: %w", bs, err)
		}
		c := plotutil.Color(i)
		line.Color, points.Color = c, c
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(fmt.Sprintf("batch %d", bs), line, points)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Color = color.Black
	ratios, _ := axes(rep.Rows)
	var ticks []plot.Tick
	for _, r := range ratios {
		ticks = append(ticks, plot.Tick{Value: r, Label: fmtRatio(r)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if err := p.Save(6*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("write plot %s: %w", path, err)
	}
	return nil
}

// WriteFile creates path and writes to it with write.
func WriteFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// axes returns the distinct ratios and batch sizes of rows, ascending.
func axes(rows []Row) (ratios []float64, batches []int) {
	for _, r := range rows {
		ratios = append(ratios, r.Ratio)
		batches = append(batches, r.Batch)
	}
	slices.Sort(ratios)
	slices.Sort(batches)
	return slices.Compact(ratios), slices.Compact(batches)
}

func fmtRatio(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }

func ratioHeader(r float64) string {
	if r == 1 {
		return "full"
	}
	return fmtRatio(r) + "×"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func threads(n int) string {
	if n == 0 {
		return "ORT default"
	}
	return strconv.Itoa(n)
}

// plainRows are the rows of plain (not lossless) decoding.
func plainRows(rows []Row) []Row {
	var out []Row
	for _, r := range rows {
		if !r.Lossless && !r.Fused {
			out = append(out, r)
		}
	}
	return out
}

// fusedRows are the rows decoded through fused graphs.
func fusedRows(rows []Row) []Row {
	var out []Row
	for _, r := range rows {
		if r.Fused {
			out = append(out, r)
		}
	}
	return out
}

// gain formats a fused row's gain over per-layer decoding.
func gain(r Row) string { return times(r.FusedGain) }

// times formats a ratio as "1.23×", "–" when there is none.
func times(g *float64) string {
	if g == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f×", *g)
}

// losslessRows are the rows of lossless decoding.
func losslessRows(rows []Row) []Row {
	var out []Row
	for _, r := range rows {
		if r.Lossless {
			out = append(out, r)
		}
	}
	return out
}

func pct(p *float64) string {
	if p == nil {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100**p)
}

func num(p *float64) string {
	if p == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f", *p)
}

func agreement(a []float64) string {
	parts := make([]string, len(a))
	for i, x := range a {
		parts[i] = fmt.Sprintf("%.0f%%", 100*x)
	}
	return strings.Join(parts, " ")
}

func rooflineCell(r Row) string {
	if r.BandwidthGBps == 0 {
		return "–"
	}
	if r.RooflineSuspect {
		return "?"
	}
	return fmt.Sprintf("%.0f", r.RooflinePct)
}
