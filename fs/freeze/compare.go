package freeze

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"

	"golang.org/x/sys/unix"

	vfs "github.com/vzfs/vzfs/fs"
)

// isRoot: owners are only made, and so only compared, when running as root.
var isRoot = os.Geteuid() == 0

// errDiffer stops the comparing walk at the first difference.
var errDiffer = errors.New("differs")

// sameFileMeta reports whether a file of an old tree (old) still stands for
// the host file (host) by the quick check: type, size, mtime, mode, owner.
func sameFileMeta(old, host *unix.Stat_t) bool {
	return old.Mode == host.Mode && old.Size == host.Size &&
		old.Mtim == host.Mtim && (!isRoot || old.Uid == host.Uid && old.Gid == host.Gid)
}

// sameAttrs is the check for directories, symlinks and special files.
func sameAttrs(old, host *unix.Stat_t) bool {
	if old.Mode&unix.S_IFMT != host.Mode&unix.S_IFMT {
		return false
	}
	if isRoot && (old.Uid != host.Uid || old.Gid != host.Gid) {
		return false
	}
	switch host.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return old.Mtim == host.Mtim
	case unix.S_IFCHR, unix.S_IFBLK:
		return old.Rdev == host.Rdev && old.Mode == host.Mode && old.Mtim == host.Mtim
	case unix.S_IFDIR:
		// A directory's mtime moves whenever anything is made in it, as
		// with /tmp; what changed in it is found entry by entry, so its
		// time alone does not call for a new tree. A rebuild still
		// copies it.
		return old.Mode == host.Mode
	}
	return old.Mode == host.Mode && old.Mtim == host.Mtim
}

// compareDir reports whether the tree open at oldFd is exactly what ToDir
// would write for t: the same names, types, modes, owners, mtimes, link
// targets and hard links, and (with checksum) the same bytes and xattrs.
// It reads only, and stops at the first difference, which why describes.
func compareDir(t *vfs.Tree, oldFd int, checksum bool) (same bool, why string, err error) {
	type frame struct {
		path  string
		fd    int
		names map[string]bool
	}
	open := func(p string, fd int) (frame, error) {
		names, err := readNames(fd)
		if err != nil {
			return frame{}, fmt.Errorf("reading old tree at %s: %w", p, err)
		}
		m := make(map[string]bool, len(names))
		for _, n := range names {
			m[n] = true
		}
		return frame{path: p, fd: fd, names: m}, nil
	}
	root, err := open("/", oldFd)
	if err != nil {
		return false, "", err
	}
	stack := []frame{root}
	defer func() {
		for _, f := range stack {
			if f.fd != oldFd {
				unix.Close(f.fd)
			}
		}
	}()
	pop := func() bool {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if f.fd != oldFd {
			unix.Close(f.fd)
		}
		for n := range f.names {
			why = "extra entry " + path.Join(f.path, n)
			return false
		}
		return true
	}
	differ := func(p, what string) error {
		why = p + ": " + what
		return errDiffer
	}
	type devIno struct{ dev, ino uint64 }
	firstOld := map[devIno]uint64{} // host identity -> inode in the old tree
	err = t.Walk(func(in *vfs.Info) error {
		if in.Path == "/" {
			var st unix.Stat_t
			if err := unix.Fstat(oldFd, &st); err != nil {
				return err
			}
			if !sameAttrs(&st, &in.Stat) {
				return differ("/", "attributes")
			}
			return nil
		}
		parent := path.Dir(in.Path)
		for len(stack) > 1 && stack[len(stack)-1].path != parent {
			if !pop() {
				return errDiffer
			}
		}
		f := &stack[len(stack)-1]
		if f.path != parent {
			return fmt.Errorf("%s: walked out of order", in.Path)
		}
		name := path.Base(in.Path)
		typ := in.Stat.Mode & unix.S_IFMT
		if typ == unix.S_IFSOCK {
			return nil // never frozen; one in DEST shows up as extra
		}
		if !f.names[name] {
			return differ(in.Path, "missing")
		}
		delete(f.names, name)
		var st unix.Stat_t
		if err := unix.Fstatat(f.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return differ(in.Path, err.Error())
		}
		switch typ {
		case unix.S_IFDIR:
			if !sameAttrs(&st, &in.Stat) {
				return differ(in.Path, "directory attributes")
			}
			fd, err := unix.Openat(f.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return differ(in.Path, err.Error())
			}
			fr, err := open(in.Path, fd)
			if err != nil {
				unix.Close(fd)
				return err
			}
			stack = append(stack, fr)
		case unix.S_IFREG:
			if !sameFileMeta(&st, &in.Stat) {
				return differ(in.Path, "size, mtime, mode or owner")
			}
			if in.Stat.Nlink > 1 {
				k := devIno{in.Stat.Dev, in.Stat.Ino}
				if ino, ok := firstOld[k]; ok {
					if st.Ino != ino {
						return differ(in.Path, "no longer a hard link")
					}
					return nil
				}
				firstOld[k] = st.Ino
			}
			if checksum {
				e := &Entry{Info: *in}
				same, err := sameContent(f.fd, name, e)
				if err != nil {
					return err
				}
				if !same {
					return differ(in.Path, "content or xattrs")
				}
			}
		case unix.S_IFLNK:
			if !sameAttrs(&st, &in.Stat) {
				return differ(in.Path, "symlink attributes")
			}
			l, err := readlinkAt(f.fd, name)
			if err != nil || l != in.Link {
				return differ(in.Path, "symlink target")
			}
		default:
			if !sameAttrs(&st, &in.Stat) {
				return differ(in.Path, "special file attributes")
			}
		}
		return nil
	})
	if err == errDiffer {
		return false, why, nil
	}
	if err != nil {
		return false, "", err
	}
	for len(stack) > 0 {
		if !pop() {
			return false, why, nil
		}
	}
	return true, "", nil
}

func readlinkAt(dir int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dir, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// sameContent compares the bytes and xattrs of name in dir with the host
// file of e.
func sameContent(dir int, name string, e *Entry) (bool, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, nil
	}
	old := os.NewFile(uintptr(fd), name)
	defer old.Close()
	host, err := vfs.OpenHost(e.HostPath, unix.O_RDONLY)
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", e.HostPath, err)
	}
	defer host.Close()
	hx, err := readXattrsFd(int(host.Fd()), e.HostPath)
	if err != nil {
		return false, err
	}
	ox, err := readXattrsFd(fd, name)
	if err != nil {
		return false, nil
	}
	if !slices.EqualFunc(hx, ox, func(a, b Xattr) bool { return a.Name == b.Name && bytes.Equal(a.Value, b.Value) }) {
		return false, nil
	}
	a, b := make([]byte, 128<<10), make([]byte, 128<<10)
	for {
		n, errA := io.ReadFull(host, a)
		m, errB := io.ReadFull(old, b)
		if n != m || !bytes.Equal(a[:n], b[:m]) {
			return false, nil
		}
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			return errB == errA, nil
		}
		if errA != nil {
			return false, fmt.Errorf("reading %s: %w", e.HostPath, errA)
		}
		if errB != nil {
			return false, nil
		}
	}
}
