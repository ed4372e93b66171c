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
	if err := unix.Lstat(in.HostPath, &in.Stat); err != nil {
		return in, fmt.Errorf("lstat %s: %w", in.HostPath, err)
	}
	if in.Stat.Mode&unix.S_IFMT != t.Type(n) {
		return in, fmt.Errorf("%s: changed type on the host since mount: %w", in.HostPath, ErrStale)
	}
	if in.Stat.Mode&unix.S_IFMT == unix.S_IFLNK {
		l, err := readlink(unix.AT_FDCWD, in.HostPath)
		if err != nil {
			return in, err
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
		return t.walkHost(n, in.HostPath, in.Path, fn)
	}
	for i, k := 0, t.NumChildren(n); i < k; i++ {
		if err := t.walkNode(t.ChildAt(n, i), fn); err != nil {
			return err
		}
	}
	return nil
}

// walkHost visits the host directory hostDir (shown as viewDir) below the
// "/**" node top.
func (t *Tree) walkHost(top Node, hostDir, viewDir string, fn WalkFunc) error {
	fd, err := openHostFd(hostDir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("opening %s: %w", hostDir, err)
	}
	defer unix.Close(fd)
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
		if in.Stat.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := t.walkHost(top, in.HostPath, in.Path, fn); err != nil {
				return err
			}
		}
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
