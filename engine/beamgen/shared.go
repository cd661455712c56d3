package beamgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/strata-llm/strata/engine"
)

// sharedModel is a model loaded once per worker process and shared by every
// DoFn instance with the same options. sem bounds the batches it decodes
// at once to Options.Concurrency.
type sharedModel struct {
	key   string
	model *engine.Model
	batch int
	refs  int
	sem   chan struct{}
}

var loaded = struct {
	sync.Mutex
	byKey map[string]*sharedModel
}{byKey: map[string]*sharedModel{}}

// loads counts engine.Load calls in this process (tests check one per worker).
var loads int

// acquire returns the process's model for o, loading it on first use, and
// the batch size that fits o.MemoryBytes.
func acquire(o Options) (*sharedModel, int, error) {
	if o.Engine.Threads <= 0 {
		o.Engine.Threads = WorkerThreads(o.Concurrency)
	}
	keyBytes, err := json.Marshal(struct {
		Model       string
		Engine      engine.Options
		Concurrency int
		MemoryBytes int64
	}{o.Model, o.Engine, o.Concurrency, o.MemoryBytes})
	if err != nil {
		return nil, 0, err
	}
	key := string(keyBytes)
	loaded.Lock()
	defer loaded.Unlock()
	if sm, ok := loaded.byKey[key]; ok {
		sm.refs++
		return sm, sm.batch, nil
	}
	if o.Model == "" {
		return nil, 0, fmt.Errorf("no model package given")
	}
	m, err := engine.Load(o.Model, o.Engine)
	loads++
	if err != nil {
		if !strings.Contains(err.Error(), o.Model) {
			err = fmt.Errorf("model package %s: %w", o.Model, err)
		}
		return nil, 0, err
	}
	batch, err := fitBatch(m, o)
	if err != nil {
		m.Close()
		return nil, 0, fmt.Errorf("model package %s: %w", o.Model, err)
	}
	slog.Info("strata.Generate: loaded model package", "dir", o.Model, "batch", batch,
		"concurrency", o.Concurrency, "threads", o.Engine.Threads, "device", o.Engine.Device)
	sm := &sharedModel{key: key, model: m, batch: batch, refs: 1, sem: make(chan struct{}, o.Concurrency)}
	loaded.byKey[key] = sm
	return sm, batch, nil
}

// release drops one reference and closes the model with the last.
func release(sm *sharedModel) error {
	loaded.Lock()
	defer loaded.Unlock()
	sm.refs--
	if sm.refs > 0 {
		return nil
	}
	delete(loaded.byKey, sm.key)
	return sm.model.Close()
}

// generate decodes one batch once a concurrency slot is free.
func (sm *sharedModel) generate(ctx context.Context, reqs []engine.Request) ([]engine.Result, error) {
	select {
	case sm.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-sm.sem }()
	return sm.model.GenerateBatch(ctx, reqs, nil)
}

// fitBatch returns the largest batch size up to o.BatchSize whose
// full-depth KV caches, o.Concurrency of them, fit in o.MemoryBytes next to
// the package's weights.
func fitBatch(m *engine.Model, o Options) (int, error) {
	if o.MemoryBytes <= 0 {
		return o.BatchSize, nil
	}
	weights, err := packageBytes(o.Model)
	if err != nil {
		return 0, err
	}
	full, err := engine.ParseSchedule("uls", 1, m.Manifest.NumLayers)
	if err != nil {
		return 0, err
	}
	kv := func(b int) int64 { return int64(o.Concurrency) * m.KVBytes(b, full) }
	for b := o.BatchSize; b >= 1; b-- {
		if weights+kv(b) <= o.MemoryBytes {
			return b, nil
		}
	}
	return 0, fmt.Errorf("memory budget %.2f GiB is too small: the weights take %.2f GiB and %d batch(es) of one request %.2f GiB of KV cache",
		gib(o.MemoryBytes), gib(weights), o.Concurrency, gib(kv(1)))
}

// CheckMemory refuses a memory budget that cannot hold the weights of the
// package in dir, before any worker loads it.
func CheckMemory(dir string, budget int64) error {
	weights, err := packageBytes(dir)
	if err != nil {
		return err
	}
	if weights >= budget {
		return fmt.Errorf("memory budget of %d bytes cannot hold the package's weights (%.2f GiB) and a KV cache", budget, gib(weights))
	}
	return nil
}

// packageBytes sums the sizes of the files in a package directory (the
// weights, loaded into memory by ONNX Runtime).
func packageBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of the package: %w", err)
	}
	return n, nil
}

func gib(n int64) float64 { return float64(n) / (1 << 30) }
