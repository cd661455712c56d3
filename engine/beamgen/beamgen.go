// Package beamgen is an Apache Beam transform that runs strata generation
// requests on a pipeline's workers.
//
// Generate takes a PCollection of request JSON lines (the input format of
// `strata batch`) and returns two PCollections of JSON lines: one result per
// request, in the shape `strata batch` writes, and one {"id", "error"} row
// per request that could not run. A bad request never fails a bundle; only
// a model package that cannot be loaded does, at Setup.
//
// Each worker process loads the model package once, however many DoFn
// instances the runner creates in it, and shares it between them. Requests
// are batched within a bundle (see generateFn).
package beamgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/requests"
)

// DefaultBatchSize is the batch size when Options.BatchSize is 0.
const DefaultBatchSize = 8

// Options configure Generate. They are serialized into the pipeline, so a
// remote worker sees the same values.
type Options struct {
	// Model is the model package directory as the workers see it (a path
	// on their local filesystem: staged into the container image, a
	// mounted volume, or copied there before the job starts).
	Model string
	// Engine are the engine.Load options. Engine.MaxBatch is set from
	// BatchSize; Engine.Threads 0 means WorkerThreads(Concurrency), worked
	// out on each worker.
	Engine engine.Options
	// Defaults fill the fields a request leaves out (max_tokens, sampling,
	// stop strings, schedule), as the command-line values do in `strata batch`.
	Defaults engine.Request
	// Raw leaves text prompts as they are instead of wrapping them in the
	// package's prompt template.
	Raw bool
	// BatchSize is how many requests decode together (0: DefaultBatchSize).
	BatchSize int
	// Concurrency is how many batches one worker process decodes at once
	// (0: 1). Intra-op threads default to the process's cores divided by it.
	Concurrency int
	// MemoryBytes is the memory one worker process may use for the model's
	// weights plus the KV caches of Concurrency full-depth batches (0: no
	// budget beyond the engine's own check against available memory). The
	// batch size shrinks to fit it; Setup fails when not even one request fits.
	MemoryBytes int64
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	o.Engine.MaxBatch = o.BatchSize
	return o
}

// WorkerThreads returns the intra-op thread count that lets concurrent
// batches share the process's CPUs without oversubscribing them: the cores
// the Go runtime may use (GOMAXPROCS, which follows a container's CPU
// limit) divided by concurrent, at least 1.
func WorkerThreads(concurrent int) int {
	return max(1, runtime.GOMAXPROCS(0)/max(1, concurrent))
}

func init() {
	register.DoFn4x1[context.Context, string, func(string), func(string), error](&generateFn{})
	register.Emitter1[string]()
}

// Generate runs every request line of requests (a PCollection<string>) and
// returns the result lines and the error lines, both PCollection<string>.
// The inputs must be in the global window (a batch pipeline): results are
// emitted as batches fill up and at the end of each bundle, in the global
// window.
func Generate(s beam.Scope, requests beam.PCollection, opts Options) (results, errs beam.PCollection) {
	s = s.Scope("strata.Generate")
	return beam.ParDo2(s, &generateFn{Opts: opts.withDefaults()}, requests)
}

// ErrorRow is an error output line: the request's id (empty when the line
// was not a JSON object with one) and why it could not run.
type ErrorRow struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

// generateFn batches the requests of a bundle: each ProcessElement parses
// and checks one request, and a batch runs when BatchSize requests are
// waiting or the bundle ends. Bundle-level batching needs no shuffle and no
// keys, so it works on every runner and keeps Beam's own parallelism (the
// runner splits the input into bundles across workers); a GroupIntoBatches
// step would add a keyed shuffle of every request and needs state and
// timers from the runner. Runners make batch bundles far larger than a
// decode batch, so batches are full except the last of each bundle.
type generateFn struct {
	Opts Options

	model   *sharedModel
	batch   int
	pending []engine.Request
}

