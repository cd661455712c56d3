package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine/tokenizer"
)

func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "tokenize",
		Usage: "encode text with a Hugging Face tokenizer.json and show the tokens",
		Description: "Encodes --text with the tokenizer (a tokenizer.json file, or a model package directory\n" +
			"holding one). Special tokens of the post-processor (such as BOS) are added, as Hugging Face's\n" +
			"encode(text) does by default; --no-special leaves them out.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer.json or a directory holding it", Required: true},
			&cli.StringFlag{Name: "text", Usage: "text to encode", Required: true},
			&cli.BoolFlag{Name: "json", Usage: `print {"ids": [...], "tokens": [...]}`},
			&cli.BoolFlag{Name: "no-special", Usage: "do not add the post-processor's special tokens"},
		},
		Action: runTokenize,
	}
}

func runTokenize(c *cli.Context) error {
	if c.Args().Present() {
		return errors.New("tokenize takes no arguments; give the text with --text")
	}
	tk, err := tokenizer.Load(c.String("tokenizer"))
	if err != nil {
		return err
	}
	enc, err := tk.Encode(c.String("text"), !c.Bool("no-special"))
	if err != nil {
		return err
	}
	out := c.App.Writer
	if c.Bool("json") {
		ids, tokens := enc.IDs, enc.Tokens
		if ids == nil {
			ids, tokens = []int{}, []string{}
		}
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false) // keep <s> readable
		if err := enc.Encode(struct {
			IDs    []int    `json:"ids"`
			Tokens []string `json:"tokens"`
		}{ids, tokens}); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "#\tid\ttoken\toffsets\ttext")
	text := c.String("text")
	for i, id := range enc.IDs {
		o := enc.Offsets[i]
		fmt.Fprintf(w, "%d\t%d\t%s\t%d-%d\t%s\n", i, id, strconv.Quote(enc.Tokens[i]), o[0], o[1], strconv.Quote(text[o[0]:o[1]]))
	}
	fmt.Fprintf(w, "%d tokens\n", len(enc.IDs))
	return w.Flush()
}
