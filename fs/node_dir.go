package fs

import (
	"slices"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// OpenDir answers ENOSYS, which the kernel remembers for the whole mount:
// from then on it opens and releases directories without asking us, and
// caches their listings as if we had said FOPEN_KEEP_CACHE|FOPEN_CACHE_DIR
// (fs/fuse/file.c, "Default for no-open"). Listings cannot change while
// mounted, so a warm `ls -R` then costs no round trip per directory, where
// an OPENDIR and a RELEASEDIR each cost one. Open modes need no check: the
// VFS refuses to open a directory for writing (EISDIR) before FUSE sees it.
func (r *rawFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return fuse.ENOSYS
}

// listDir takes a directory's listing: the tree's children, or the host
// directory below a "/**" node, read once per handle so offsets stay
// stable however the host changes.
func (r *rawFS) listDir(nodeID uint64) ([]dirEntry, fuse.Status) {
	tg, ok := r.resolve(nodeID)
	if !ok {
		return nil, fuse.Status(unix.ESTALE)
	}
	hideMnt := tg.path == r.mntParent
	if tg.hostList {
		fd, err := openHostFd(tg.path, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			if isGone(err) {
				return nil, fuse.ENOENT
			}
			return nil, errno(err)
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || (hostKey{st.Dev, st.Ino}) != tg.key {
			return nil, fuse.Status(unix.ESTALE)
		}
		ents, err := readDirents(fd)
		if err != nil {
			return nil, fuse.EIO
		}
		list := make([]dirEntry, 0, len(ents))
		for _, e := range ents {
			if hideMnt && e.name == r.mntName {
				continue
			}
			list = append(list, dirEntry{name: e.name, typ: uint32(e.typ) << 12, ino: r.ino(hostKey{st.Dev, e.ino})})
		}
		return list, fuse.OK
	}
	n := tg.node
	k := r.t.NumChildren(n)
	var list []dirEntry
	if r.learn != nil && !tg.synth {
		list = r.listHostExtra(tg)
	}
	list = slices.Grow(list, k)
	for i := 0; i < k; i++ {
		c := r.t.ChildAt(n, i)
		name := r.t.Name(c)
		if hideMnt && name == r.mntName {
			continue
		}
		dev, ino := r.t.HostID(c)
		if r.t.IsSynthetic(c) {
			ino = uint64(c) | 1<<62
		} else {
			ino = r.ino(hostKey{dev, ino})
		}
		list = append(list, dirEntry{name: name, typ: r.t.Type(c), ino: ino})
	}
	return list, fuse.OK
}

// ReadDir lists a directory by node: there are no directory handles
// (see OpenDir). ".", ".." and then the entries; the offset of an entry is
// its position plus one, so a reader can resume anywhere. A read from
// offset 0 takes a fresh listing; later offsets continue the listing that
// read took, kept in a small cache, so a host directory that changes
// between two reads of one listing neither skips nor repeats names. The
// kernel fills its own listing cache from offset 0 onwards and serves every
// later open of the directory from it.
func (r *rawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	var dir []dirEntry
	if in.Offset > 0 {
		dir = r.listings.get(in.NodeId)
	}
	if dir == nil {
		list, s := r.listDir(in.NodeId)
		if !s.Ok() {
			return s
		}
		dir = list
	}
	total := uint64(len(dir)) + 2
	off := in.Offset
	for ; off < total; off++ {
		var e fuse.DirEntry
		switch off {
		case 0:
			e = fuse.DirEntry{Name: ".", Mode: unix.S_IFDIR}
		case 1:
			e = fuse.DirEntry{Name: "..", Mode: unix.S_IFDIR}
		default:
			d := dir[off-2]
			e = fuse.DirEntry{Name: d.name, Mode: d.typ, Ino: d.ino}
		}
		e.Off = off + 1
		if !out.AddDirEntry(e) {
			break
		}
	}
	if off < total {
		r.listings.put(in.NodeId, dir)
	} else {
		r.listings.drop(in.NodeId)
	}
	return fuse.OK
}

// listingCache keeps the listings of directories being read in more than
// one READDIR, by node. It is bounded: a listing evicted early is taken
// again, which costs a getdents, not a wrong answer for a tree directory.
type listingCache struct {
	mu   sync.Mutex
	m    map[uint64][]dirEntry
	fifo []uint64
}

// maxListings bounds listingCache; each reader of a large directory holds
// one entry for as long as its listing takes.
const maxListings = 64

func (c *listingCache) get(node uint64) []dirEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[node]
}

func (c *listingCache) put(node uint64, d []dirEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[uint64][]dirEntry{}
	}
	if _, ok := c.m[node]; !ok {
		for len(c.m) >= maxListings && len(c.fifo) > 0 {
			delete(c.m, c.fifo[0])
			c.fifo = c.fifo[1:]
		}
		c.fifo = append(c.fifo, node)
	}
	c.m[node] = d
}

func (c *listingCache) drop(node uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[node]; !ok {
		return
	}
	delete(c.m, node)
	for i, n := range c.fifo {
		if n == node {
			c.fifo = append(c.fifo[:i], c.fifo[i+1:]...)
			break
		}
	}
}

// FsyncDir has nothing to sync.
func (r *rawFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status { return fuse.OK }

// listHostExtra lists, for learn mode, the entries of a tree directory's
// host directory that the tree lacks, with the host's types: a program
// must see every name it could look up. Nothing is recorded; only a
// lookup of a name is. Names that learn mode would refuse to serve are
// left out, and a host directory that is gone or replaced lists nothing.
func (r *rawFS) listHostExtra(tg target) []dirEntry {
	fd, err := openHostFd(tg.path, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || (hostKey{st.Dev, st.Ino}) != tg.key {
		return nil
	}
	ents, err := readDirents(fd)
	if err != nil {
		r.log.Warn("listing a host directory for learn mode", zap.String("path", tg.path), zap.Error(err))
		return nil
	}
	var list []dirEntry
	for _, e := range ents {
		if _, inTree := r.t.Child(tg.node, e.name); inTree {
			continue
		}
		if r.unlearnable(join(tg.path, e.name)) {
			continue
		}
		list = append(list, dirEntry{name: e.name, typ: uint32(e.typ) << 12, ino: r.ino(hostKey{st.Dev, e.ino})})
	}
	return list
}
