package main

import (
	"fmt"
	"regexp"
)

// Verse is one verse position of a testament: its OSIS reference and its entry index.
type Verse struct {
	Ref   string // e.g. "Gen.1.1"
	Book  string // OSIS book id, e.g. "Gen"
	Index int    // entry index in the testament
}

var (
	bookHeadRe    = regexp.MustCompile(`<div\b[^>]*\btype="book"[^>]*>`)
	chapterHeadRe = regexp.MustCompile(`<chapter\b[^>]*>`)
	osisIDRe      = regexp.MustCompile(`\bosisID="([^"]+)"`)
	eIDRe         = regexp.MustCompile(`\beID="`)
)

// Layout walks a testament whose book and chapter heading entries carry OSIS
// markers (<div type="book" osisID=…/> and <chapter osisID=…/>) and returns the
// position of every verse. wantBooks/wantChapters/wantVerses are the totals of the
// expected versification (KJV: OT 39/929/23145, NT 27/260/7957); a mismatch is an
// error, so a module with another versification or without heading markers is refused.
func Layout(t *Testament, wantBooks, wantChapters, wantVerses int) ([]Verse, error) {
	var verses []Verse
	book, chapter := "", ""
	verse, books, chapters := 0, 0, 0
	// Entries 0 and 1 are the module and testament headings.
	for i := 2; i < t.Len(); i++ {
		raw, err := t.Entry(i)
		if err != nil {
			return nil, fmt.Errorf("layout: %w", err)
		}
		// The closing markers (<div eID=… type="book"/>, <chapter eID=…/>) sit in
		// the last verse of a book or chapter; only opening markers make headings.
		if id := openingID(bookHeadRe, raw); id != "" {
			book, chapter = id, ""
			books++
			continue
		}
		if id := openingID(chapterHeadRe, raw); id != "" {
			if book == "" {
				return nil, fmt.Errorf("layout: %s entry %d: chapter %s before any book", t.name, i, id)
			}
			chapter = id
			verse = 0
			chapters++
			continue
		}
		if chapter == "" {
			return nil, fmt.Errorf("layout: %s entry %d: verse outside a chapter", t.name, i)
		}
		verse++
		verses = append(verses, Verse{Ref: fmt.Sprintf("%s.%d", chapter, verse), Book: book, Index: i})
	}
	if books != wantBooks || chapters != wantChapters || len(verses) != wantVerses {
		return nil, fmt.Errorf("layout: %s has %d books, %d chapters, %d verses; want %d, %d, %d (not KJV versification?)",
			t.name, books, chapters, len(verses), wantBooks, wantChapters, wantVerses)
	}
	return verses, nil
}

// openingID returns the osisID of the first opening (non-eID) marker matched by re
// in raw, or "" when there is none.
func openingID(re *regexp.Regexp, raw string) string {
	for _, m := range re.FindAllString(raw, -1) {
		if eIDRe.MatchString(m) {
			continue
		}
		if id := osisIDRe.FindStringSubmatch(m); id != nil {
			return id[1]
		}
	}
	return ""
}

// Pair is one aligned verse: English and Spanish plain text.
type Pair struct {
	Ref string `json:"ref"`
	EN  string `json:"en"`
	ES  string `json:"es"`
	// Book is the OSIS book id, used for the split and not written out.
	Book string `json:"-"`
}

// Align pairs the verses of two testaments that share one versification. The
// verse positions come from the English module's headings; the Spanish module must
// have the same number of entries and, wherever it carries a chapter marker, the
// same chapter at the same entry. Verses empty on either side are skipped. Drop
// capitals are fixed on the Spanish side only (English "LORD" is not a drop cap).
func Align(en, es *Testament, verses []Verse) ([]Pair, int, error) {
	if en.Len() != es.Len() {
		return nil, 0, fmt.Errorf("align: %s has %d entries, %s has %d: versifications differ", en.name, en.Len(), es.name, es.Len())
	}
	for i := 2; i < es.Len(); i++ {
		rawES, err := es.Entry(i)
		if err != nil {
			return nil, 0, fmt.Errorf("align: %w", err)
		}
		idES := openingID(chapterHeadRe, rawES)
		if idES == "" {
			continue
		}
		rawEN, err := en.Entry(i)
		if err != nil {
			return nil, 0, fmt.Errorf("align: %w", err)
		}
		if idEN := openingID(chapterHeadRe, rawEN); idEN != idES {
			return nil, 0, fmt.Errorf("align: entry %d is chapter %s in %s but %q in %s", i, idES, es.name, idEN, en.name)
		}
	}
	var pairs []Pair
	skipped := 0
	for _, v := range verses {
		rawEN, err := en.Entry(v.Index)
		if err != nil {
			return nil, 0, fmt.Errorf("align %s: %w", v.Ref, err)
		}
		rawES, err := es.Entry(v.Index)
		if err != nil {
			return nil, 0, fmt.Errorf("align %s: %w", v.Ref, err)
		}
		p := Pair{Ref: v.Ref, Book: v.Book, EN: StripMarkup(rawEN), ES: FixDropCaps(StripMarkup(rawES))}
		if p.EN == "" || p.ES == "" {
			skipped++
			continue
		}
		pairs = append(pairs, p)
	}
	return pairs, skipped, nil
}
