package resolver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ELF constants used here; debug/elf has them too, but it parses whole
// section tables we never want to read, so the reader below is our own.
const (
	elfClass32 = 1
	elfClass64 = 2
	elfData2L  = 1
	elfData2M  = 2

	etExec = 2
	etDyn  = 3

	ptLoad    = 1
	ptDynamic = 2
	ptInterp  = 3

	dtNull    = 0
	dtNeeded  = 1
	dtStrtab  = 5
	dtStrsz   = 10
	dtSoname  = 14
	dtRpath   = 15
	dtRunpath = 29
	dtFlags1  = 0x6ffffffb

	df1Nodeflib = 0x800

	emX86_64 = 62
)

// Limits on what a hostile file can make us read or allocate. Real objects
// are far below them: the largest dynamic segments on a Debian system hold a
// few hundred entries, program header tables a few dozen.
const (
	maxPhnum      = 1 << 12
	maxDynBytes   = 1 << 20
	maxInterpLen  = 4096
	maxStringLen  = 4096
	maxNeeded     = 4096
	elfHeaderSize = 64
)

// FormatError is a malformed ELF file: Off is the byte offset of the bad
// field, Msg says what is wrong with it.
type FormatError struct {
	Off int64
	Msg string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s (at byte 0x%x)", e.Msg, e.Off)
}

// elfIdent is what ld.so compares between the main program and a candidate
// library before it loads it.
type elfIdent struct {
	Class   uint8
	Data    uint8
	OSABI   uint8
	Machine uint16
}

// elfInfo is the part of an ELF file the loader needs: its identity, the
// interpreter, and the dynamic section's strings. Nothing else is read.
type elfInfo struct {
	elfIdent
	Type      uint16
	Version   uint32
	Phentsize uint16
	Interp    string
	Dynamic   bool // has PT_DYNAMIC
	Needed    []string
	Soname    string
	Rpath     string
	Runpath   string
	HasRpath  bool
	HasRun    bool
	Flags1    uint64
	// badIdent is set when the e_ident bytes after class are ones ld.so
	// rejects (data encoding, version, padding): an error, not a skip.
	badIdent string
}

type phdr struct {
	typ                uint32
	off, vaddr, filesz uint64
}

var errNotELF = errors.New("invalid ELF header")

// readELF reads an ELF file's headers and dynamic section through r, which
// holds size bytes. It reads the ELF header, the program headers, PT_INTERP,
// PT_DYNAMIC and the strings those name, never section headers: ld.so does
// not use them and stripped files lack them. A panic inside is turned into
// an error, so a hostile file cannot crash the caller.
func readELF(r io.ReaderAt, size int64) (*elfInfo, error) {
	sc := getScratch()
	defer putScratch(sc)
	return readELFWith(r, size, sc)
}

// scratch holds the buffers one parse needs. Resolving a thousand programs
// parses a thousand files; reusing these instead of allocating them per
// file keeps the heap, and the page faults that grow it, small.
type scratch struct {
	head [headSize]byte
	hr   headReader
	tab  []byte
	dyn  []byte
	win  []byte
	phs  []phdr
	offs []uint64
}

// maxKeep is the largest buffer a scratch keeps for reuse; a hostile file
// may make one parse allocate more, but not keep it.
const maxKeep = 64 << 10

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	sc.hr = headReader{}
	scratchPool.Put(sc)
}

// buf returns (*keep)[:n], reusing its storage when it is large enough.
func buf(keep *[]byte, n uint64) []byte {
	if uint64(cap(*keep)) >= n {
		return (*keep)[:n]
	}
	b := make([]byte, n)
	if n <= maxKeep {
		*keep = b
	}
	return b
}

