package freeze

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	vfs "github.com/vzfs/vzfs/fs"
)

// TarOptions tune ToTar and NewTarWriter.
type TarOptions struct {
	// Mtime, when set, clamps every time in the archive: later times become
	// Mtime, as with GNU tar's --clamp-mtime. Times are kept to the second
	// either way.
	Mtime *time.Time
	// Log receives warnings; nil discards.
	Log *zap.Logger
	// Progress, if set, is told of every entry as it is written.
	Progress Progress
}

// TarWriter writes the view as a POSIX/PAX tar. What it writes depends only
// on the entries it is given and the options: owners are numeric (no user
// or group names, which would depend on the host's /etc/passwd), access
// and change times are left out, xattrs go in sorted SCHILY.xattr PAX
// records, and entries come in the walk's order, which is sorted.
//
// Sparse files are written out in full: archive/tar writes no sparse
// entries.
type TarWriter struct {
	tw   *tar.Writer
	bw   *bufio.Writer
	o    TarOptions
	done bool
}

// NewTarWriter returns a Writer that writes a tar to w. Close writes the
// end of the archive but does not close w.
func NewTarWriter(w io.Writer, o TarOptions) *TarWriter {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	return &TarWriter{tw: tar.NewWriter(bw), bw: bw, o: o}
}

// tarName turns a view path into an archive member name: relative, with
// no "." or ".." component, no empty component and no NUL, so that no
// extractor can be led outside its target directory.
func tarName(p string) (string, error) {
	if !strings.HasPrefix(p, "/") || p == "/" {
		return "", fmt.Errorf("unsafe archive name %q: not a path below /", p)
	}
	name := p[1:]
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("unsafe archive name %q", p)
		}
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("unsafe archive name %q: NUL byte", p)
	}
	return name, nil
}

func (w *TarWriter) time(ts unix.Timespec) time.Time {
	t := time.Unix(ts.Sec, 0).UTC()
	if w.o.Mtime != nil && t.After(*w.o.Mtime) {
		return w.o.Mtime.UTC().Truncate(time.Second)
	}
	return t
}

func (w *TarWriter) header(e *Entry, typ byte) (*tar.Header, error) {
	name, err := tarName(e.Path)
	if err != nil {
		return nil, err
	}
	if typ == tar.TypeDir {
		name += "/"
	}
	h := &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     int64(e.Stat.Mode & 0o7777),
		Uid:      int(e.Stat.Uid),
		Gid:      int(e.Stat.Gid),
		ModTime:  w.time(e.Stat.Mtim),
		Format:   tar.FormatPAX,
	}
	if len(e.Xattrs) > 0 {
		h.PAXRecords = make(map[string]string, len(e.Xattrs))
		for _, x := range e.Xattrs {
			h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
		}
	}
	return h, nil
}

func (w *TarWriter) Dir(e *Entry) error {
	if e.Path == "/" {
		// The root is the extraction directory itself; tar tools either
		// skip "./" or apply its mode to a directory the user chose.
		return nil
	}
	h, err := w.header(e, tar.TypeDir)
	if err != nil {
		return err
	}
	return w.tw.WriteHeader(h)
}

func (w *TarWriter) File(e *Entry) error {
	h, err := w.header(e, tar.TypeReg)
	if err != nil {
		return err
	}
	f, _, err := openEntry(e.HostPath, &e.Stat, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	h.Size = e.Stat.Size
	if err := w.tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.CopyN(w.tw, markReads{f}, h.Size)
	if err == io.EOF {
		return fmt.Errorf("%s: shrank from %d to %d bytes while archived", e.HostPath, h.Size, n)
	}
	var re readError
	if errors.As(err, &re) {
		return fmt.Errorf("reading %s: %w", e.HostPath, re.err)
	}
	if err != nil {
		return fmt.Errorf("archiving %s: %w", e.HostPath, err)
	}
	return nil
}

// markReads tags read errors, so that a failed copy says which side failed.
type markReads struct{ r io.Reader }

func (m markReads) Read(b []byte) (int, error) {
	n, err := m.r.Read(b)
	if err != nil && err != io.EOF {
		err = readError{err}
	}
	return n, err
}

func (w *TarWriter) Symlink(e *Entry) error {
	h, err := w.header(e, tar.TypeSymlink)
	if err != nil {
		return err
	}
	h.Linkname = e.Link
	return w.tw.WriteHeader(h)
}

func (w *TarWriter) Hardlink(e *Entry) error {
	h, err := w.header(e, tar.TypeLink)
	if err != nil {
		return err
	}
	if h.Linkname, err = tarName(e.LinkTarget); err != nil {
		return err
	}
	h.PAXRecords = nil // the link's target carries them
	return w.tw.WriteHeader(h)
}

func (w *TarWriter) Special(e *Entry) error {
	var typ byte
	switch e.Stat.Mode & unix.S_IFMT {
	case unix.S_IFIFO:
		typ = tar.TypeFifo
	case unix.S_IFCHR:
		typ = tar.TypeChar
	case unix.S_IFBLK:
		typ = tar.TypeBlock
	default:
		return fmt.Errorf("%s: not a FIFO or device", e.HostPath)
	}
	h, err := w.header(e, typ)
	if err != nil {
		return err
	}
	if typ != tar.TypeFifo {
		h.Devmajor = int64(unix.Major(e.Stat.Rdev))
		h.Devminor = int64(unix.Minor(e.Stat.Rdev))
	}
	h.PAXRecords = nil
	return w.tw.WriteHeader(h)
}

// Close ends the archive and flushes it.
func (w *TarWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	if err := w.tw.Close(); err != nil {
		return err
	}
	return w.bw.Flush()
}

// Abort drops what is buffered; the caller removes the output.
func (w *TarWriter) Abort() { w.done = true }

// ToTar writes the view t to out as a tar.
func ToTar(t *vfs.Tree, out io.Writer, o TarOptions) (Stats, error) {
	start := time.Now()
	w := NewTarWriter(out, o)
	c := &counters{}
	if err := freezeTree(t, w, walkOptions{log: w.o.Log, progress: o.Progress, c: c}); err != nil {
		w.Abort()
		return Stats{}, err
	}
	if err := w.Close(); err != nil {
		return Stats{}, err
	}
	s := c.stats()
	s.Copied = s.Files
	s.Elapsed = time.Since(start)
	return s, nil
}

// ToTarFile writes the view t as a tar at dest, through a temporary file
// beside it that is renamed into place only when complete.
func ToTarFile(t *vfs.Tree, dest string, o TarOptions) (Stats, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	parentFd, parent, base, err := openParent(dest)
	if err != nil {
		return Stats{}, err
	}
	defer unix.Close(parentFd)
	cleanStale(parentFd, parent, base, o.Log)
	destPath := filepath.Join(parent, base)
	f, tmp, err := createTemp(parentFd, parent, base)
	if err != nil {
		return Stats{}, err
	}
	s, err := ToTar(t, f, o)
	if err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err == nil {
		err = unix.Renameat(parentFd, tmp, parentFd, base)
	}
	if err != nil {
		_ = unix.Unlinkat(parentFd, tmp, 0)
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
			return Stats{}, destErr(destPath, "writing", err)
		}
		return Stats{}, fmt.Errorf("%s: %w", destPath, err)
	}
	return s, nil
}
