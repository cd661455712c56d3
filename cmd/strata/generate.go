package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/engine/requests"
)

func generateCommand() *cli.Command {
	flags := append(modelFlags(false),
		&cli.StringFlag{Name: "prompt", Aliases: []string{"p"}, Usage: "prompt text (or give it as the last argument)"},
		&cli.StringFlag{Name: "prompt-ids", Usage: "prompt as token ids, e.g. 1,2,3 (no tokenizer, nothing added)"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object: token_ids, text, kept_layers, stop_reason, stats"},
	)
	flags = append(flags, scheduleFlags()...)
	flags = append(flags, samplingFlags()...)
	return &cli.Command{
		Name:      "generate",
		Usage:     "generate text, decoding through the layers of a skipping schedule",
		ArgsUsage: "[TEXT]",
		Description: "The prompt runs through every layer; each new token runs through the layers the schedule keeps.\n" +
			"Without --model the built-in English→Spanish model is used (exported into the user cache on first use):\n\n" +
			"   strata generate \"In the beginning God created the heaven and the earth.\"",
		Flags:  flags,
		Action: runGenerate,
	}
}

func runGenerate(c *cli.Context) error {
	req, err := requestFromFlags(c)
	if err != nil {
		return err
	}
	text := c.String("prompt")
	if c.Args().Len() > 1 {
		return fmt.Errorf("give the prompt as one argument (quote it), not %d", c.Args().Len())
	}
	if c.Args().Present() {
		if text != "" {
			return errors.New("give the prompt either with --prompt or as an argument, not both")
		}
		text = c.Args().First()
	}
	switch {
	case c.IsSet("prompt-ids") && text != "":
		return errors.New("give either --prompt-ids or a text prompt, not both")
	case c.IsSet("prompt-ids"):
		if req.PromptIDs, err = parseIDs(c.String("prompt-ids")); err != nil {
			return fmt.Errorf("--prompt-ids: %w", err)
		}
	case text == "":
		return errors.New("no prompt: pass TEXT, --prompt TEXT or --prompt-ids 1,2,3")
	}

	m, format, err := loadModel(c)
	if err != nil {
		return err
	}
	defer m.Close()
	if req.PromptIDs == nil {
		req.Prompt = format(text)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	out := c.App.Writer
	jsonOut := c.Bool("json")
	var onToken func(engine.Token) error
	if !jsonOut {
		onToken = func(t engine.Token) error {
			_, err := fmt.Fprint(out, t.Text)
			return err
		}
	}
	if req.PromptIDs == nil {
		if err := requests.CheckPromptBytes(text, m.Manifest.MaxSeqLen); err != nil {
			return inputError(err)
		}
	}
	res, err := m.GenerateStream(ctx, req, onToken)
	if err != nil {
		if !jsonOut {
			fmt.Fprintln(out)
		}
		if ctx.Err() != nil {
			return interrupted(errors.New("interrupted: generation stopped before it finished"))
		}
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		return enc.Encode(res)
	}
	if !strings.HasSuffix(res.Text, "\n") {
		fmt.Fprintln(out)
	}
	s := res.Stats
	layers := fmt.Sprintf("layers %v of %d", res.KeptLayers, m.Manifest.NumLayers)
	if spec := s.Group.Lossless; spec != nil {
		accept := 0.0
		if spec.Drafted > 0 {
			accept = float64(spec.Accepted) / float64(spec.Drafted)
		}
		layers = fmt.Sprintf("lossless, draft layers %v of %d, %.0f%% of drafts accepted", res.KeptLayers, m.Manifest.NumLayers, 100*accept)
	}
	fmt.Fprintf(c.App.ErrWriter, "[%d tokens, stop: %s, %s, prefill %.1f tok/s, decode %.1f tok/s, first token %.0f ms]\n",
		len(res.TokenIDs), res.StopReason, layers, s.PrefillTPS, s.DecodeTPS, s.TTFTMillis)
	return nil
}
