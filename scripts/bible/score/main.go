// Command score prints sacreBLEU-compatible corpus BLEU and chrF of a hypothesis
// file against one or more reference files (one segment per line), using
// engine/metrics. Usage: go run ./scripts/bible/score -hyp HYP -ref REF [-ref REF2] [-json]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/strata-llm/strata/engine/metrics"
)

type refList []string

func (r *refList) String() string     { return strings.Join(*r, ",") }
func (r *refList) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "score:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	hypPath := fs.String("hyp", "", "hypothesis file, one segment per line")
	var refPaths refList
	fs.Var(&refPaths, "ref", "reference file, one segment per line (repeatable)")
	asJSON := fs.Bool("json", false, "print a JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hypPath == "" || len(refPaths) == 0 {
		return fmt.Errorf("-hyp and at least one -ref are required")
	}
	hyps, err := readLines(*hypPath)
	if err != nil {
		return err
	}
	var refs [][]string
	for _, p := range refPaths {
		r, err := readLines(p)
		if err != nil {
			return err
		}
		refs = append(refs, r)
	}
	bleu, err := metrics.CorpusBLEU(hyps, refs)
	if err != nil {
		return err
	}
	chrf, err := metrics.CorpusChrF(hyps, refs)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(out).Encode(map[string]any{"bleu": bleu.Score, "chrf": chrf, "segments": len(hyps), "bleu_signature": bleu.String()})
	}
	_, err = fmt.Fprintf(out, "%s\nchrF2 = %.2f\n", bleu, chrf)
	return err
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return lines, nil
}
