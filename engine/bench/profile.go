package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
)

// OpTime is the time ONNX Runtime spent in one operator type, summed over
// every node of that type in every traced session.
type OpTime struct {
	Op     string  `json:"op"`
	Micros int64   `json:"us"`
	Runs   int     `json:"runs"`
	Share  float64 `json:"share"` // of all session run time
}

// Profile summarizes ONNX Runtime traces: time per operator type, the
// sessions' total run time, and what of it no node accounts for (between
// nodes: scheduling, input and output binding).
type Profile struct {
	Ops         []OpTime `json:"ops"`
	RunMicros   int64    `json:"run_us"`
	Runs        int      `json:"runs"`
	OutsideOps  int64    `json:"outside_ops_us"`
	SessionFile []string `json:"files"`
}

// traceEvent is one event of ORT's Chrome-trace JSON.
type traceEvent struct {
	Cat  string `json:"cat"`
	Name string `json:"name"`
	Dur  int64  `json:"dur"`
	Args struct {
		OpName string `json:"op_name"`
	} `json:"args"`
}

// SummarizeProfiles reads the traces ORT wrote and sums node kernel times
// by operator type and session runs ("model_run").
func SummarizeProfiles(paths []string) (Profile, error) {
	p := Profile{SessionFile: paths}
	byOp := map[string]*OpTime{}
	var inOps int64
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return p, err
		}
		var events []traceEvent
		if err := json.Unmarshal(data, &events); err != nil {
			return p, fmt.Errorf("%s: %w", path, err)
		}
		for _, e := range events {
			switch {
			case e.Cat == "Session" && e.Name == "model_run":
				p.RunMicros += e.Dur
				p.Runs++
			case e.Cat == "Node" && e.Args.OpName != "" && len(e.Name) > len("_kernel_time") && e.Name[len(e.Name)-len("_kernel_time"):] == "_kernel_time":
				o := byOp[e.Args.OpName]
				if o == nil {
					o = &OpTime{Op: e.Args.OpName}
					byOp[e.Args.OpName] = o
				}
				o.Micros += e.Dur
				o.Runs++
				inOps += e.Dur
			}
		}
	}
	for _, o := range byOp {
		if p.RunMicros > 0 {
			o.Share = float64(o.Micros) / float64(p.RunMicros)
		}
		p.Ops = append(p.Ops, *o)
	}
	slices.SortFunc(p.Ops, func(a, b OpTime) int { return cmp.Compare(b.Micros, a.Micros) })
	p.OutsideOps = p.RunMicros - inOps
	return p, nil
}

// WriteProfile prints a profile summary.
func WriteProfile(w io.Writer, p Profile) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operator\tms\tnode runs\tshare of session runs\t")
	for _, o := range p.Ops {
		fmt.Fprintf(tw, "%s\t%.1f\t%d\t%.1f%%\t\n", o.Op, float64(o.Micros)/1000, o.Runs, 100*o.Share)
	}
	if p.RunMicros > 0 {
		fmt.Fprintf(tw, "outside nodes\t%.1f\t\t%.1f%%\t\n", float64(p.OutsideOps)/1000, 100*float64(p.OutsideOps)/float64(p.RunMicros))
	}
	fmt.Fprintf(tw, "session runs\t%.1f\t%d\t\t\n", float64(p.RunMicros)/1000, p.Runs)
	return tw.Flush()
}
