package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/internal/filelock"
	"github.com/strata-llm/strata/models/manifest"
)

// producer is the first line of a batch results file: what produced the
// results, so that a resume with another model or other settings is caught.
type producer struct {
	Batch producerInfo `json:"strata_batch"`
}

type producerInfo struct {
	// Package identifies the model package: a hash of manifest.json, the
	// tokenizer and the names and sizes of the graph files.
	Package string `json:"package"`
	// Model is the package directory when the file was created (shown, not compared).
	Model string `json:"model"`
	// Settings are the request defaults from the command line.
	Settings batchSettings `json:"settings"`
}

// batchSettings are the command-line settings that change results.
type batchSettings struct {
	MaxTokens int      `json:"max_tokens"`
	Stop      []string `json:"stop,omitempty"`
	engine.SamplingOptions
	Schedule string `json:"schedule,omitempty"`
	// Speedup is --speedup, or the ratio --deadline picked when the file
	// was started (a resume keeps it, so both parts run at one ratio).
	Speedup  float64 `json:"speedup,omitempty"`
	Raw      bool    `json:"raw,omitempty"`
	Lossless bool    `json:"lossless,omitempty"`
	Deadline string  `json:"deadline,omitempty"`
}

// deadlineText is how a --deadline is recorded ("" for none).
func deadlineText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

