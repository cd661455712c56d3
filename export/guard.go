package export

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-llm/strata/internal/filelock"
	"github.com/strata-llm/strata/internal/hostmem"
	"github.com/strata-llm/strata/models/family"
	"github.com/strata-llm/strata/models/graph"
)

// ErrNonFinite is wrapped by the error for a weight holding NaN or ±Inf.
var ErrNonFinite = errors.New("holds a non-finite value")

// finiteSource checks every tensor it serves for NaN and ±Inf, so that a
// broken checkpoint fails at export, naming the tensor, instead of
// producing a package whose logits are all NaN. The scan is one pass over
// values that are about to be converted and written anyway.
type finiteSource struct{ graph.WeightSource }

func (s finiteSource) Tensor(name string) ([]float32, []int, error) {
	data, shape, err := s.WeightSource.Tensor(name)
	if err != nil {
		return data, shape, err
	}
	if i := firstNonFinite(data); i >= 0 {
		return nil, nil, fmt.Errorf("tensor %q %w (%v at element %d): the checkpoint is corrupt", name, ErrNonFinite, data[i], i)
	}
	return data, shape, nil
}

// firstNonFinite returns the index of the first NaN or ±Inf, or -1.
func firstNonFinite(data []float32) int {
	for i, v := range data {
		// v-v is 0 for every finite v and NaN for NaN and ±Inf.
		if v-v != 0 {
			return i
		}
	}
	return -1
}

// checkMemory refuses an export whose largest single allocation (one
// weight matrix as float32 plus its converted copy, or the rotary tables
// of maxSeq positions) would not fit in the machine's available memory.
func checkMemory(model family.Model, maxSeq int) error {
	var largest int64
	var name string
	for _, w := range model.Weights() {
		n := int64(1)
		for _, d := range w.Shape {
			n *= int64(d)
		}
		if n > largest {
			largest, name = n, w.Name
		}
	}
	if err := hostmem.Check(fmt.Sprintf("exporting tensor %s (%d values)", name, largest), 2*4*largest); err != nil {
		return err
	}
	rope := 2 * 4 * int64(maxSeq) * int64(model.Manifest().HeadDim/2)
	if err := hostmem.Check(fmt.Sprintf("the rotary tables for max sequence length %d", maxSeq), 2*rope); err != nil {
		return err
	}
	return nil
}

// lockName is the file inside an export's temporary directory that the
// exporting process holds locked for as long as it works there.
const lockName = ".strata-export.lock"

// tmpPrefix is the name prefix of out's temporary directories.
func tmpPrefix(out string) string { return "." + filepath.Base(out) + ".tmp-" }

// lockTemp creates and locks tmp's lock file. unlock removes it (before the
// directory is renamed into place) and then releases the lock.
func lockTemp(tmp string) (unlock func(), err error) {
	path := filepath.Join(tmp, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create temporary output: %w", err)
	}
	if err := filelock.TryLock(f); err != nil && !errors.Is(err, filelock.ErrUnsupported) {
		f.Close()
		return nil, fmt.Errorf("create temporary output: %w", err)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() {
		os.Remove(path)
		f.Close()
	}, nil
}

// cleanStale removes temporary directories of earlier exports to out that
// died (killed, power cut) before finishing. Only directories that are
// provably an export's and not in use are removed: their name is out's
// temporary prefix, they hold the lock file, and its lock can be taken.
func cleanStale(out string) {
	parent, prefix := filepath.Dir(out), tmpPrefix(out)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) || strings.HasSuffix(e.Name(), ".old") {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if stale(dir) {
			if err := os.RemoveAll(dir); err != nil {
				slog.Warn("could not remove a stale export directory", "dir", dir, "err", err)
				continue
			}
			slog.Info("removed the temporary directory of an interrupted export", "dir", dir)
		}
	}
}

// stale reports whether dir's lock file exists and no process holds it.
func stale(dir string) bool {
	path := filepath.Join(dir, lockName)
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if filelock.TryLock(f) != nil {
		return false
	}
	// The exporter removes the lock file before it renames the directory
	// into place and unlocks only after: a lock file still at its path
	// once locked here belongs to a process that died.
	st, err := os.Stat(path)
	fst, ferr := f.Stat()
	return err == nil && ferr == nil && os.SameFile(st, fst)
}