func readELFWith(r io.ReaderAt, size int64, sc *scratch) (info *elfInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			info, err = nil, fmt.Errorf("malformed ELF file: internal error: %v", p)
		}
	}()
	var hdr [elfHeaderSize]byte
	n, err := r.ReadAt(hdr[:], 0)
	if n < 16 || string(hdr[:4]) != "\x7fELF" {
		if n >= 4 && string(hdr[:4]) == "\x7fELF" {
			return nil, &FormatError{0, "file too short"}
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, errNotELF
	}
	info = &elfInfo{}
	info.Class, info.Data, info.OSABI = hdr[4], hdr[5], hdr[7]
	// An unknown class or data encoding is not an error here: ld.so skips
	// a library of another class before it looks at anything else, so the
	// caller needs the identity even of files it cannot decode further.
	if info.Class != elfClass32 && info.Class != elfClass64 {
		info.badIdent = fmt.Sprintf("unknown ELF class %d", info.Class)
		return info, nil
	}
	var bo binary.ByteOrder
	switch info.Data {
	case elfData2L:
		bo = binary.LittleEndian
	case elfData2M:
		bo = binary.BigEndian
	default:
		info.badIdent = fmt.Sprintf("ELF file data encoding %d is neither little nor big endian", info.Data)
		return info, nil
	}
	switch {
	case hdr[6] != 1:
		info.badIdent = "ELF file version ident does not match current one"
	case info.OSABI != 0 && info.OSABI != 3:
		info.badIdent = "ELF file OS ABI invalid"
	case hdr[8] != 0 && !(info.OSABI == 3 && hdr[8] <= 1):
		info.badIdent = "ELF file ABI version invalid"
	}
	for _, b := range hdr[9:16] {
		if b != 0 && info.badIdent == "" {
			info.badIdent = "nonzero padding in e_ident"
		}
	}
	var phoff uint64
	var phentsize, phnum uint16
	switch info.Class {
	case elfClass64:
		if n < 64 {
			return nil, &FormatError{0, "file too short"}
		}
		info.Type = bo.Uint16(hdr[16:])
		info.Machine = bo.Uint16(hdr[18:])
		info.Version = bo.Uint32(hdr[20:])
		phoff = bo.Uint64(hdr[32:])
		phentsize = bo.Uint16(hdr[54:])
		phnum = bo.Uint16(hdr[56:])
		info.Phentsize = phentsize
		if phnum > 0 && phentsize < 56 {
			return nil, &FormatError{54, fmt.Sprintf("program header entry size %d too small", phentsize)}
		}
	case elfClass32:
		if n < 52 {
			return nil, &FormatError{0, "file too short"}
		}
		info.Type = bo.Uint16(hdr[16:])
		info.Machine = bo.Uint16(hdr[18:])
		info.Version = bo.Uint32(hdr[20:])
		phoff = uint64(bo.Uint32(hdr[28:]))
		phentsize = bo.Uint16(hdr[42:])
		phnum = bo.Uint16(hdr[44:])
		info.Phentsize = phentsize
		if phnum > 0 && phentsize < 32 {
			return nil, &FormatError{42, fmt.Sprintf("program header entry size %d too small", phentsize)}
		}
	default:
		return nil, &FormatError{4, fmt.Sprintf("unknown ELF class %d", info.Class)}
	}
	if phnum == 0 {
		return info, nil
	}
	if phnum > maxPhnum {
		return nil, &FormatError{0, fmt.Sprintf("%d program headers, more than %d", phnum, maxPhnum)}
	}
	tabLen := uint64(phnum) * uint64(phentsize)
	if phoff > uint64(size) || tabLen > uint64(size)-phoff {
		return nil, &FormatError{0, fmt.Sprintf("program headers at 0x%x+0x%x lie outside the %d-byte file", phoff, tabLen, size)}
	}
	tab := buf(&sc.tab, tabLen)
	if _, err := r.ReadAt(tab, int64(phoff)); err != nil {
		return nil, fmt.Errorf("reading program headers: %w", err)
	}
	phs := sc.phs[:0]
	for i := 0; i < int(phnum); i++ {
		b := tab[i*int(phentsize):]
		var p phdr
		if info.Class == elfClass64 {
			p = phdr{typ: bo.Uint32(b), off: bo.Uint64(b[8:]), vaddr: bo.Uint64(b[16:]), filesz: bo.Uint64(b[32:])}
		} else {
			p = phdr{typ: bo.Uint32(b), off: uint64(bo.Uint32(b[4:])), vaddr: uint64(bo.Uint32(b[8:])), filesz: uint64(bo.Uint32(b[16:]))}
		}
		phs = append(phs, p)
	}
	if cap(phs) <= maxKeep/32 {
		sc.phs = phs
	}
	dyn := -1
	for i := range phs {
		p := &phs[i]
		switch p.typ {
		case ptInterp:
			if info.Interp != "" {
				continue
			}
			s, err := readCString(r, size, p.off, min(p.filesz, maxInterpLen))
			if err != nil {
				return nil, fmt.Errorf("reading PT_INTERP: %w", err)
			}
			info.Interp = s
		case ptDynamic:
			if dyn < 0 {
				dyn = i
			}
		}
	}
	if dyn < 0 {
		return info, nil
	}
	info.Dynamic = true
	return info, readDynamic(r, size, bo, info, phs[dyn], phs, sc)
}

