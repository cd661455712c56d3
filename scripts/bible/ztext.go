package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// zText on-disk layout (one set of three files per testament, prefix "ot" or "nt"):
//
//	<prefix>.bzs  block index, 12 bytes per block: uint32 offset into .bzz,
//	              uint32 compressed size, uint32 uncompressed size (little endian)
//	<prefix>.bzv  entry index, 10 bytes per entry: uint32 block number,
//	              uint32 offset inside the uncompressed block, uint16 size
//	<prefix>.bzz  the zlib-compressed blocks, concatenated
//
// Entries follow the module's versification: entry 0 is the module heading, entry 1
// the testament heading, then for every book a book heading followed, for every
// chapter, by a chapter heading and the chapter's verses.
const (
	blockRecordSize = 12
	entryRecordSize = 10
)

// Testament is one testament of a zText module held in memory.
type Testament struct {
	name   string
	blocks []byte // .bzs contents
	index  []byte // .bzv contents
	data   []byte // .bzz contents
	cache  map[uint32][]byte
}

// OpenTestament reads the three index and data files of one testament
// ("ot" or "nt") from a zText module directory.
func OpenTestament(dir, prefix string) (*Testament, error) {
	t := &Testament{name: filepath.Join(dir, prefix), cache: map[uint32][]byte{}}
	var err error
	if t.blocks, err = os.ReadFile(filepath.Join(dir, prefix+".bzs")); err != nil {
		return nil, fmt.Errorf("ztext: read block index: %w", err)
	}
	if t.index, err = os.ReadFile(filepath.Join(dir, prefix+".bzv")); err != nil {
		return nil, fmt.Errorf("ztext: read entry index: %w", err)
	}
	if t.data, err = os.ReadFile(filepath.Join(dir, prefix+".bzz")); err != nil {
		return nil, fmt.Errorf("ztext: read data: %w", err)
	}
	if len(t.blocks)%blockRecordSize != 0 {
		return nil, fmt.Errorf("ztext: %s.bzs size %d is not a multiple of %d", t.name, len(t.blocks), blockRecordSize)
	}
	if len(t.index)%entryRecordSize != 0 {
		return nil, fmt.Errorf("ztext: %s.bzv size %d is not a multiple of %d", t.name, len(t.index), entryRecordSize)
	}
	return t, nil
}

// Len is the number of entries (headings and verses) in the testament.
func (t *Testament) Len() int { return len(t.index) / entryRecordSize }

// Entry returns the raw (markup-bearing) text of entry i.
func (t *Testament) Entry(i int) (string, error) {
	if i < 0 || i >= t.Len() {
		return "", fmt.Errorf("ztext: %s: entry %d out of range [0,%d)", t.name, i, t.Len())
	}
	rec := t.index[i*entryRecordSize : (i+1)*entryRecordSize]
	blockNum := binary.LittleEndian.Uint32(rec[0:4])
	off := binary.LittleEndian.Uint32(rec[4:8])
	size := uint32(binary.LittleEndian.Uint16(rec[8:10]))
	if size == 0 {
		return "", nil
	}
	block, err := t.block(blockNum)
	if err != nil {
		return "", fmt.Errorf("ztext: %s entry %d: %w", t.name, i, err)
	}
	if uint64(off)+uint64(size) > uint64(len(block)) {
		return "", fmt.Errorf("ztext: %s entry %d: span %d+%d exceeds block %d of %d bytes", t.name, i, off, size, blockNum, len(block))
	}
	return string(block[off : off+size]), nil
}

func (t *Testament) block(n uint32) ([]byte, error) {
	if b, ok := t.cache[n]; ok {
		return b, nil
	}
	if uint64(n) >= uint64(len(t.blocks)/blockRecordSize) {
		return nil, fmt.Errorf("block %d out of range (%d blocks)", n, len(t.blocks)/blockRecordSize)
	}
	rec := t.blocks[n*blockRecordSize : (n+1)*blockRecordSize]
	off := binary.LittleEndian.Uint32(rec[0:4])
	csize := binary.LittleEndian.Uint32(rec[4:8])
	usize := binary.LittleEndian.Uint32(rec[8:12])
	if uint64(off)+uint64(csize) > uint64(len(t.data)) {
		return nil, fmt.Errorf("block %d: span %d+%d exceeds data of %d bytes", n, off, csize, len(t.data))
	}
	zr, err := zlib.NewReader(bytes.NewReader(t.data[off : off+csize]))
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", n, err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("block %d: decompress: %w", n, err)
	}
	if uint32(len(out)) != usize {
		return nil, fmt.Errorf("block %d: decompressed %d bytes, index says %d", n, len(out), usize)
	}
	t.cache[n] = out
	return out, nil
}
