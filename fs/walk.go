package fs

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Info describes one entry of the view as the host has it now.
type Info struct {
	// Path is the entry's absolute path in the view.
	Path string
	// HostPath is where the host has it.
	HostPath string
	// Stat is the host's lstat of HostPath. For a synthetic directory it
	// is made up: root-owned, 0755, timed when the tree was built.
	Stat unix.Stat_t
	// Link is a symlink's target, verbatim.
	Link string
	// Node is the tree node, or, with InSubtree, the "/**" node above.
	Node Node
	// Subtree is set for a "/**" entry's root.
	Subtree bool
	// InSubtree is set for entries below a "/**" root: served from the
	// host directory, not nodes of the tree.
	InSubtree bool
	// Synthetic is set for an extra directory the host lacks.
	Synthetic bool
}

// buildTime stamps synthetic directories.
var buildTime = time.Now()

// Info returns n's current host attributes. It fails with ErrStale when the
// host entry changed type since the tree was built, and with the lstat error
// when it vanished.
//
// The entry is read relative to its parent directory, which is opened with
// no symlink followed on the way: a directory above it that was swapped for
// a symlink since the tree was built gives ELOOP, never the attributes or
// link target of whatever the symlink points at.
func (t *Tree) Info(n Node) (Info, error) {
	if !t.valid(n) {
		return Info{}, fmt.Errorf("node %d: no such node", n)
	}
	in := Info{Path: t.Path(n), Node: n, Subtree: t.IsSubtree(n), Synthetic: t.IsSynthetic(n)}
	in.HostPath = in.Path
	if in.Synthetic {
		in.Stat = syntheticStat()
		return in, nil
	}
	dir, name := parentOf(in.HostPath), baseName(in.HostPath)
	dfd, err := openHostFd(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return in, fmt.Errorf("lstat %s: opening its directory %s: %w", in.HostPath, dir, err)
	}
	defer unix.Close(dfd)
	if in.HostPath == "/" {
		// The root has no parent to be relative to; dfd is "/" itself.
		err = unix.Fstat(dfd, &in.Stat)
	} else {
		err = unix.Fstatat(dfd, name, &in.Stat, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return in, fmt.Errorf("lstat %s: %w", in.HostPath, err)
	}
	if in.Stat.Mode&unix.S_IFMT != t.Type(n) {
		return in, fmt.Errorf("%s: changed type on the host since mount: %w", in.HostPath, ErrStale)
	}
	if in.Stat.Mode&unix.S_IFMT == unix.S_IFLNK {
		l, err := readlink(dfd, name)
		if err != nil {
			return in, fmt.Errorf("%s: %w", in.HostPath, err)
		}
		in.Link = l
	}
	return in, nil
}

func syntheticStat() unix.Stat_t {
	ts := unix.NsecToTimespec(buildTime.UnixNano())
	return unix.Stat_t{Mode: unix.S_IFDIR | 0o755, Nlink: 2, Atim: ts, Mtim: ts, Ctim: ts, Blksize: 4096}
}

// readlink reads a symlink's target relative to dirfd, growing the buffer
// up to PATH_MAX.
func readlink(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", fmt.Errorf("readlink %s: %w", name, err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > unix.PathMax {
			return "", fmt.Errorf("readlink %s: target longer than PATH_MAX", name)
		}
	}
}

// SkipDir, returned by a WalkFunc for a directory, skips what is below it.
//
//lint:ignore ST1012 named like io/fs.SkipDir, which walkers know
var SkipDir = errors.New("skip this directory")

// WalkFunc is called by Walk for every entry. An error stops the walk and
// is returned by Walk, except SkipDir.
type WalkFunc func(in *Info) error

// Walk visits every entry of the view depth first, a directory before what
// it holds, names in byte order: the tree's nodes, and below each "/**"
// node the host's subtree, read with no symlink followed. Host errors on
// the way (an entry vanished or changed type) stop the walk with an error
// naming the path.
//
// Memory is bounded by the depth times the largest directory, not by the
// size of the view.
func (t *Tree) Walk(fn WalkFunc) error {
	err := t.walkNode(RootNode, fn)
	if err == SkipDir {
		return nil
	}
	return err
}

func (t *Tree) walkNode(n Node, fn WalkFunc) error {
	in, err := t.Info(n)
	if err != nil {
		return err
	}
	if err := fn(&in); err != nil {
		if err == SkipDir {
			return nil
		}
		return err
	}
	if in.Subtree {
		return t.walkHost(n, in.HostPath, in.Path, &in.Stat, fn)
	}
	for i, k := 0, t.NumChildren(n); i < k; i++ {
		if err := t.walkNode(t.ChildAt(n, i), fn); err != nil {
			return err
		}
	}
	return nil
}