// Setup loads (or shares) the worker's model. An error here fails the
// pipeline with a message naming the package.
func (f *generateFn) Setup(ctx context.Context) error {
	m, batch, err := acquire(f.Opts)
	if err != nil {
		return fmt.Errorf("strata.Generate setup: %w", err)
	}
	f.model, f.batch = m, batch
	return nil
}

// ProcessElement parses one request line. A bad line goes to the error
// output; a good one waits for a batch.
func (f *generateFn) ProcessElement(ctx context.Context, line string, emitResult, emitError func(string)) error {
	req, err := f.parse(line)
	if err != nil {
		emitError(errorLine(req.ID, err))
		return nil
	}
	f.pending = append(f.pending, req)
	if len(f.pending) >= f.batch {
		return f.flush(ctx, emitResult, emitError)
	}
	return nil
}

// FinishBundle runs the requests still waiting.
func (f *generateFn) FinishBundle(ctx context.Context, emitResult, emitError func(string)) error {
	return f.flush(ctx, emitResult, emitError)
}

// Teardown releases the worker's model; the last DoFn instance to go closes it.
func (f *generateFn) Teardown() error {
	if f.model == nil {
		return nil
	}
	err := release(f.model)
	f.model = nil
	return err
}

// parse decodes a request line as `strata batch` does: unknown fields are
// errors and fields left out take the defaults.
func (f *generateFn) parse(line string) (engine.Request, error) {
	// Every line may be a file's first (a runner splits files into lines).
	text := requests.StripBOM(bytes.TrimSpace([]byte(line)))
	req, err := requests.Decode(text, f.Opts.Defaults)
	if err != nil {
		// Name the request if its id can be read at all.
		var idOnly struct {
			ID string `json:"id"`
		}
		json.NewDecoder(bytes.NewReader(text)).Decode(&idOnly)
		return engine.Request{ID: idOnly.ID}, fmt.Errorf("not a request: %w", err)
	}
	if req.ID == "" {
		return req, errors.New("request has no id")
	}
	if req.Prompt == "" && req.PromptIDs == nil {
		return req, fmt.Errorf("request %q has neither prompt nor prompt_ids", req.ID)
	}
	if req.PromptIDs == nil {
		if err := requests.CheckPromptBytes(req.Prompt, f.model.model.Manifest.MaxSeqLen); err != nil {
			return req, err
		}
		if !f.Opts.Raw {
			req.Prompt = f.model.model.Manifest.FormatPrompt(req.Prompt)
		}
	}
	if err := f.model.model.Check(req); err != nil {
		return req, err
	}
	return req, nil
}

// flush decodes the waiting requests. A batch that fails as a whole is run
// again one request at a time, so one request's error reaches only its own
// row; only cancellation fails the bundle.
func (f *generateFn) flush(ctx context.Context, emitResult, emitError func(string)) error {
	reqs := f.pending
	f.pending = nil
	if len(reqs) == 0 {
		return nil
	}
	results, err := f.model.generate(ctx, reqs)
	if err == nil {
		for _, r := range results {
			emitOne(r, emitResult, emitError)
		}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, req := range reqs {
		res, err := f.model.generate(ctx, []engine.Request{req})
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			emitError(errorLine(req.ID, err))
		default:
			emitOne(res[0], emitResult, emitError)
		}
	}
	return nil
}

// emitOne emits a result line as `strata batch` writes it, or an error row
// if the result cannot be encoded.
func emitOne(r engine.Result, emitResult, emitError func(string)) {
	line, err := encodeLine(r)
	if err != nil {
		emitError(errorLine(r.ID, fmt.Errorf("encode result: %w", err)))
		return
	}
	emitResult(line)
}

func errorLine(id string, err error) string {
	line, _ := encodeLine(ErrorRow{ID: id, Error: err.Error()}) // two strings always encode
	return line
}

func encodeLine(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}
