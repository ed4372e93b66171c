package spec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// MaxLineLen bounds one line of a spec. PATH_MAX is 4096 bytes, and quoting
// can grow a path fourfold; anything longer is not a spec.
const MaxLineLen = 64 << 10

// ParseError reports a bad line. File is empty when parsing a bare reader.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Parse reads a spec. Errors are *ParseError without a file name; ParseFile
// fills it in.
func Parse(r io.Reader) (*Spec, error) {
	s := &Spec{}
	br := bufio.NewReaderSize(r, 64<<10)
	var batch []Entry
	for n := 1; ; n++ {
		line, terminated, err := readLine(br)
		if err == errLineTooLong {
			return nil, &ParseError{Line: n, Msg: fmt.Sprintf("line longer than %d bytes: not a spec file?", MaxLineLen)}
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading spec: %w", err)
		}
		if len(line) == 0 && err == io.EOF {
			break
		}
		e, ok, perr := parseLine(line)
		if perr != nil {
			if !terminated {
				// The last write was cut short; keep what came before it.
				s.Torn = n
				break
			}
			return nil, &ParseError{Line: n, Msg: perr.Error()}
		}
		if ok {
			batch = append(batch, e)
		}
		if err == io.EOF {
			break
		}
	}
	s.Entries = batch
	s.normalize()
	return s, nil
}

// ParseFile reads the spec at name. Errors name the file and line.
func ParseFile(name string) (*Spec, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer forever, before the check below could refuse it. It has no
	// effect on the regular files that pass that check.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A FIFO or device given as a spec would block or never end; only
	// regular files are specs.
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (mode %v)", name, fi.Mode().Type())
	}
	s, err := Parse(f)
	var pe *ParseError
	if errors.As(err, &pe) {
		pe.File = name
	} else if err != nil {
		err = fmt.Errorf("%s: %w", name, err)
	}
	return s, err
}

var errLineTooLong = errors.New("line too long")

// readLine returns one line without its newline, and whether it had one.
//
// The common case, a whole line in the buffer, returns bufio's own slice
// without a copy; it is valid until the next read, and parseLine copies
// what it keeps.
func readLine(br *bufio.Reader) (line []byte, terminated bool, err error) {
	chunk, err := br.ReadSlice('\n')
	if err == nil {
		return chunk[:len(chunk)-1], true, nil
	}
	line = append(line, chunk...)
	for err == bufio.ErrBufferFull {
		if len(line) > MaxLineLen+1 {
			return nil, false, errLineTooLong
		}
		chunk, err = br.ReadSlice('\n')
		line = append(line, chunk...)
	}
	if len(line) > MaxLineLen+1 {
		return nil, false, errLineTooLong
	}
	if err == nil {
		return line[:len(line)-1], true, nil
	}
	return line, false, err
}

// parseLine parses one line. ok is false for blank and comment lines.
func parseLine(raw []byte) (e Entry, ok bool, err error) {
	if bytes.IndexByte(raw, 0) >= 0 {
		return e, false, errors.New("NUL byte in line: binary file given as a spec?")
	}
	line := strings.TrimRight(string(raw), "\r")
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || trimmed[0] == '#' {
		return e, false, nil
	}
	p := trimmed
	if p[0] == '"' {
		p, err = strconv.Unquote(trimmed)
		if err != nil {
			return e, false, fmt.Errorf("bad quoted path %s", trimmed)
		}
		if p == "" {
			return e, false, errors.New("empty quoted path")
		}
	}
	// Unquoted invalid UTF-8 is accepted as raw bytes: older specs were
	// written by shell scripts that never quoted anything.
	if p != "/**" && strings.HasSuffix(p, SubtreeSuffix) {
		e.Subtree = true
		p = strings.TrimSuffix(p, SubtreeSuffix)
	} else if p == "/**" {
		e.Subtree = true
		p = "/"
	}
	if err := Validate(p); err != nil {
		return e, false, err
	}
	e.Path = p
	return e, true, nil
}

// Validate checks that p is a clean absolute path as a spec line requires.
// A last component "**" is refused too: written out, it would read back as
// a subtree line, and the format has no way to say otherwise.
func Validate(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case p[0] != '/':
		return fmt.Errorf("relative path %q: spec paths must be absolute", p)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("NUL byte in path %q", p)
	case p == "/":
		return nil
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("trailing slash in %q", p)
	}
	// Walk the components without splitting: Write validates every entry.
	for rest := p[1:]; ; {
		c, tail, more := strings.Cut(rest, "/")
		switch c {
		case "":
			return fmt.Errorf("empty component in %q", p)
		case ".", "..":
			return fmt.Errorf("%q component in %q", c, p)
		case "**":
			if !more {
				return fmt.Errorf("%q ends in a file named \"**\", which a spec cannot name: it reads as a subtree", p)
			}
		}
		if !more {
			return nil
		}
		rest = tail
	}
}
