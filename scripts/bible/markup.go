package main

import (
	"html"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	// Footnotes and cross references are not part of the verse text.
	noteRe = regexp.MustCompile(`(?s)<note\b[^>]*>.*?</note>`)
	// Headings (book titles, section titles, psalm superscriptions) are dropped as well,
	// in both languages alike, so the pair stays parallel.
	titleRe = regexp.MustCompile(`(?s)<title\b[^>]*>.*?</title>`)
	tagRe   = regexp.MustCompile(`<[^>]*>`)
	spaceRe = regexp.MustCompile(`\s+`)
)

// StripMarkup turns the OSIS (or GBF) markup of one verse into plain text: notes and
// titles are removed with their content, every other tag is removed keeping its
// content, XML entities are decoded, pilcrows dropped and white space collapsed.
func StripMarkup(s string) string {
	s = noteRe.ReplaceAllString(s, " ")
	s = titleRe.ReplaceAllString(s, " ")
	s = gbfRe.ReplaceAllString(s, " ")
	s = tagRe.ReplaceAllString(s, " ")
	s = html.UnescapeString(s)
	s = strings.ReplaceAll(s, "¶", " ")
	s = spaceRe.ReplaceAllString(s, " ")
	s = strings.TrimSpace(s)
	// Removing tags can leave a space before punctuation ("earth ." from "<w>earth</w> .").
	s = spaceBeforePunct.ReplaceAllString(s, "$1")
	return s
}

var (
	// GBF markup uses angle-bracket tokens of two upper-case letters and optional
	// arguments, e.g. <FI>, <Fi>, <WH0430>, <RF>…<Rf>; the note form is removed whole.
	gbfRe            = regexp.MustCompile(`(?s)<RF>.*?<Rf>`)
	spaceBeforePunct = regexp.MustCompile(`\s+([,.;:!?)\]»”’])`)
)

// FixDropCaps rewrites the all-capital opening words that printed Bibles use at the
// start of a chapter ("EN el principio", "Y FUERON acabados") into sentence case
// ("En el principio", "Y fueron acabados"). Only the leading run of upper-case words
// is touched, and only when one of them has two or more letters.
func FixDropCaps(s string) string {
	words := strings.Split(s, " ")
	n := 0
	long := false
	for n < len(words) && isUpperWord(words[n]) {
		if letterCount(words[n]) >= 2 {
			long = true
		}
		n++
	}
	if !long {
		return s
	}
	for i := 0; i < n; i++ {
		w := strings.ToLower(words[i])
		if i == 0 {
			r, size := utf8.DecodeRuneInString(w)
			w = string(unicode.ToUpper(r)) + w[size:]
		}
		words[i] = w
	}
	return strings.Join(words, " ")
}

func isUpperWord(w string) bool {
	letters := 0
	for _, r := range w {
		if unicode.IsLetter(r) {
			if !unicode.IsUpper(r) {
				return false
			}
			letters++
		}
	}
	return letters > 0
}

func letterCount(w string) int {
	n := 0
	for _, r := range w {
		if unicode.IsLetter(r) {
			n++
		}
	}
	return n
}