// packageIdentity hashes what makes a package's results what they are,
// without reading the weights: manifest.json, tokenizer.json and the name
// and size of every file the manifest lists.
func packageIdentity(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return "", fmt.Errorf("read model package %s: %w", dir, err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return "", fmt.Errorf("model package %s: %w", dir, err)
	}
	h := sha256.New()
	h.Write(data)
	files := append([]string{m.Files.Embed, m.Files.Head, m.Files.HeadLast, m.Files.Tokenizer}, m.Files.Layers...)
	for _, f := range files {
		if f == "" {
			continue
		}
		p, err := manifest.Resolve(dir, f)
		if err != nil {
			return "", err
		}
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("model package %s: %w", dir, err)
		}
		fmt.Fprintf(h, "\n%s %d", f, st.Size())
		if data, err := os.Stat(p + ".data"); err == nil {
			fmt.Fprintf(h, " %d", data.Size())
		}
		if f == m.Files.Tokenizer {
			tok, err := os.ReadFile(p)
			if err != nil {
				return "", fmt.Errorf("model package %s: %w", dir, err)
			}
			h.Write(tok)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// diff names the settings in which a and b differ ("the model package",
// "temperature 0.7 → 0").
func (a producerInfo) diff(b producerInfo) []string {
	var out []string
	if a.Package != b.Package {
		out = append(out, fmt.Sprintf("model package %s → %s", a.Model, b.Model))
	}
	ja, _ := json.Marshal(a.Settings)
	jb, _ := json.Marshal(b.Settings)
	var ma, mb map[string]any
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		if !reflect.DeepEqual(ma[k], mb[k]) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		out = append(out, fmt.Sprintf("%s %v → %v", k, show(ma[k]), show(mb[k])))
	}
	return out
}

func show(v any) string {
	if v == nil {
		return "unset"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// lineFile is what a results file is written through: the open --out, or
// in tests a file whose writes fail part-way.
type lineFile interface {
	Write([]byte) (int, error)
	Truncate(size int64) error
	Sync() error
}

// resultsFile is the open, locked --out of a batch run.
type resultsFile struct {
	f    *os.File
	w    lineFile // f, unless a test replaces it
	path string
	// size is the length of the file's complete lines: a write that fails
	// part-way is cut back to it.
	size int64
	// created is true when this run created the file; it is removed again
	// if the run ends before writing any result.
	created, wrote bool
	// header is the producer line, nil when the file has none yet.
	header *producerInfo
	// done holds the ids whose last line is a result; failed those whose
	// last line is an error.
	done, failed map[string]bool
	// superseded counts lines that a later line of the same id replaced.
	superseded int
}

// openResults opens and locks the results file out for appending, refusing
// it when it is the requests file in (also through a link) or when another
// process holds it, and reads the ids already there. A last line cut short
// by a crash is removed so the file stays valid JSONL.
func openResults(in, out string) (*resultsFile, error) {
	if err := checkNotRequests(in, out); err != nil {
		return nil, err
	}
	_, statErr := os.Stat(out)
	f, err := os.OpenFile(out, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open results: %w", err)
	}
	r := &resultsFile{f: f, w: f, path: out, created: errors.Is(statErr, os.ErrNotExist)}
	if err := filelock.TryLock(f); err != nil {
		r.created = false // another run's file: never remove it
		f.Close()
		if errors.Is(err, filelock.ErrLocked) {
			return nil, fmt.Errorf("--out %s is in use by another strata batch (it holds the file's lock); wait for it or choose another --out", out)
		}
		if !errors.Is(err, filelock.ErrUnsupported) {
			return nil, err
		}
	}
	if err := r.read(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// read loads the ids already in the file.
func (r *resultsFile) read() error {
	r.done, r.failed = map[string]bool{}, map[string]bool{}
	st, err := r.f.Stat()
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	data := make([]byte, st.Size())
	if _, err := r.f.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return fmt.Errorf("read results: %w", err)
	}
	if end := bytes.LastIndexByte(data, '\n') + 1; end < len(data) {
		if err := r.f.Truncate(int64(end)); err != nil {
			return fmt.Errorf("drop the torn last line of %s: %w", r.path, err)
		}
		data = data[:end]
	}
	r.size = int64(len(data))
	seen := map[string]bool{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var v struct {
			ID    *string       `json:"id"`
			Error string        `json:"error"`
			Batch *producerInfo `json:"strata_batch"`
		}
		if err := json.Unmarshal(line, &v); err != nil {
			return fmt.Errorf("%s line %d is not a result: %w", r.path, i+1, err)
		}
		switch {
		case v.Batch != nil && i == 0:
			r.header = v.Batch
			continue
		case v.ID == nil:
			return fmt.Errorf("%s line %d is not a result (no id)", r.path, i+1)
		}
		id := *v.ID
		if seen[id] {
			r.superseded++
		}
		seen[id] = true
		r.done[id], r.failed[id] = v.Error == "", v.Error != ""
	}
	return nil
}

// check refuses to resume a file that holds results written by another
// package or with other settings, or that does not record what wrote them,
// unless allowMismatch. A file started under --deadline keeps the ratio the
// deadline picked then: want takes it.
func (r *resultsFile) check(want *producerInfo, allowMismatch bool) error {
	if r.header == nil {
		if len(r.done)+len(r.failed) > 0 && !allowMismatch {
			return fmt.Errorf("--out %s holds results but does not record what produced them; use --allow-mismatch to append to it anyway, or choose another --out", r.path)
		}
		return nil
	}
	if h := r.header.Settings; h.Deadline != "" && h.Deadline == want.Settings.Deadline && want.Settings.Speedup == 0 {
		want.Settings.Speedup = h.Speedup
	}
	if d := r.header.diff(*want); len(d) > 0 && !allowMismatch {
		return fmt.Errorf("--out %s was produced with other settings (%s); resuming would mix results: use --allow-mismatch to append anyway, or choose another --out", r.path, strings.Join(d, ", "))
	}
	return nil
}

// claim gives a file without results want as its first line.
func (r *resultsFile) claim(want producerInfo) error {
	if r.header != nil || len(r.done)+len(r.failed) > 0 {
		return nil
	}
	if err := r.appendLine(producer{Batch: want}); err != nil {
		return err
	}
	r.header = &want
	return nil
}

// write appends the result or error line of request id.
func (r *resultsFile) write(id string, v any) error {
	r.wrote = true
	if r.done[id] || r.failed[id] {
		r.superseded++
	}
	return r.appendLine(v)
}

// appendLine appends v as one JSON line with a single write and syncs it.
// A write that fails part-way (a full disk) is cut back to the last
// complete line, so the file stays JSONL and a rerun resumes from it.
func (r *resultsFile) appendLine(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	n, err := r.w.Write(buf.Bytes())
	if err != nil {
		if n > 0 {
			if terr := r.w.Truncate(r.size); terr != nil {
				return fmt.Errorf("write results to %s: %w (the partial last line could not be removed: %v; the next run drops it)", r.path, err, terr)
			}
		}
		return fmt.Errorf("write results to %s: %w", r.path, err)
	}
	r.size += int64(n)
	if err := r.w.Sync(); err != nil {
		return fmt.Errorf("write results to %s: %w", r.path, err)
	}
	return nil
}

// checkNotRequests refuses an output path that is the requests file in,
// compared by file identity: through symbolic and hard links and relative
// paths alike.
func checkNotRequests(in, out string) error {
	if sameFile(in, out) {
		return usageError(fmt.Errorf("--out %s is the requests file --in %s: results need a file of their own", out, in))
	}
	return nil
}

// sameFile reports whether paths a and b name one existing file.
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// compact rewrites the file keeping only the last line of every id, once a
// run has finished every request (retried requests leave their old error
// line behind until then). The new file is complete before it replaces the
// old one; the lock is held until then.
func (r *resultsFile) compact() error {
	if r.superseded == 0 {
		return nil
	}
	data, err := os.ReadFile(r.path)
	if err != nil {
		return fmt.Errorf("compact results: %w", err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	last := map[string]int{}
	ids := make([]*string, len(lines))
	for i, line := range lines {
		var v struct {
			ID *string `json:"id"`
		}
		if json.Unmarshal(line, &v) == nil && v.ID != nil {
			ids[i] = v.ID
			last[*v.ID] = i
		}
	}
	var buf bytes.Buffer
	for i, line := range lines {
		if ids[i] == nil || last[*ids[i]] == i {
			buf.Write(line)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(r.path), "."+filepath.Base(r.path)+".tmp-")
	if err != nil {
		return fmt.Errorf("compact results: %w", err)
	}
	_, err = tmp.Write(buf.Bytes())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if st, serr := r.f.Stat(); serr == nil {
			os.Chmod(tmp.Name(), st.Mode().Perm())
		}
		err = os.Rename(tmp.Name(), r.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("compact results: %w", err)
	}
	return nil
}

// Close releases the lock, removing the file when this run created it and
// wrote no result.
func (r *resultsFile) Close() error {
	if r.created && !r.wrote {
		os.Remove(r.path)
	}
	return r.f.Close()
}
