package resolver

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// craftELF builds a minimal little-endian ELF64 shared object: one PT_LOAD
// covering the file, optional PT_INTERP, and PT_DYNAMIC with the given
// names. It is small enough for a fuzz seed and exact enough for ld.so's
// header checks.
func craftELF(interp, soname, rpath string, needed ...string) []byte {
	le := binary.LittleEndian
	nph := 2
	if interp != "" {
		nph = 3
	}
	phOff := 64
	dataOff := phOff + nph*56
	var strtab bytes.Buffer
	strtab.WriteByte(0)
	addStr := func(s string) uint64 {
		o := strtab.Len()
		strtab.WriteString(s + "\x00")
		return uint64(o)
	}
	type dyn struct{ tag, val uint64 }
	var dyns []dyn
	for _, n := range needed {
		dyns = append(dyns, dyn{dtNeeded, addStr(n)})
	}
	if soname != "" {
		dyns = append(dyns, dyn{dtSoname, addStr(soname)})
	}
	if rpath != "" {
		dyns = append(dyns, dyn{dtRpath, addStr(rpath)})
	}
	interpOff := dataOff
	strOff := interpOff + len(interp) + 1
	dynOff := strOff + strtab.Len()
	dynOff = (dynOff + 7) &^ 7
	dyns = append(dyns, dyn{dtStrtab, uint64(strOff)}, dyn{dtStrsz, uint64(strtab.Len())}, dyn{dtNull, 0})
	total := dynOff + len(dyns)*16

	b := make([]byte, total)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = elfClass64, elfData2L, 1
	le.PutUint16(b[16:], etDyn)
	le.PutUint16(b[18:], emX86_64)
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[32:], uint64(phOff))
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], uint16(nph))
	ph := func(i int, typ uint32, off, size int) {
		p := b[phOff+i*56:]
		le.PutUint32(p, typ)
		le.PutUint64(p[8:], uint64(off))
		le.PutUint64(p[16:], uint64(off))
		le.PutUint64(p[24:], uint64(off))
		le.PutUint64(p[32:], uint64(size))
		le.PutUint64(p[40:], uint64(size))
	}
	ph(0, ptLoad, 0, total)
	ph(1, ptDynamic, dynOff, len(dyns)*16)
	if interp != "" {
		ph(2, ptInterp, interpOff, len(interp)+1)
		copy(b[interpOff:], interp)
	}
	copy(b[strOff:], strtab.Bytes())
	for i, d := range dyns {
		le.PutUint64(b[dynOff+i*16:], d.tag)
		le.PutUint64(b[dynOff+i*16+8:], d.val)
	}
	return b
}

func TestReadELFCrafted(t *testing.T) {
	b := craftELF("/lib64/ld-linux-x86-64.so.2", "libx.so.1", "$ORIGIN/../lib", "liba.so", "libb.so.2")
	info, err := readELF(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Interp != "/lib64/ld-linux-x86-64.so.2" || info.Soname != "libx.so.1" || info.Rpath != "$ORIGIN/../lib" ||
		!slices.Equal(info.Needed, []string{"liba.so", "libb.so.2"}) || !info.Dynamic || info.Machine != emX86_64 {
		t.Errorf("got %+v", info)
	}
}

func TestReadELFHostile(t *testing.T) {
	good := craftELF("", "", "", "liba.so")
	le := binary.LittleEndian
	mutate := func(f func(b []byte)) []byte {
		b := slices.Clone(good)
		f(b)
		return b
	}
	cases := map[string][]byte{
		"not elf":         []byte("#!/bin/sh\n"),
		"short":           good[:20],
		"phoff past end":  mutate(func(b []byte) { le.PutUint64(b[32:], 1<<62) }),
		"phentsize small": mutate(func(b []byte) { le.PutUint16(b[54:], 8) }),
		"phnum huge":      mutate(func(b []byte) { le.PutUint16(b[56:], 0xffff) }),
		"dyn past end":    mutate(func(b []byte) { le.PutUint64(b[64+56+8:], 1<<40) }),
		"strtab unmapped": mutate(func(b []byte) { le.PutUint64(b[len(b)-48+8:], 1<<40) }),
	}
	for name, b := range cases {
		if _, err := readELF(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	// A class or data encoding ld.so does not know is reported in the
	// identity, not as an error: ld.so skips the former.
	info, err := readELF(bytes.NewReader(mutate(func(b []byte) { b[4] = 9 })), int64(len(good)))
	if err != nil || info.badIdent == "" {
		t.Errorf("unknown class: %v %+v", err, info)
	}
}

func TestReadELFHostLibc(t *testing.T) {
	f, err := os.Open("/usr/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	info, err := readELF(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	if info.Soname != "libc.so.6" || !slices.Contains(info.Needed, "ld-linux-x86-64.so.2") {
		t.Errorf("libc: %+v", info)
	}
}

func FuzzELF(f *testing.F) {
	f.Add(craftELF("/lib64/ld-linux-x86-64.so.2", "libx.so.1", "$ORIGIN", "liba.so"))
	f.Add(craftELF("", "", "", "libc.so.6"))
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	if ents, err := filepath.Glob("testdata/*.so"); err == nil {
		for _, p := range ents {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := readELF(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("parser panicked: %v", err)
			}
			return
		}
		n := len(info.Interp) + len(info.Soname) + len(info.Rpath) + len(info.Runpath)
		for _, s := range info.Needed {
			n += len(s)
		}
		if n > len(b) {
			t.Fatalf("%d bytes of strings from a %d-byte file", n, len(b))
		}
	})
}
