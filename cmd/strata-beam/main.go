// Command strata-beam runs `strata batch` as an Apache Beam pipeline: it
// reads request lines, runs them on the pipeline's workers with one model
// load per worker, and writes the result lines and the error lines.
//
//	strata-beam --model PKG --input REQUESTS.jsonl --output RESULTS.jsonl
//
// With no --runner it runs in-process on Beam's prism runner. Beam's usual
// flags (--runner, --endpoint, --environment_type, --project, --region,
// --temp_location, --staging_location, --sdk_container_image, …) choose and
// configure another runner; docs/distributed.md shows Dataflow, Flink and
// Spark. The flags use Go's flag package because Beam registers its own
// there.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/beamgen"
	"github.com/strata-llm/strata/engine/requests"
	"github.com/strata-llm/strata/models/manifest"
)

// config holds the command's own flags.
type config struct {
	model, input, output, errors string
	opts                         beamgen.Options
	memory                       string
	stop                         stringList
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func registerFlags(fs *flag.FlagSet) *config {
	c := &config{}
	fs.StringVar(&c.model, "model", "", "model package directory as the workers see it (required)")
	fs.StringVar(&c.input, "input", "", "requests, one JSON object per line, as for strata batch (a path or glob any Beam filesystem reads; required)")
	fs.StringVar(&c.output, "output", "", "results, one JSON object per line (required)")
	fs.StringVar(&c.errors, "errors", "", "the {\"id\", \"error\"} lines of requests that could not run (default: OUTPUT with .errors before its extension)")
	o := &c.opts
	fs.StringVar(&o.Engine.Device, "device", "cpu", "execution provider: cpu, cuda or webgpu")
	fs.StringVar(&o.Engine.ORTLib, "ort-lib", "", "path to libonnxruntime on the workers (default: $STRATA_ORT_LIB, the user cache, system paths)")
	fs.IntVar(&o.Engine.Threads, "threads", 0, "ONNX Runtime intra-op threads per worker process (0: the worker's cores / --concurrency)")
	fs.IntVar(&o.BatchSize, "batch-size", beamgen.DefaultBatchSize, "requests decoded together")
	fs.IntVar(&o.Concurrency, "concurrency", 1, "batches one worker process decodes at once, sharing one loaded model")
	fs.StringVar(&c.memory, "memory", "0", "memory per worker process for weights plus KV caches, e.g. 6GiB or 512MiB; the batch size shrinks to fit (0: no budget)")
	fs.BoolVar(&o.Raw, "raw", false, "do not wrap text prompts in the package's prompt template")
	d := &o.Defaults
	fs.StringVar(&d.Schedule, "schedule", "", "which layers decoding keeps: uls, balanced, top, bottom or layers:0,3,7,… (default: the package's, else uls)")
	fs.Float64Var(&d.Speedup, "speedup", 0, "target speedup ratio R (1: all layers; default: the package's)")
	fs.IntVar(&d.MaxTokens, "max-tokens", engine.DefaultMaxTokens, "maximum new tokens of a request that leaves max_tokens out")
	fs.Float64Var(&d.Temperature, "temperature", 0, "sampling temperature; 0 is greedy")
	fs.IntVar(&d.TopK, "top-k", 0, "keep the K most likely tokens (0: off)")
	fs.Float64Var(&d.TopP, "top-p", 0, "nucleus sampling: keep tokens up to probability P, in (0,1] (0: off)")
	fs.Float64Var(&d.MinP, "min-p", 0, "drop tokens less likely than P × the most likely one (0: off)")
	fs.Float64Var(&d.RepetitionPenalty, "repetition-penalty", 0, "penalise tokens already seen, as in Hugging Face (1: off)")
	fs.Uint64Var(&d.Seed, "seed", 0, "random seed for sampling")
	fs.Var(&c.stop, "stop", "stop when this string appears (repeatable)")
	return c
}

// check validates the flags and fills the derived options.
func (c *config) check() error {
	for _, f := range []struct{ name, value string }{{"model", c.model}, {"input", c.input}, {"output", c.output}} {
		if f.value == "" {
			return fmt.Errorf("--%s is required", f.name)
		}
	}
	if c.errors == "" {
		c.errors = errorsPath(c.output)
	}
	if samePath(c.errors, c.output) {
		return fmt.Errorf("--errors %s: must differ from --output", c.errors)
	}
	o := &c.opts
	o.Model = c.model
	o.Defaults.Stop = c.stop
	if o.BatchSize < 1 {
		return fmt.Errorf("--batch-size %d: must be at least 1", o.BatchSize)
	}
	if o.Concurrency < 1 {
		return fmt.Errorf("--concurrency %d: must be at least 1", o.Concurrency)
	}
	if o.Engine.Threads < 0 {
		return fmt.Errorf("--threads %d: must be at least 0", o.Engine.Threads)
	}
	mem, err := parseBytes(c.memory)
	if err != nil {
		return fmt.Errorf("--memory %s: %w", c.memory, err)
	}
	o.MemoryBytes = mem
	// The same checks as strata batch's flags; the schedule once more
	// against the package below, where it can be read.
	if err := requests.CheckDefaults(o.Defaults, 0); err != nil {
		return fmt.Errorf("--%w", err)
	}
	// A local input is checked here so a typo is one line, not a failed job.
	if !isRemote(c.input) && !strings.ContainsAny(c.input, "*?[") {
		st, err := os.Stat(c.input)
		if err != nil {
			return fmt.Errorf("--input: %w", err)
		}
		if st.IsDir() {
			return fmt.Errorf("--input %s is a directory: give a requests file or a glob such as %s", c.input, filepath.Join(c.input, "*.jsonl"))
		}
		for _, f := range []struct{ flag, path string }{{"--output", c.output}, {"--errors", c.errors}} {
			if samePath(c.input, f.path) {
				return fmt.Errorf("%s %s is the requests file --input %s: results need a file of their own", f.flag, f.path, c.input)
			}
		}
	}
	// In-process, the workers see this machine's files: read the package's
	// manifest now rather than fail in the first bundle.
	if inProcess() {
		man, err := manifest.Load(c.model)
		if err != nil {
			return fmt.Errorf("--model: %w", err)
		}
		if mem > 0 {
			if err := beamgen.CheckMemory(c.model, mem); err != nil {
				return fmt.Errorf("--memory %s: %w", c.memory, err)
			}
		}
		if err := requests.CheckDefaults(o.Defaults, man.NumLayers); err != nil {
			return fmt.Errorf("--%w", err)
		}
		// A bare rule (--schedule top) takes the package's fine-tuned ratio,
		// as in strata batch; a package without one is refused here.
		if _, err := engine.RuleRatio(c.model, o.Defaults.Schedule, o.Defaults.Speedup); errors.Is(err, engine.ErrNoRatio) {
			return fmt.Errorf("--schedule %s needs --speedup R: the package has no fine-tuned default ratio (uls.default_schedule in manifest.json)", o.Defaults.Schedule)
		}
	}
	return nil
}

// isRemote reports whether path names a file on a Beam filesystem other
// than the local one (gs://, s3://, …).
func isRemote(path string) bool { return strings.Contains(path, "://") }

// samePath reports whether two local paths name one file: the same file
// through links or relative paths, or, for files that do not exist yet,
// the same cleaned absolute path.
func samePath(a, b string) bool {
	if isRemote(a) || isRemote(b) {
		return a == b
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(sa, sb)
	}
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	return errA == nil && errB == nil && absA == absB
}

// inProcess reports whether the pipeline runs on this machine: prism
// (the default) with no job service endpoint given.
func inProcess() bool {
	r := *runners.Runner
	return (r == "" || r == "prism" || r == "PrismRunner") && *jobopts.Endpoint == ""
}

// errorsPath puts ".errors" before the extension: out.jsonl → out.errors.jsonl.
func errorsPath(output string) string {
	slash := strings.LastIndexByte(output, '/')
	if dot := strings.LastIndexByte(output, '.'); dot > slash+1 {
		return output[:dot] + ".errors" + output[dot:]
	}
	return output + ".errors"
}

var sizeRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B?|B)?$`)

// parseBytes reads "6GiB", "512MiB", "2G" or a plain byte count; K, M, G
// and T are powers of 1024 with or without the i.
func parseBytes(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, errors.New("not a size like 6GiB or 512MiB")
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	shift := map[byte]uint{'K': 10, 'M': 20, 'G': 30, 'T': 40}
	if m[2] != "" {
		v *= float64(uint64(1) << shift[m[2][0]])
	}
	return int64(v), nil
}

// pipeline reads the requests, generates and writes both outputs to the
// paths given.
func pipeline(c *config, output, errs string) *beam.Pipeline {
	p, s := beam.NewPipelineWithRoot()
	lines := textio.Read(s, c.input)
	results, errRows := beamgen.Generate(s, lines, c.opts)
	textio.Write(s, output, results)
	textio.Write(s, errs, errRows)
	return p
}

// output is one of the command's output files. A local one is written under
// a temporary name next to it and renamed once the pipeline has succeeded,
// so that a failed or interrupted run leaves an earlier run's file as it
// was, and what is there afterwards is all this run's.
type output struct{ path, tmp string }

func newOutput(path string) output {
	if isRemote(path) {
		return output{path: path, tmp: path}
	}
	return output{path: path, tmp: filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.tmp-%d", filepath.Base(path), os.Getpid()))}
}

// commit renames the finished file into place. Beam writes nothing for an
// empty output: that becomes an empty file.
func (o output) commit() error {
	if o.tmp == o.path {
		return nil
	}
	if _, err := os.Stat(o.tmp); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(o.tmp, nil, 0o644); err != nil {
			return err
		}
	}
	return os.Rename(o.tmp, o.path)
}

// discard removes the temporary file of a failed run.
func (o output) discard() {
	if o.tmp != o.path {
		os.Remove(o.tmp)
	}
}

func main() {
	c := registerFlags(flag.CommandLine)
	flag.Parse()
	// On a worker, Init runs the SDK harness and never returns.
	beam.Init()
	if err := c.check(); err != nil {
		fail(err)
	}
	out, errs := newOutput(c.output), newOutput(c.errors)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := beamx.Run(ctx, pipeline(c, out.tmp, errs.tmp)); err != nil || ctx.Err() != nil {
		out.discard()
		errs.discard()
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "strata-beam: interrupted; %s and %s are as they were before this run\n", c.output, c.errors)
			os.Exit(130)
		}
		fail(err)
	}
	for _, o := range []output{errs, out} {
		if err := o.commit(); err != nil {
			out.discard()
			errs.discard()
			fail(fmt.Errorf("write %s: %w", o.path, err))
		}
	}
}

// setupErr finds the transform's own message in a runner's failure report.
var setupErr = regexp.MustCompile(`strata\.Generate setup: [^\n]*`)

// fail prints one line and exits 1. A runner reports a failed worker with
// a long trace; the transform's own message is what a user needs.
func fail(err error) {
	msg := err.Error()
	if m := setupErr.FindString(msg); m != "" {
		msg = m
	}
	fmt.Fprintln(os.Stderr, "strata-beam:", strings.Join(strings.Fields(msg), " "))
	os.Exit(1)
}
