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
	failed      int // items that ended in an error (not in done)
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

// fail counts one item that ended in an error.
func (p *progress) fail() {
	p.failed++
	p.draw()
}

// counts is "D/T noun" with the failed items named apart from the done ones.
func (p *progress) counts() string {
	s := fmt.Sprintf("%d/%d %s", p.done, p.total, p.noun)
	if p.failed > 0 {
		s += fmt.Sprintf(" (%d failed)", p.failed)
	}
	return s
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
		if now := time.Now(); p.done+p.failed > 0 && now.Sub(p.lastPrint) >= progressInterval {
			p.lastPrint = now
			fmt.Fprintf(p.w, "strata: %s%s, %.0fs\n", p.counts(), p.rate(), now.Sub(p.start).Seconds())
		}
		return
	}
	const width = 30
	filled := width * min(p.done+p.failed, p.total) / max(1, p.total)
	bar := bytes.Repeat([]byte("="), filled)
	bar = append(bar, bytes.Repeat([]byte(" "), width-filled)...)
	fmt.Fprintf(p.w, "\r[%s] %s%s", bar, p.counts(), p.rate())
}

// stop ends a progress that did not finish: a terminal's bar gets its
// newline, and no summary is printed.
func (p *progress) stop() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprintln(p.w)
		return
	}
	failed := ""
	if p.failed > 0 {
		failed = fmt.Sprintf(", %d failed", p.failed)
	}
	fmt.Fprintf(p.w, "strata: %d/%d %s done%s%s in %.1fs\n", p.done, p.total, p.noun, failed, p.rate(), time.Since(p.start).Seconds())
}
