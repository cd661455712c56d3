// Command encode tokenizes fine-tuning data with a Hugging Face tokenizer.json
// (strata's own tokenizer, which matches Hugging Face's ids). It reads JSONL
// records {"prompt": text, "response": text} and writes one
// {"prompt_ids": [...], "response_ids": [...]} line per record, in order: the
// prompt with the post-processor's special tokens (BOS and the like), the
// response without them. Other fields ("ref", ...) are copied through.
// Records that already carry prompt_ids/response_ids pass unchanged.
//
// With -bible, records are {"ref","en","es"} verse pairs (scripts/bible) and
// are first turned into the built-in model's prompt/response text.
//
//	go run ./scripts/train/encode -tokenizer DIR_OR_JSON [-bible] < in.jsonl > out.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/strata-llm/strata/engine/tokenizer"
)

// bibleTemplate is the built-in model's prompt (models/default FormatPrompt).
const bibleTemplate = "English: %s\nSpanish:"

func main() {
	tok := flag.String("tokenizer", "", "tokenizer.json, or a directory holding one")
	bible := flag.Bool("bible", false, `input records are {"ref","en","es"} verse pairs`)
	flag.Parse()
	if err := run(*tok, *bible, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "encode:", err)
		os.Exit(1)
	}
}

func run(tokPath string, bible bool, in io.Reader, out io.Writer) error {
	if tokPath == "" {
		return errors.New("-tokenizer is required")
	}
	tk, err := tokenizer.Load(tokPath)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for line := 1; sc.Scan(); line++ {
		raw := sc.Bytes()
		if len(raw) == 0 {
			continue
		}
		rec := map[string]any{}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if err := encodeRecord(tk, rec, bible); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if err := enc.Encode(rec); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return w.Flush()
}

func encodeRecord(tk *tokenizer.Tokenizer, rec map[string]any, bible bool) error {
	if bible {
		en, ok1 := rec["en"].(string)
		es, ok2 := rec["es"].(string)
		if !ok1 || !ok2 {
			return errors.New(`verse pair needs string fields "en" and "es"`)
		}
		delete(rec, "en")
		delete(rec, "es")
		rec["prompt"], rec["response"] = fmt.Sprintf(bibleTemplate, en), es
	}
	_, hasP := rec["prompt_ids"]
	_, hasR := rec["response_ids"]
	if hasP && hasR {
		return nil
	}
	prompt, ok1 := rec["prompt"].(string)
	response, ok2 := rec["response"].(string)
	if !ok1 || !ok2 {
		return errors.New(`record needs string fields "prompt" and "response" (or "prompt_ids" and "response_ids")`)
	}
	p, err := tk.Encode(prompt, true)
	if err != nil {
		return fmt.Errorf("encode prompt: %w", err)
	}
	r, err := tk.Encode(response, false)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	rec["prompt_ids"], rec["response_ids"] = nonNil(p.IDs), nonNil(r.IDs)
	return nil
}

func nonNil(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}
