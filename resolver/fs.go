package resolver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// maxSymlinks is the kernel's limit on symlinks followed in one lookup
// (MAXSYMLINKS); more means a loop.
const maxSymlinks = 40

// LinkError is a symlink problem met while resolving a path: a loop, or a
// link whose target does not exist.
type LinkError struct {
	Path string // the path being resolved, as seen inside the root
	Link string // the symlink at fault, or "" if the path itself is missing
	Msg  string
}

func (e *LinkError) Error() string {
	if e.Link == "" || e.Link == e.Path {
		return fmt.Sprintf("%s: %s", e.Path, e.Msg)
	}
	return fmt.Sprintf("%s: %s (at symlink %s)", e.Path, e.Msg, e.Link)
}

// ErrNotExist is wrapped by LinkError-free lookups of paths that are absent.
var ErrNotExist = fs.ErrNotExist

// node is one memoized lstat result inside the root.
type node struct {
	err    error // lstat error, ENOENT for absent
	mode   fs.FileMode
	dev    uint64
	ino    uint64
	size   int64
	target string // symlink target
}

// rootFS reads a directory tree as if it were "/": every path it is given
// is a clean absolute path inside the root, and every symlink is resolved
// here, re-rooted, so nothing outside the root is ever opened. Results are
// memoized; it is safe for concurrent use.
type rootFS struct {
	root string // host path of the root, "" for the host's "/"

	mu    sync.RWMutex
	nodes map[string]*node
	reals map[string]*walked
}

// walked is a path resolved through all its symlinks.
type walked struct {
	real  string   // the final path, free of symlinks
	links []string // every symlink met, in order
	err   error
}

func newRootFS(root string) *rootFS {
	if root == "/" {
		root = ""
	}
	// Sized for a few hundred programs: growing these maps step by step
	// costs more than the memory.
	return &rootFS{root: strings.TrimSuffix(root, "/"), nodes: make(map[string]*node, 512), reals: make(map[string]*walked, 512)}
}

// host turns a path inside the root into a host path.
func (r *rootFS) host(p string) string { return r.root + p }

// lstat returns the memoized lstat of p (inside the root). p must not go
// through symlinks itself, only its final component may be one.
func (r *rootFS) lstat(p string) *node {
	r.mu.RLock()
	n, ok := r.nodes[p]
	r.mu.RUnlock()
	if ok {
		return n
	}
	n = &node{}
	var st unix.Stat_t
	if err := unix.Lstat(r.host(p), &st); err != nil {
		n.err = &fs.PathError{Op: "lstat", Path: p, Err: err}
	} else {
		n.mode = fileMode(st.Mode)
		n.dev, n.ino, n.size = uint64(st.Dev), st.Ino, st.Size
		if n.mode&fs.ModeSymlink != 0 {
			t, err := os.Readlink(r.host(p))
			if err != nil {
				n.err = err
			}
			n.target = t
		}
	}
	r.mu.Lock()
	r.nodes[p] = n
	r.mu.Unlock()
	return n
}

func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFREG:
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	return mode
}

// walk resolves every symlink in p, which is absolute, inside the root: an
// absolute target restarts at the root, and ".." never climbs above it. It
// returns the symlink-free path and the symlinks met on the way. A missing
// final component gives an error wrapping fs.ErrNotExist; a missing or
// looping link gives a *LinkError.
func (r *rootFS) walk(p string) *walked {
	if !isClean(p) {
		p = path.Clean("/" + p)
	}
	r.mu.RLock()
	w, ok := r.reals[p]
	r.mu.RUnlock()
	if ok {
		return w
	}
	w = r.walkSlow(p)
	r.mu.Lock()
	r.reals[p] = w
	r.mu.Unlock()
	return w
}