// walkHost visits the host directory hostDir (shown as viewDir) below the
// "/**" node top. hostDir must still be the directory Info reported as st:
// one swapped for another since gives ESTALE.
func (t *Tree) walkHost(top Node, hostDir, viewDir string, st *unix.Stat_t, fn WalkFunc) error {
	fd, err := openHostFd(hostDir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("opening %s: %w", hostDir, err)
	}
	defer unix.Close(fd)
	if err := sameFile(fd, st); err != nil {
		return fmt.Errorf("opening %s: %w", hostDir, err)
	}
	return t.walkHostFd(top, fd, hostDir, viewDir, fn)
}

// walkHostFd visits the open host directory fd. Everything below it is read
// relative to fd, and subdirectories are opened from it with O_NOFOLLOW, so
// nothing swapped in on the host since fd was opened, a symlink least of
// all, is ever reported or descended into.
func (t *Tree) walkHostFd(top Node, fd int, hostDir, viewDir string, fn WalkFunc) error {
	names, err := readDirNames(fd)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", hostDir, err)
	}
	sort.Strings(names)
	for _, name := range names {
		in := Info{
			Path:      join(viewDir, name),
			HostPath:  join(hostDir, name),
			Node:      top,
			InSubtree: true,
		}
		if err := unix.Fstatat(fd, name, &in.Stat, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("lstat %s: %w", in.HostPath, err)
		}
		if in.Stat.Mode&unix.S_IFMT == unix.S_IFLNK {
			if in.Link, err = readlink(fd, name); err != nil {
				return fmt.Errorf("%s: %w", in.HostPath, err)
			}
		}
		err := fn(&in)
		if err == SkipDir {
			continue
		}
		if err != nil {
			return err
		}
		if in.Stat.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		if err := t.walkHostAt(top, fd, name, &in, fn); err != nil {
			return err
		}
	}
	return nil
}

// walkHostAt descends into the subdirectory name of the open directory fd,
// which in describes.
func (t *Tree) walkHostAt(top Node, fd int, name string, in *Info, fn WalkFunc) error {
	sub, err := openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err == nil {
		err = sameFile(sub, &in.Stat)
		if err != nil {
			unix.Close(sub)
		}
	}
	if err != nil {
		if err == unix.ENOTDIR {
			// O_NOFOLLOW|O_DIRECTORY says ENOTDIR for a symlink swapped
			// in since the lstat: the directory is no longer there.
			err = ErrStale
		}
		return fmt.Errorf("opening %s: %w", in.HostPath, err)
	}
	defer unix.Close(sub)
	return t.walkHostFd(top, sub, in.HostPath, in.Path, fn)
}

func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// sameFile checks that fd is still the file whose lstat was st: ErrStale if
// something else took its name in between.
func sameFile(fd int, st *unix.Stat_t) error {
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return err
	}
	if now.Dev != st.Dev || now.Ino != st.Ino {
		return fmt.Errorf("replaced on the host while walking: %w", ErrStale)
	}
	return nil
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// hostDirent is one entry of a host directory, as getdents gives it.
type hostDirent struct {
	name string
	ino  uint64
	typ  uint8 // DT_* value
}

// readDirents reads a whole host directory from fd, skipping "." and "..".
func readDirents(fd int) ([]hostDirent, error) {
	var out []hostDirent
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return out, nil
		}
		b := buf[:n]
		for len(b) > 0 {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			if len(b) < 19 {
				return nil, fmt.Errorf("short dirent record")
			}
			reclen := int(uint16(b[16]) | uint16(b[17])<<8)
			if reclen < 19 || reclen > len(b) {
				return nil, fmt.Errorf("bad dirent record length %d", reclen)
			}
			ino := uint64(0)
			for i := 7; i >= 0; i-- {
				ino = ino<<8 | uint64(b[i])
			}
			typ := b[18]
			nb := b[19:reclen]
			for i, c := range nb {
				if c == 0 {
					nb = nb[:i]
					break
				}
			}
			if name := string(nb); name != "." && name != ".." {
				out = append(out, hostDirent{name: name, ino: ino, typ: typ})
			}
			b = b[reclen:]
		}
	}
}

func readDirNames(fd int) ([]string, error) {
	ents, err := readDirents(fd)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.name
	}
	return names, nil
}
