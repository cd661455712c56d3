package safetensors

import (
	"github.com/strata-llm/strata/internal/limitread"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// IndexFile is the name of the shard index of a sharded checkpoint.
const IndexFile = "model.safetensors.index.json"

// Index is the content of model.safetensors.index.json.
type Index struct {
	Metadata  map[string]any    `json:"metadata,omitempty"`
	WeightMap map[string]string `json:"weight_map"`
}

// Checkpoint is a set of safetensors files read as one: a single file, or the
// shards listed by an index. It implements llama.WeightSource.
type Checkpoint struct {
	files []*File
	where map[string]*File
	names []string
}

// OpenCheckpoint opens a checkpoint given as a .safetensors file, an index
// JSON file, or a directory holding model.safetensors.index.json,
// model.safetensors, or a single *.safetensors file.
func OpenCheckpoint(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	if !st.IsDir() {
		if strings.HasSuffix(path, ".json") {
			return openIndex(path)
		}
		return openFiles([]string{path})
	}
	if _, err := os.Stat(filepath.Join(path, IndexFile)); err == nil {
		return openIndex(filepath.Join(path, IndexFile))
	}
	single := filepath.Join(path, "model.safetensors")
	if _, err := os.Stat(single); err == nil {
		return openFiles([]string{single})
	}
	matches, err := filepath.Glob(filepath.Join(path, "*.safetensors"))
	if err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", path, err)
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("checkpoint %s holds no *.safetensors file", path)
	case 1:
		return openFiles(matches)
	}
	return nil, fmt.Errorf("checkpoint %s holds %d *.safetensors files but no %s", path, len(matches), IndexFile)
}

// openIndex opens the shards listed by an index file.
func openIndex(indexPath string) (*Checkpoint, error) {
	data, err := limitread.ReadFile(indexPath, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint index: %w", err)
	}
	var idx Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("checkpoint index %s: %w", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("checkpoint index %s: empty weight_map", indexPath)
	}
	dir := filepath.Dir(indexPath)
	shardSet := map[string]bool{}
	for name, shard := range idx.WeightMap {
		if err := checkShardName(shard); err != nil {
			return nil, fmt.Errorf("checkpoint index %s: tensor %q: %w", indexPath, name, err)
		}
		shardSet[shard] = true
	}
	shards := make([]string, 0, len(shardSet))
	for s := range shardSet {
		shards = append(shards, s)
	}
	sort.Strings(shards)
	paths := make([]string, len(shards))
	for i, s := range shards {
		paths[i] = filepath.Join(dir, s)
	}
	c, err := openFiles(paths)
	if err != nil {
		return nil, err
	}
	for name, shard := range idx.WeightMap {
		f, ok := c.where[name]
		if !ok || f.path != filepath.Join(dir, shard) {
			c.Close()
			return nil, fmt.Errorf("checkpoint index %s: tensor %q is not in shard %s", indexPath, name, shard)
		}
	}
	return c, nil
}

// checkShardName accepts only a plain file name next to the index.
func checkShardName(s string) error {
	if s == "" || s != filepath.Base(s) || s == "." || s == ".." || strings.ContainsAny(s, `/\`) {
		return fmt.Errorf("shard name %q must be a plain file name", s)
	}
	return nil
}

func openFiles(paths []string) (*Checkpoint, error) {
	c := &Checkpoint{where: map[string]*File{}}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.files = append(c.files, f)
		for _, name := range f.Names() {
			if prev, dup := c.where[name]; dup {
				c.Close()
				return nil, fmt.Errorf("checkpoint: tensor %q is in both %s and %s", name, prev.path, p)
			}
			c.where[name] = f
			c.names = append(c.names, name)
		}
	}
	return c, nil
}

// Paths returns the paths of the checkpoint's safetensors files, in order.
func (c *Checkpoint) Paths() []string {
	paths := make([]string, len(c.files))
	for i, f := range c.files {
		paths[i] = f.path
	}
	return paths
}

// Names returns every tensor name, shard by shard in file order.
func (c *Checkpoint) Names() []string { return append([]string(nil), c.names...) }

// Has reports whether the checkpoint holds the tensor.
func (c *Checkpoint) Has(name string) bool {
	_, ok := c.where[name]
	return ok
}

// Info describes a tensor without reading it.
func (c *Checkpoint) Info(name string) (TensorInfo, bool) {
	f, ok := c.where[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// Tensor reads one tensor as float32 with its shape.
func (c *Checkpoint) Tensor(name string) ([]float32, []int, error) {
	f, ok := c.where[name]
	if !ok {
		return nil, nil, fmt.Errorf("checkpoint has no tensor %q", name)
	}
	return f.Tensor(name)
}

// Close unmaps every file.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// Metadata returns the value of a "__metadata__" key from the first file
// that sets it ("" when none does).
func (c *Checkpoint) Metadata(key string) string {
	for _, f := range c.files {
		if v, ok := f.header.Metadata[key]; ok {
			return v
		}
	}
	return ""
}
