package resolver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
)

// Cache file formats, as ldconfig writes them (glibc sysdeps/generic/dl-cache.h).
const (
	cacheMagicOld = "ld.so-1.7.0"
	cacheMagicNew = "glibc-ld.so.cache"
	cacheVersion  = "1.1"

	oldHeaderSize = 16 // magic[11], pad, nlibs uint32
	oldEntrySize  = 12 // flags int32, key, value uint32
	newHeaderSize = 48
	newEntrySize  = 24 // flags, key, value, osversion uint32; hwcap uint64

	// maxCacheSize bounds what we read: real caches are tens of kilobytes.
	maxCacheSize = 64 << 20

	// hwcapExtension marks a new-format entry whose hwcap field names a
	// glibc-hwcaps subdirectory rather than legacy hwcap bits.
	hwcapExtension = uint64(1) << 62
)

// Cache flag values: the low byte is the library type, the next the
// architecture (sysdeps/generic/ldconfig.h).
const (
	cacheFlagELFLibc6 = 0x0003
	cacheFlagX8664    = 0x0300
	cacheFlagAArch64  = 0x0a00
	cacheFlagLib64PPC = 0x0500
	cacheFlagS390x    = 0x0400
	cacheFlagRISCVD   = 0x1000 | 0x0200 // FLAG_RISCV_FLOAT_ABI_DOUBLE
)

// CacheEntry is one library in ld.so.cache.
type CacheEntry struct {
	Name  string // the soname ld.so looks up
	Path  string // the file it maps to
	Flags int32  // library type and architecture
	HWCap uint64 // nonzero for glibc-hwcaps and legacy hwcap entries
}

// HWCaps reports whether the entry is for a hwcaps subdirectory, which ld.so
// prefers only on CPUs that have those features.
func (e CacheEntry) HWCaps() bool { return e.HWCap != 0 }

// ParseLDCache parses the bytes of an ld.so.cache file in either format:
// the new "glibc-ld.so.cache1.1" format, the old "ld.so-1.7.0" format, or
// the old format followed by the new one, which ldconfig wrote for years.
// When both are present the new part wins, as in ld.so. Entries come in
// file order, which is ld.so's search order.
func ParseLDCache(b []byte) ([]CacheEntry, error) {
	if len(b) > maxCacheSize {
		return nil, fmt.Errorf("ld.so.cache: %d bytes, more than the %d accepted", len(b), maxCacheSize)
	}
	switch {
	case bytes.HasPrefix(b, []byte(cacheMagicNew)):
		return parseNewCache(b, 0)
	case bytes.HasPrefix(b, []byte(cacheMagicOld)):
		if len(b) < oldHeaderSize {
			return nil, &FormatError{0, "ld.so.cache: truncated old-format header"}
		}
		n := uint64(binary.LittleEndian.Uint32(b[12:]))
		end := oldHeaderSize + n*oldEntrySize
		if end > uint64(len(b)) {
			return nil, &FormatError{12, fmt.Sprintf("ld.so.cache: %d old-format entries do not fit in %d bytes", n, len(b))}
		}
		// The new format, if present, follows the old entries at an
		// 8-byte aligned offset.
		newOff := (end + 7) &^ 7
		if newOff < uint64(len(b)) && bytes.HasPrefix(b[newOff:], []byte(cacheMagicNew)) {
			return parseNewCache(b, int(newOff))
		}
		// Old-format strings are relative to the end of the entry table.
		strs := b[end:]
		out := make([]CacheEntry, 0, n)
		for i := uint64(0); i < n; i++ {
			e := b[oldHeaderSize+i*oldEntrySize:]
			flags := int32(binary.LittleEndian.Uint32(e))
			key, err := cacheString(strs, binary.LittleEndian.Uint32(e[4:]), int(end))
			if err != nil {
				return nil, err
			}
			val, err := cacheString(strs, binary.LittleEndian.Uint32(e[8:]), int(end))
			if err != nil {
				return nil, err
			}
			out = append(out, CacheEntry{Name: key, Path: val, Flags: flags})
		}
		return out, nil
	}
	return nil, &FormatError{0, "ld.so.cache: unknown format (bad magic)"}
}

func parseNewCache(b []byte, off int) ([]CacheEntry, error) {
	h := b[off:]
	if len(h) < newHeaderSize {
		return nil, &FormatError{int64(off), "ld.so.cache: truncated header"}
	}
	if string(h[len(cacheMagicNew):len(cacheMagicNew)+3]) != cacheVersion {
		return nil, &FormatError{int64(off + len(cacheMagicNew)), fmt.Sprintf("ld.so.cache: unsupported version %q", h[len(cacheMagicNew):len(cacheMagicNew)+3])}
	}
	// The format stores its byte order in flags bits 0-1 (2 = little,
	// 3 = big endian, 0 = unknown, assume host). Caches are native files.
	var bo binary.ByteOrder = binary.LittleEndian
	if h[28]&3 == 3 {
		bo = binary.BigEndian
	}
	n := uint64(bo.Uint32(h[20:]))
	if uint64(newHeaderSize)+n*newEntrySize > uint64(len(h)) {
		return nil, &FormatError{int64(off + 20), fmt.Sprintf("ld.so.cache: %d entries do not fit in %d bytes", n, len(h))}
	}
	out := make([]CacheEntry, 0, n)
	for i := uint64(0); i < n; i++ {
		eo := newHeaderSize + i*newEntrySize
		e := h[eo:]
		flags := int32(bo.Uint32(e))
		// New-format string offsets are relative to the new header.
		key, err := cacheString(h, bo.Uint32(e[4:]), off)
		if err != nil {
			return nil, err
		}
		val, err := cacheString(h, bo.Uint32(e[8:]), off)
		if err != nil {
			return nil, err
		}
		out = append(out, CacheEntry{Name: key, Path: val, Flags: flags, HWCap: bo.Uint64(e[16:])})
	}
	return out, nil
}

func cacheString(b []byte, off uint32, base int) (string, error) {
	if uint64(off) >= uint64(len(b)) {
		return "", &FormatError{int64(base) + int64(off), "ld.so.cache: string offset outside the file"}
	}
	s := b[off:]
	i := bytes.IndexByte(s, 0)
	if i < 0 {
		return "", &FormatError{int64(base) + int64(off), "ld.so.cache: unterminated string"}
	}
	return string(s[:i]), nil
}

// ReadLDCache reads and parses an ld.so.cache file; errors name the file.
func ReadLDCache(name string) ([]CacheEntry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxCacheSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d accepted", name, fi.Size(), maxCacheSize)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	ents, err := ParseLDCache(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ents, nil
}
