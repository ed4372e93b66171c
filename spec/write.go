package spec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// needsQuote reports whether a path cannot be written as a bare line and
// read back unchanged.
func needsQuote(p string) bool {
	if !utf8.ValidString(p) || strings.TrimSpace(p) != p {
		return true
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return true
		}
	}
	return false
}

func formatLine(e Entry) string {
	p := e.Path
	if e.Subtree {
		if p == "/" {
			p = ""
		}
		p += SubtreeSuffix
	}
	if needsQuote(p) {
		return strconv.Quote(p)
	}
	return p
}

// Write writes the spec's entries to w, one per line, sorted and unique.
func (s *Spec) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, e := range s.Entries {
		// An invalid entry would read back as something else, or not at
		// all; refuse it rather than write a spec that lies.
		if err := Validate(e.Path); err != nil {
			return fmt.Errorf("writing spec: %w", err)
		}
		bw.WriteString(formatLine(e))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// WriteFile replaces name with the spec atomically: it writes a temporary
// file beside it, syncs it, renames it over name and syncs the directory, so
// a crash leaves either the old file or the new one, never a mix.
func (s *Spec) WriteFile(name string) error {
	return WriteFileAtomic(name, s.Write)
}

// WriteFileAtomic writes name through fill with the same guarantees as
// Spec.WriteFile. An existing file's permission bits are kept.
func WriteFileAtomic(name string, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(name)
	perm := os.FileMode(0o644)
	if fi, err := os.Stat(name); err == nil {
		perm = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = fill(tmp); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", name, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err = os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("replacing %s: %w", name, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// Appender adds entries to the end of a spec file that may be in use. Each
// entry goes out as one write(2) of a whole line, so a crash can cut at most
// the line being written, which Parse then reports in Spec.Torn.
type Appender struct {
	f *os.File
}

// OpenAppender opens name for appending, creating it if needed. If the file
// ends in a torn line, a newline is written first so the next entry starts
// on a line of its own.
func OpenAppender(name string) (*Appender, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err != nil {
			f.Close()
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				f.Close()
				return nil, fmt.Errorf("appending to %s: %w", name, err)
			}
		}
	}
	return &Appender{f: f}, nil
}

// Append writes e as one line. It returns only once the kernel has the
// line; it does not fsync, since a killed process loses nothing the kernel
// holds.
func (a *Appender) Append(e Entry) error {
	if _, err := a.f.Write([]byte(formatLine(e) + "\n")); err != nil {
		return fmt.Errorf("appending to %s: %w", a.f.Name(), err)
	}
	return nil
}

// Sync flushes appended lines to stable storage.
func (a *Appender) Sync() error { return a.f.Sync() }

// Close closes the file.
func (a *Appender) Close() error { return a.f.Close() }

// MergeFile adds s's entries to the spec file name and writes it back
// atomically; a missing file is created. It is how commands implement
// --append.
func MergeFile(name string, s *Spec) error {
	old, err := ParseFile(name)
	switch {
	case err == nil:
		old.Merge(s)
		s = old
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	return s.WriteFile(name)
}
