package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeModule writes a zText testament: entries are grouped into blocks
// (blocks[i] holds the entries of block i, in entry order).
func writeModule(t *testing.T, dir, prefix string, blocks [][]string) {
	t.Helper()
	var bzs, bzv, bzz bytes.Buffer
	for bi, entries := range blocks {
		var raw bytes.Buffer
		for _, e := range entries {
			rec := make([]byte, entryRecordSize)
			binary.LittleEndian.PutUint32(rec[0:4], uint32(bi))
			binary.LittleEndian.PutUint32(rec[4:8], uint32(raw.Len()))
			binary.LittleEndian.PutUint16(rec[8:10], uint16(len(e)))
			bzv.Write(rec)
			raw.WriteString(e)
		}
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(raw.Bytes())
		zw.Close()
		rec := make([]byte, blockRecordSize)
		binary.LittleEndian.PutUint32(rec[0:4], uint32(bzz.Len()))
		binary.LittleEndian.PutUint32(rec[4:8], uint32(z.Len()))
		binary.LittleEndian.PutUint32(rec[8:12], uint32(raw.Len()))
		bzs.Write(rec)
		bzz.Write(z.Bytes())
	}
	for ext, b := range map[string][]byte{".bzs": bzs.Bytes(), ".bzv": bzv.Bytes(), ".bzz": bzz.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, prefix+ext), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tinyBible is a two-book testament: Gen with chapters of 2 and 1 verses, Ruth with one of 2.
func tinyBible(verse func(ref string) string) [][]string {
	return [][]string{
		{"", "", `<div osisID="Gen" sID="g1" type="book"/><title>Genesis</title>`, `<chapter osisID="Gen.1" sID="Gen.1"/>`, verse("Gen.1.1"), verse("Gen.1.2"),
			`<chapter osisID="Gen.2" sID="Gen.2"/>`, verse("Gen.2.1") + `<chapter eID="Gen.2"/><div eID="g1" osisID="Gen" type="book"/>`},
		{`<div osisID="Ruth" sID="r1" type="book"/>`, `<chapter osisID="Ruth.1" sID="Ruth.1"/>`, verse("Ruth.1.1"), verse("Ruth.1.2")},
	}
}

func TestTestamentEntries(t *testing.T) {
	dir := t.TempDir()
	blocks := tinyBible(func(ref string) string { return "<w>" + ref + "</w> text" })
	writeModule(t, dir, "ot", blocks)
	tm, err := OpenTestament(dir, "ot")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, b := range blocks {
		want = append(want, b...)
	}
	if tm.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", tm.Len(), len(want))
	}
	for i, w := range want {
		got, err := tm.Entry(i)
		if err != nil {
			t.Fatalf("Entry(%d): %v", i, err)
		}
		if got != w {
			t.Errorf("Entry(%d) = %q, want %q", i, got, w)
		}
	}
	for _, i := range []int{-1, len(want)} {
		if _, err := tm.Entry(i); err == nil {
			t.Errorf("Entry(%d): want an out-of-range error", i)
		}
	}
}

func TestTestamentCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(dir string)
		want   string
	}{
		{"truncated index", func(dir string) { truncate(t, filepath.Join(dir, "ot.bzv"), 7) }, "not a multiple"},
		{"truncated blocks", func(dir string) { truncate(t, filepath.Join(dir, "ot.bzs"), 5) }, "not a multiple"},
		{"truncated data", func(dir string) { truncate(t, filepath.Join(dir, "ot.bzz"), 3) }, "exceeds data"},
		{"missing file", func(dir string) { os.Remove(filepath.Join(dir, "ot.bzz")) }, "read data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeModule(t, dir, "ot", tinyBible(func(ref string) string { return ref }))
			tc.mutate(dir)
			tm, err := OpenTestament(dir, "ot")
			if err == nil {
				_, err = tm.Entry(4)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func truncate(t *testing.T, path string, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[:n], 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLayoutAlignSplit(t *testing.T) {
	enDir, esDir := t.TempDir(), t.TempDir()
	writeModule(t, enDir, "ot", tinyBible(func(ref string) string { return `<w lemma="x">` + ref + `</w> en<note>n</note>` }))
	writeModule(t, esDir, "ot", tinyBible(func(ref string) string {
		if ref == "Gen.1.2" {
			return "" // an empty verse is skipped
		}
		return "Y " + strings.ToUpper(ref) + " es"
	}))
	en, err := OpenTestament(enDir, "ot")
	if err != nil {
		t.Fatal(err)
	}
	es, err := OpenTestament(esDir, "ot")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Layout(en, 2, 3, 6); err == nil {
		t.Fatal("Layout with wrong totals: want an error")
	}
	verses, err := Layout(en, 2, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, v := range verses {
		refs = append(refs, v.Ref)
	}
	if got, want := strings.Join(refs, " "), "Gen.1.1 Gen.1.2 Gen.2.1 Ruth.1.1 Ruth.1.2"; got != want {
		t.Fatalf("refs = %q, want %q", got, want)
	}
	pairs, skipped, err := Align(en, es, verses)
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 1 || len(pairs) != 4 {
		t.Fatalf("got %d pairs, %d skipped; want 4, 1", len(pairs), skipped)
	}
	if p := pairs[0]; p.Ref != "Gen.1.1" || p.EN != "Gen.1.1 en" || p.ES != "Y gen.1.1 es" || p.Book != "Gen" {
		t.Errorf("first pair = %+v", p)
	}
	splits, err := Split(pairs, []string{"Ruth"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(splits["test"]) != 2 || len(splits["train"]) != 2 || len(splits["dev"]) != 0 {
		t.Errorf("split sizes train %d dev %d test %d", len(splits["train"]), len(splits["dev"]), len(splits["test"]))
	}
	if _, err := Split(pairs, []string{"Jonah"}, nil); err == nil {
		t.Error("Split with an absent book: want an error")
	}
	if _, err := Split(pairs, []string{"Ruth"}, []string{"Ruth"}); err == nil {
		t.Error("Split with a book in test and dev: want an error")
	}

	// A Spanish module whose chapter markers disagree is refused.
	badDir := t.TempDir()
	bad := tinyBible(func(ref string) string { return ref })
	bad[0][6] = `<chapter osisID="Gen.3" sID="Gen.3"/>`
	writeModule(t, badDir, "ot", bad)
	badES, err := OpenTestament(badDir, "ot")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Align(en, badES, verses); err == nil {
		t.Error("Align with mismatched chapters: want an error")
	}
}

func TestRunWritesSplits(t *testing.T) {
	enDir, esDir, out := t.TempDir(), t.TempDir(), t.TempDir()
	writeModule(t, enDir, "ot", tinyBible(func(ref string) string { return ref + " <w>en</w>" }))
	writeModule(t, esDir, "ot", tinyBible(func(ref string) string { return ref + " es" }))
	// run reads both testaments with KJV totals, so build the split by hand here.
	en, _ := OpenTestament(enDir, "ot")
	es, _ := OpenTestament(esDir, "ot")
	verses, err := Layout(en, 2, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	pairs, _, err := Align(en, es, verses)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(out, "x.jsonl")
	if err := WriteJSONL(path, pairs[:2]); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ref":"Gen.1.1","en":"Gen.1.1 en","es":"Gen.1.1 es"}` + "\n" + `{"ref":"Gen.1.2","en":"Gen.1.2 en","es":"Gen.1.2 es"}` + "\n"
	if string(got) != want {
		t.Errorf("jsonl = %q, want %q", got, want)
	}

	if err := run([]string{"-en", enDir, "-es", esDir}); err == nil {
		t.Error("run without -out: want an error")
	}
	// The tiny module is not KJV-versified: run must refuse it.
	if err := run([]string{"-en", enDir, "-es", esDir, "-out", out}); err == nil || !strings.Contains(err.Error(), "versification") {
		t.Errorf("run on a non-KJV module: error = %v", err)
	}
}