// readDynamic decodes PT_DYNAMIC and the strings it points at. The string
// table is named by a virtual address, mapped to a file offset through the
// PT_LOAD segments, as the loader would map it.
func readDynamic(r io.ReaderAt, size int64, bo binary.ByteOrder, info *elfInfo, dyn phdr, phs []phdr, sc *scratch) error {
	if dyn.off > uint64(size) {
		return &FormatError{int64(min(dyn.off, 1<<62)), "PT_DYNAMIC lies outside the file"}
	}
	n := min(dyn.filesz, uint64(size)-dyn.off, maxDynBytes)
	b := buf(&sc.dyn, n)
	if _, err := r.ReadAt(b, int64(dyn.off)); err != nil && err != io.EOF {
		return fmt.Errorf("reading PT_DYNAMIC: %w", err)
	}
	entSize := 16
	if info.Class == elfClass32 {
		entSize = 8
	}
	var strtab, strsz uint64
	needed := sc.offs[:0]
	var soname, rpath, runpath uint64
	for i := 0; i+entSize <= len(b); i += entSize {
		var tag, val uint64
		if entSize == 16 {
			tag, val = bo.Uint64(b[i:]), bo.Uint64(b[i+8:])
		} else {
			tag, val = uint64(bo.Uint32(b[i:])), uint64(bo.Uint32(b[i+4:]))
		}
		if tag == dtNull {
			break
		}
		switch tag {
		case dtNeeded:
			if len(needed) >= maxNeeded {
				return &FormatError{int64(dyn.off) + int64(i), fmt.Sprintf("more than %d DT_NEEDED entries", maxNeeded)}
			}
			needed = append(needed, val)
		case dtStrtab:
			strtab = val
		case dtStrsz:
			strsz = val
		case dtSoname:
			soname = val + 1
		case dtRpath:
			rpath = val + 1
			info.HasRpath = true
		case dtRunpath:
			runpath = val + 1
			info.HasRun = true
		case dtFlags1:
			info.Flags1 = val
		}
	}
	sc.offs = needed
	if len(needed) == 0 && soname == 0 && rpath == 0 && runpath == 0 {
		return nil
	}
	var stroff uint64
	found := false
	for _, p := range phs {
		if p.typ == ptLoad && strtab >= p.vaddr && strtab-p.vaddr < p.filesz {
			stroff = strtab - p.vaddr + p.off
			found = true
			break
		}
	}
	if !found {
		return &FormatError{int64(dyn.off), fmt.Sprintf("DT_STRTAB address 0x%x is in no PT_LOAD segment", strtab)}
	}
	// The strings usually sit close together: read the span holding them
	// in one pread, falling back to per-string reads for outliers.
	lo, hi := uint64(1<<63), uint64(0)
	for _, o := range needed {
		lo, hi = min(lo, o), max(hi, o)
	}
	for _, o := range [...]uint64{soname, rpath, runpath} {
		if o != 0 {
			lo, hi = min(lo, o-1), max(hi, o-1)
		}
	}
	var win []byte
	if hi >= lo && hi-lo < 64<<10 && stroff+lo < uint64(size) {
		n := min(hi-lo+256, uint64(size)-(stroff+lo))
		if strsz != 0 && lo < strsz {
			n = min(n, strsz-lo)
		}
		win = buf(&sc.win, n)
		k, err := r.ReadAt(win, int64(stroff+lo))
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading string table: %w", err)
		}
		win = win[:k]
	}
	str := func(off uint64) (string, error) {
		if strsz != 0 && off >= strsz {
			return "", &FormatError{int64(dyn.off), fmt.Sprintf("string offset 0x%x beyond DT_STRSZ 0x%x", off, strsz)}
		}
		if off >= lo && off-lo < uint64(len(win)) {
			if i := bytes.IndexByte(win[off-lo:], 0); i >= 0 {
				return string(win[off-lo : off-lo+uint64(i)]), nil
			}
		}
		limit := uint64(maxStringLen)
		if strsz != 0 {
			limit = min(limit, strsz-off)
		}
		return readCString(r, size, stroff+off, limit)
	}
	var err error
	if len(needed) > 0 {
		info.Needed = make([]string, 0, len(needed))
	}
	for _, off := range needed {
		s, e := str(off)
		if e != nil {
			return fmt.Errorf("reading DT_NEEDED: %w", e)
		}
		info.Needed = append(info.Needed, s)
	}
	if soname != 0 {
		if info.Soname, err = str(soname - 1); err != nil {
			return fmt.Errorf("reading DT_SONAME: %w", err)
		}
	}
	if rpath != 0 {
		if info.Rpath, err = str(rpath - 1); err != nil {
			return fmt.Errorf("reading DT_RPATH: %w", err)
		}
	}
	if runpath != 0 {
		if info.Runpath, err = str(runpath - 1); err != nil {
			return fmt.Errorf("reading DT_RUNPATH: %w", err)
		}
	}
	return nil
}

// readCString reads a NUL-terminated string of at most limit bytes at off,
// in small reads, so a long string table is never read whole.
func readCString(r io.ReaderAt, size int64, off, limit uint64) (string, error) {
	if off >= uint64(size) {
		return "", &FormatError{int64(min(off, 1<<62)), "string lies outside the file"}
	}
	limit = min(limit, uint64(size)-off)
	var out []byte
	var chunk [128]byte
	for uint64(len(out)) < limit {
		want := min(uint64(len(chunk)), limit-uint64(len(out)))
		n, err := r.ReadAt(chunk[:want], int64(off)+int64(len(out)))
		if i := bytes.IndexByte(chunk[:n], 0); i >= 0 {
			if out == nil {
				return string(chunk[:i]), nil
			}
			return string(append(out, chunk[:i]...)), nil
		}
		out = append(out, chunk[:n]...)
		if err != nil {
			if err == io.EOF {
				break
			}
			return "", err
		}
		if n == 0 {
			break
		}
	}
	// PT_INTERP strings are sized by p_filesz and may lack a final NUL in
	// hand-made files; ld.so reads them the same way.
	if uint64(len(out)) == limit {
		return string(out), nil
	}
	return "", &FormatError{int64(off), "unterminated string"}
}
