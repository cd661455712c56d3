package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"
)

// progressInterval is how often progress is logged when stderr is not a
// terminal (a terminal gets a bar redrawn on every step).
var progressInterval = 10 * time.Second

// progress draws a one-line progress bar on a terminal; elsewhere (a log
// file, a pipe) it prints a progress line at most every progressInterval,
// and a summary at the end.
type progress struct {
	w           io.Writer
	noun        string // what is counted: "requests", "sentences"
	total, done int
	// tokens counts generated tokens; -1 when the caller does not know them.
	tokens    int
	start     time.Time
	lastPrint time.Time
	tty       bool
}

func newProgress(w io.Writer, noun string, total, done int) *progress {
	p := &progress{w: w, noun: noun, total: total, done: done, start: time.Now()}
	p.lastPrint = p.start
	p.tty = isTerminal(w)
	p.draw()
	return p
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// add counts one finished item that generated tokens tokens.
func (p *progress) add(tokens int) {
	p.done++
	p.tokens += tokens
	p.draw()
}

// set replaces the counts (for callers that report done of total).
func (p *progress) set(done, total int) {
	p.done, p.total = done, total
	p.draw()
}

// rate is the "N tokens, X tok/s" part, empty when tokens are not counted.
func (p *progress) rate() string {
	if p.tokens < 0 {
		return ""
	}
	return fmt.Sprintf(", %d tokens, %.1f tok/s", p.tokens, float64(p.tokens)/max(time.Since(p.start).Seconds(), 1e-9))
}

func (p *progress) draw() {
	if !p.tty {
		if now := time.Now(); p.done > 0 && now.Sub(p.lastPrint) >= progressInterval {
			p.lastPrint = now
			fmt.Fprintf(p.w, "strata: %d/%d %s%s, %.0fs\n", p.done, p.total, p.noun, p.rate(), now.Sub(p.start).Seconds())
		}
		return
	}
	const width = 30
	filled := width * min(p.done, p.total) / max(1, p.total)
	bar := bytes.Repeat([]byte("="), filled)
	bar = append(bar, bytes.Repeat([]byte(" "), width-filled)...)
	fmt.Fprintf(p.w, "\r[%s] %d/%d %s%s", bar, p.done, p.total, p.noun, p.rate())
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprintln(p.w)
		return
	}
	fmt.Fprintf(p.w, "strata: %d/%d %s done%s in %.1fs\n", p.done, p.total, p.noun, p.rate(), time.Since(p.start).Seconds())
}
