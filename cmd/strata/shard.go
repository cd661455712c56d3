package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
)

// completionIndexEnv is set by Kubernetes in each pod of an Indexed Job.
const completionIndexEnv = "JOB_COMPLETION_INDEX"

// shardFlags split a batch across machines.
func shardFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "shard", Usage: "run only shard I of N (`I/N`, I from 0): the requests whose id hashes to I; results go to OUT with .shard-I-of-N before its extension"},
		&cli.IntFlag{Name: "shards", Usage: "the shard count N; the shard index comes from $" + completionIndexEnv + " (a Kubernetes Indexed Job) unless --shard gives it"},
		&cli.BoolFlag{Name: "merge", Usage: "join the --shards N shard outputs of --out into --out, in --in order, checking no id is missing or repeated; runs nothing"},
	}
}

// shardRequests applies the shard flags after the requests are read. With
// --merge it merges the shard outputs and reports done. With a shard it
// keeps that shard's requests and points --out at the shard's file.
func shardRequests(c *cli.Context, reqs []engine.Request) (_ []engine.Request, done bool, err error) {
	index, n, err := shardFromFlags(c)
	if err != nil {
		return nil, false, err
	}
	out := c.String("out")
	if c.Bool("merge") {
		if n == 0 {
			return nil, false, errors.New("--merge needs --shards N")
		}
		if err := checkNotRequests(c.String("in"), out); err != nil {
			return nil, false, err
		}
		return nil, true, mergeShards(c, reqs, out, n)
	}
	if n == 0 {
		return reqs, false, nil
	}
	var mine []engine.Request
	for _, r := range reqs {
		if shardOf(r.ID, n) == index {
			mine = append(mine, r)
		}
	}
	if err := c.Set("out", shardPath(out, index, n)); err != nil {
		return nil, false, err
	}
	return mine, false, nil
}

// shardFromFlags returns the shard index and count (n 0: not sharded).
func shardFromFlags(c *cli.Context) (index, n int, err error) {
	n = c.Int("shards")
	if c.IsSet("shards") && n < 1 {
		return 0, 0, fmt.Errorf("--shards %d: must be at least 1", n)
	}
	if spec := c.String("shard"); spec != "" || c.IsSet("shard") {
		i, m, ok := strings.Cut(spec, "/")
		index, err1 := strconv.Atoi(i)
		count, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || count < 1 || index < 0 || index >= count {
			return 0, 0, usageError(fmt.Errorf("--shard %q: want I/N with 0 ≤ I < N, e.g. 0/3", spec))
		}
		if n != 0 && n != count {
			return 0, 0, fmt.Errorf("--shard %s disagrees with --shards %d", spec, n)
		}
		if c.Bool("merge") {
			return 0, 0, errors.New("--merge joins every shard: give --shards N, not --shard")
		}
		return index, count, nil
	}
	if n == 0 || c.Bool("merge") {
		return 0, n, nil
	}
	env, ok := os.LookupEnv(completionIndexEnv)
	if !ok {
		return 0, 0, fmt.Errorf("--shards %d: give --shard I/%d or set %s", n, n, completionIndexEnv)
	}
	index, err = strconv.Atoi(env)
	if err != nil || index < 0 || index >= n {
		return 0, 0, fmt.Errorf("%s=%q: want an index from 0 to %d for --shards %d", completionIndexEnv, env, n-1, n)
	}
	return index, n, nil
}

// shardOf places a request id in one of n shards by its FNV-1a hash, so a
// request's shard depends only on its id and n.
func shardOf(id string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(id))
	return int(h.Sum64() % uint64(n))
}

// shardPath puts ".shard-I-of-N" before the extension of out.
func shardPath(out string, index, n int) string {
	ext := filepath.Ext(out)
	return fmt.Sprintf("%s.shard-%d-of-%d%s", strings.TrimSuffix(out, ext), index, n, ext)
}

// mergeShards writes the shard outputs of out into out in request order.
// Every request must have exactly one line in its shard's file; otherwise
// nothing is written and the error names the missing, repeated and
// unknown ids. A last line cut short by a crash counts as missing. The
// shards' first lines, which record the model package and settings that
// produced them, must agree (--allow-mismatch merges anyway).
func mergeShards(c *cli.Context, reqs []engine.Request, out string, n int) error {
	var first *producerInfo // the first shard's header
	firstPath := ""
	lines := map[string][]byte{}
	var dups, unknown []string
	known := map[string]bool{}
	for _, r := range reqs {
		known[r.ID] = true
	}
	for i := 0; i < n; i++ {
		path := shardPath(out, i, n)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // its requests are reported missing (a shard with none writes no file)
		}
		if err != nil {
			return fmt.Errorf("read shard %d: %w", i, err)
		}
		data = data[:bytes.LastIndexByte(data, '\n')+1] // drop a torn last line
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, min(1<<20, maxResultLine)), maxResultLine)
		line := 0
		for sc.Scan() {
			line++
			text := bytes.TrimSpace(sc.Bytes())
			if len(text) == 0 {
				continue
			}
			var r struct {
				ID    string        `json:"id"`
				Batch *producerInfo `json:"strata_batch"`
			}
			if err := json.Unmarshal(text, &r); err != nil {
				return fmt.Errorf("%s line %d is not a result: %w", path, line, err)
			}
			if r.Batch != nil { // the header saying what produced the shard
				if first == nil {
					first, firstPath = r.Batch, path
				} else if d := first.diff(*r.Batch); len(d) > 0 && !c.Bool("allow-mismatch") {
					return fmt.Errorf("merge: %s and %s were produced with other settings (%s); merging would mix results: rerun the shard, or use --allow-mismatch to merge anyway", firstPath, path, strings.Join(d, ", "))
				}
				continue
			}
			switch {
			case !known[r.ID]:
				unknown = append(unknown, r.ID)
			case lines[r.ID] != nil:
				dups = append(dups, r.ID)
			default:
				lines[r.ID] = append([]byte(nil), text...)
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return fmt.Errorf("%s line %d is longer than %d bytes, the most one result line may hold", path, line+1, maxResultLine)
			}
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
	var missing []string
	for _, r := range reqs {
		if lines[r.ID] == nil {
			missing = append(missing, r.ID)
		}
	}
	var problems []string
	for _, p := range []struct {
		what string
		ids  []string
	}{{"missing (rerun their shards)", missing}, {"repeated", dups}, {"not in the requests", unknown}} {
		if len(p.ids) > 0 {
			problems = append(problems, fmt.Sprintf("%d ids %s: %s", len(p.ids), p.what, idList(p.ids)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("merge %d shards of %s: %s", n, out, strings.Join(problems, "; "))
	}
	var buf bytes.Buffer
	for _, r := range reqs {
		buf.Write(lines[r.ID])
		buf.WriteByte('\n')
	}
	if err := writeFileAtomic(out, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "strata: merged %d results from %d shards into %s\n", len(reqs), n, out)
	return nil
}

// maxResultLine is the longest shard result line read.
var maxResultLine = 64 << 20

// idList shows up to five ids.
func idList(ids []string) string {
	const show = 5
	if len(ids) <= show {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:show], ", ") + fmt.Sprintf(", … (%d more)", len(ids)-show)
}

// writeFileAtomic writes through a temporary file in the same directory and
// renames it, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write merged results: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write merged results: %w", err)
	}
	return nil
}
