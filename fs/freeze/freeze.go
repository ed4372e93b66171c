// Package freeze writes the view of a spec out as something static: a
// directory tree for chroot or systemd-nspawn, a deterministic tar, or an
// OCI image.
//
// # One model
//
// Every target is fed by the same walk over fs.Tree (Freeze), so a frozen
// tree holds exactly what a FUSE mount of the same spec serves: the spec's
// entries, their ancestor directories with host modes and owners, and the
// host subtrees below "/**" entries. A target is a Writer; Freeze calls it
// once per entry, parents before children, names in byte order, and then
// Close (or Abort after an error).
//
// # Targets
//
//   - NewDirWriter (ToDir): a directory tree, built in a temporary directory
//     beside DEST and renamed into place, created only with *at system calls
//     relative to directory descriptors opened with O_NOFOLLOW, so nothing
//     is ever written through a symlink inside DEST. See DirOptions for the
//     copy, hard link, reflink and update modes.
//   - NewTarWriter (ToTar): a POSIX/PAX tar with numeric owners, xattrs as
//     SCHILY.xattr records, hard links as links and times clamped to a fixed
//     instant, so that the same spec gives the same bytes.
//   - ToOCI: an OCI image whose single layer is that tar, written as an
//     image layout directory or an oci-archive tarball.
//
// # Errors
//
// Errors name the host path or the destination they concern; a full disk is
// reported as such, naming the destination (ErrDiskFull). A target that
// fails leaves nothing at its destination: no half tree, no half tar.
package freeze

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	vfs "github.com/vzfs/vzfs/fs"
)

// Entry is one entry of the view, as a Writer receives it.
type Entry struct {
	// Info is the host's view of the entry: path, host path, lstat,
	// symlink target.
	vfs.Info
	// Xattrs are the extended attributes of a file or directory, sorted by
	// name; nil for symlinks and special files.
	Xattrs []Xattr
	// LinkTarget, for a hard link, is the view path of the earlier entry
	// sharing the host inode; the Writer links to it instead of copying.
	LinkTarget string
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Name returns the last path component of the entry; "" for the root.
func (e *Entry) Name() string {
	if e.Path == "/" {
		return ""
	}
	return path.Base(e.Path)
}

// Writer is a freeze target. Freeze calls Dir for a directory before any
// entry below it, then exactly one method per entry, in walk order, and
// finally Close to commit or Abort to discard everything written.
type Writer interface {
	Dir(e *Entry) error
	File(e *Entry) error
	Symlink(e *Entry) error
	// Hardlink adds e as another name for the regular file at e.LinkTarget,
	// which the Writer has already been given.
	Hardlink(e *Entry) error
	// Special adds a FIFO or a device node.
	Special(e *Entry) error
	Close() error
	Abort()
}

// Progress receives counts as a freeze goes; it may be called from several
// goroutines at once.
type Progress interface {
	Add(entries int, bytes int64)
}

// Stats counts what a freeze did.
type Stats struct {
	Entries int64 // entries written, of every type
	Files   int64 // regular files (hard links included)
	Bytes   int64 // bytes of regular file data written or linked
	Skipped int64 // sockets, and special files when not root
	// Copied and Linked split Files by how their data got there: copied
	// (or cloned), or hard-linked from the host or from an old DEST.
	Copied, Linked int64
	// Unchanged is set when --update found DEST already matching.
	Unchanged bool
	Elapsed   time.Duration
}

// counters is Stats while workers still update it.
type counters struct {
	entries, files, bytes, skipped, copied, linked atomic.Int64
}

func (c *counters) stats() Stats {
	return Stats{
		Entries: c.entries.Load(), Files: c.files.Load(), Bytes: c.bytes.Load(),
		Skipped: c.skipped.Load(), Copied: c.copied.Load(), Linked: c.linked.Load(),
	}
}

// ErrDiskFull is wrapped by errors that ran out of space or quota at the
// destination.
var ErrDiskFull = errors.New("disk full")

// errSkip, from a Writer method, means the entry was left out on purpose
// (and a warning logged): a device node when not root, say.
var errSkip = errors.New("entry skipped")

// destErr wraps an error met writing to dest; a full disk says so plainly,
// naming the destination, since ENOSPC alone reads like a bug.
func destErr(dest, what string, err error) error {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return fmt.Errorf("%s: %s: %w on the filesystem holding %s (%v)", dest, what, ErrDiskFull, dest, err)
	}
	return fmt.Errorf("%s: %s: %w", dest, what, err)
}

// walkOptions tune the walk shared by every target.
type walkOptions struct {
	log      *zap.Logger
	progress Progress
	c        *counters
	// lazyXattrs leaves a regular file's Xattrs to the Writer: a hard link
	// from the host shares them, so reading them first is wasted work.
	lazyXattrs bool
}