func (r *rootFS) walkSlow(p string) *walked {
	w := &walked{}
	cur := "/"
	rest := p[1:]
	links := 0
	var lastLink string
	for rest != "" {
		var comp string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			comp, rest = rest[:i], rest[i+1:]
		} else {
			comp, rest = rest, ""
		}
		switch comp {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, comp)
		n := r.lstat(next)
		if n.err != nil {
			if errors.Is(n.err, fs.ErrNotExist) || errors.Is(n.err, unix.ENOTDIR) {
				if lastLink != "" {
					w.err = &LinkError{Path: p, Link: lastLink, Msg: "dangling symlink: " + next + " does not exist"}
				} else {
					w.err = fmt.Errorf("%s: %w", p, fs.ErrNotExist)
				}
			} else {
				w.err = fmt.Errorf("%s: %w", p, n.err)
			}
			w.real = next
			return w
		}
		if n.mode&fs.ModeSymlink == 0 {
			if rest != "" && !n.mode.IsDir() {
				w.err = fmt.Errorf("%s: %s is not a directory: %w", p, next, fs.ErrNotExist)
				w.real = next
				return w
			}
			cur = next
			continue
		}
		links++
		if links > maxSymlinks {
			w.err = &LinkError{Path: p, Link: next, Msg: "too many levels of symbolic links (loop?)"}
			return w
		}
		w.links = append(w.links, next)
		lastLink = next
		t := n.target
		if strings.HasPrefix(t, "/") {
			cur = "/"
		}
		if rest != "" {
			rest = t + "/" + rest
		} else {
			rest = t
		}
	}
	w.real = cur
	return w
}

// open opens p, which walk has resolved, for reading. Opening the host path
// with O_NOFOLLOW keeps a symlink swapped in since the walk from leading
// outside the root.
func (r *rootFS) open(p string) (*os.File, error) {
	fd, err := unix.Open(r.host(p), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// openFd is open without an *os.File: the parser needs a handful of
// preads, and os.File's poller registration and finalizer cost more than
// those on a cold run over a thousand files.
func (r *rootFS) openFd(p string) (int, error) {
	fd, err := unix.Open(r.host(p), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return fd, nil
}

// headReader reads a file through pread, keeping its first block: the ELF
// header, program headers and PT_INTERP usually all lie there, so one
// syscall answers three reads. The block lives in a scratch.
type headReader struct {
	fd   int
	size int64
	head []byte // nil until the first read
	buf  *[headSize]byte
}

const headSize = 4096

// reader returns sc's headReader, reset for fd, a file of size bytes.
func (sc *scratch) reader(fd int, size int64) *headReader {
	sc.hr = headReader{fd: fd, size: size, buf: &sc.head}
	return &sc.hr
}

func (h *headReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	if h.head == nil {
		n, err := unix.Pread(h.fd, h.buf[:min(headSize, max(h.size, 0))], 0)
		if err != nil {
			return 0, err
		}
		h.head = h.buf[:n]
	}
	if off+int64(len(b)) <= int64(len(h.head)) {
		return copy(b, h.head[off:]), nil
	}
	if off >= h.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) {
		k, err := unix.Pread(h.fd, b[n:], off+int64(n))
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, io.EOF
		}
		n += k
	}
	return n, nil
}

// isDir reports whether p (symlinks followed inside the root) is a directory.
func (r *rootFS) isDir(p string) bool {
	w := r.walk(p)
	if w.err != nil {
		return false
	}
	return r.lstat(w.real).mode.IsDir()
}

// readFile reads a small file inside the root, at most limit bytes.
func (r *rootFS) readFile(p string, limit int64) ([]byte, error) {
	w := r.walk(p)
	if w.err != nil {
		return nil, w.err
	}
	f, err := r.open(w.real)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d accepted", p, fi.Size(), limit)
	}
	b := make([]byte, fi.Size())
	n, err := f.ReadAt(b, 0)
	if err != nil && n != len(b) {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return b, nil
}

// isClean reports whether p is already what path.Clean would return for
// an absolute path; most paths are, and Clean allocates.
func isClean(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) == 0 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	return !strings.Contains(p, "//") && !strings.Contains(p, "/./") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/.") && !strings.HasSuffix(p, "/..")
}
