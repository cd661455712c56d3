// Command bible builds English→Spanish verse pairs from two SWORD zText modules
// (King James Version and Reina-Valera 1909, both KJV-versified) and writes
// train/dev/test JSONL splits of {"ref","en","es"} records. Test and dev are whole
// held-out books. scripts/bible/fetch.sh downloads the Debian packages and runs it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Default held-out books (OSIS ids). Genesis stays in train.
const (
	defaultTestBooks = "Ruth,Jonah,Titus,Phlm"
	defaultDevBooks  = "Obad,Hag,2John,3John,Jude"
)

// kjvTotals holds the book/chapter/verse totals of the KJV versification per testament.
var kjvTotals = map[string][3]int{
	"ot": {39, 929, 23145},
	"nt": {27, 260, 7957},
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bible:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("bible", flag.ContinueOnError)
	enDir := fs.String("en", "", "zText module directory of the English (source) text")
	esDir := fs.String("es", "", "zText module directory of the Spanish (target) text")
	out := fs.String("out", "", "output directory for train.jsonl, dev.jsonl, test.jsonl")
	testBooks := fs.String("test-books", defaultTestBooks, "comma-separated OSIS book ids held out for test")
	devBooks := fs.String("dev-books", defaultDevBooks, "comma-separated OSIS book ids held out for dev")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *enDir == "" || *esDir == "" || *out == "" {
		return fmt.Errorf("-en, -es and -out are required")
	}
	pairs, err := BuildPairs(*enDir, *esDir)
	if err != nil {
		return err
	}
	splits, err := Split(pairs, strings.Split(*testBooks, ","), strings.Split(*devBooks, ","))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	for _, name := range []string{"train", "dev", "test"} {
		path := filepath.Join(*out, name+".jsonl")
		if err := WriteJSONL(path, splits[name]); err != nil {
			return err
		}
		slog.Info("wrote split", "file", path, "pairs", len(splits[name]))
	}
	return nil
}

// BuildPairs reads both testaments of the two modules and aligns them by reference.
func BuildPairs(enDir, esDir string) ([]Pair, error) {
	var all []Pair
	for _, prefix := range []string{"ot", "nt"} {
		en, err := OpenTestament(enDir, prefix)
		if err != nil {
			return nil, err
		}
		es, err := OpenTestament(esDir, prefix)
		if err != nil {
			return nil, err
		}
		want := kjvTotals[prefix]
		verses, err := Layout(en, want[0], want[1], want[2])
		if err != nil {
			return nil, err
		}
		pairs, skipped, err := Align(en, es, verses)
		if err != nil {
			return nil, err
		}
		slog.Info("aligned testament", "testament", prefix, "verses", len(verses), "pairs", len(pairs), "skipped_empty", skipped)
		all = append(all, pairs...)
	}
	return all, nil
}

// Split assigns every pair to test, dev or train by its book. A held-out book
// that matches no pair is an error (a typo would silently leak it into train).
func Split(pairs []Pair, testBooks, devBooks []string) (map[string][]Pair, error) {
	role := map[string]string{}
	for _, b := range testBooks {
		if b = strings.TrimSpace(b); b != "" {
			role[b] = "test"
		}
	}
	for _, b := range devBooks {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if role[b] == "test" {
			return nil, fmt.Errorf("split: book %s is in both test and dev", b)
		}
		role[b] = "dev"
	}
	seen := map[string]bool{}
	out := map[string][]Pair{"train": nil, "dev": nil, "test": nil}
	for _, p := range pairs {
		r, ok := role[p.Book]
		if !ok {
			r = "train"
		}
		seen[p.Book] = true
		out[r] = append(out[r], p)
	}
	for b := range role {
		if !seen[b] {
			return nil, fmt.Errorf("split: held-out book %q not found", b)
		}
	}
	return out, nil
}

// WriteJSONL writes one JSON object per line.
func WriteJSONL(path string, pairs []Pair) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, p := range pairs {
		if err := enc.Encode(p); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