// freezeTree walks t and feeds w. Hard links between regular files are
// found by host (device, inode) among files with more than one link, so the
// map stays as small as the set of such files.
func freezeTree(t *vfs.Tree, w Writer, o walkOptions) error {
	type devIno struct{ dev, ino uint64 }
	firstName := map[devIno]string{}
	warnedSocket := false
	err := t.Walk(func(in *vfs.Info) error {
		e := &Entry{Info: *in}
		var err error
		switch in.Stat.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if !in.Synthetic {
				if e.Xattrs, err = readXattrs(in.HostPath, &in.Stat); err != nil {
					return err
				}
			}
			err = w.Dir(e)
		case unix.S_IFREG:
			if in.Stat.Nlink > 1 {
				k := devIno{in.Stat.Dev, in.Stat.Ino}
				if first, ok := firstName[k]; ok {
					e.LinkTarget = first
					if err := w.Hardlink(e); err != nil {
						return err
					}
					o.c.entries.Add(1)
					o.c.files.Add(1)
					if o.progress != nil {
						o.progress.Add(1, 0)
					}
					return nil
				}
				firstName[k] = in.Path
			}
			if !o.lazyXattrs {
				if e.Xattrs, err = readXattrs(in.HostPath, &in.Stat); err != nil {
					return err
				}
			}
			err = w.File(e)
		case unix.S_IFLNK:
			err = w.Symlink(e)
		case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
			err = w.Special(e)
		case unix.S_IFSOCK:
			o.c.skipped.Add(1)
			if !warnedSocket {
				o.log.Warn("skipping sockets: a socket is made by the program that listens on it, not copied", zap.String("first", in.Path))
				warnedSocket = true
			}
			return nil
		default:
			return fmt.Errorf("%s: unknown file type %#o", in.HostPath, in.Stat.Mode&unix.S_IFMT)
		}
		if err == errSkip {
			o.c.skipped.Add(1)
			return nil
		}
		if err != nil {
			return err
		}
		var size int64
		if in.Stat.Mode&unix.S_IFMT == unix.S_IFREG {
			size = in.Stat.Size
			o.c.files.Add(1)
			o.c.bytes.Add(size)
		}
		o.c.entries.Add(1)
		if o.progress != nil {
			// Counted when handed over: the copy queue is short, so this
			// runs at most a few files ahead of the data.
			o.progress.Add(1, size)
		}
		return nil
	})
	return err
}

// readXattrs reads every extended attribute of the host entry p that the
// walk stat'ed as st. It opens p with no symlink followed anywhere on the
// path and checks the inode, then reads through the descriptor: a full-path
// lgetxattr would follow a directory swapped for a symlink mid-walk and copy
// another file's xattrs (file capabilities, say) into the tree. A
// filesystem without xattrs has none.
func readXattrs(p string, st *unix.Stat_t) ([]Xattr, error) {
	f, _, err := openEntry(p, st, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// f*xattr calls refuse O_PATH descriptors; the /proc magic link reaches
	// the same inode without another path walk.
	proc := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	return xattrs(p,
		func(b []byte) (int, error) { return unix.Listxattr(proc, b) },
		func(name string, b []byte) (int, error) { return unix.Getxattr(proc, name, b) })
}

// readXattrsFd is readXattrs for an open file; what names it in errors.
func readXattrsFd(fd int, what string) ([]Xattr, error) {
	return xattrs(what,
		func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
}

// maxXattrSize is the kernel's XATTR_SIZE_MAX; a name list is bounded by
// the same.
const maxXattrSize = 64 << 10

func xattrs(p string, list func([]byte) (int, error), get func(string, []byte) (int, error)) ([]Xattr, error) {
	names := make([]byte, 1024)
	n, err := list(names)
	if err == unix.ERANGE {
		names = make([]byte, maxXattrSize)
		n, err = list(names)
	}
	switch {
	case err == unix.ENOTSUP || err == unix.ENODATA:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("listing xattrs of %s: %w", p, err)
	case n == 0:
		return nil, nil
	}
	var out []Xattr
	for _, name := range strings.Split(strings.TrimRight(string(names[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		buf := make([]byte, 256)
		k, err := get(name, buf)
		if err == unix.ERANGE {
			buf = make([]byte, maxXattrSize)
			k, err = get(name, buf)
		}
		if err == unix.ENODATA || err == unix.ENOTSUP {
			continue // removed since the listing, or not readable here
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, p, err)
		}
		out = append(out, Xattr{Name: name, Value: buf[:k:k]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
