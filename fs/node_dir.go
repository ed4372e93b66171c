package fs

import (
	"slices"

	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// OpenDir only hands out a handle: the kernel caches listings
// (FOPEN_CACHE_DIR), so most opens of a directory never read it, and
// reading the host directory here would cost every `ls -R` a getdents per
// directory for nothing. The listing is taken at the first ReadDir.
func (r *rawFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.Flags&unix.O_ACCMODE != unix.O_RDONLY {
		return fuse.EROFS
	}
	tg, ok := r.resolve(in.NodeId)
	if !ok {
		return fuse.Status(unix.ESTALE)
	}
	if tg.typ != unix.S_IFDIR {
		return fuse.ENOTDIR
	}
	fh := r.handleNumber.next()
	r.mu.Lock()
	r.handles[fh] = &handle{node: in.NodeId, fd: -1}
	r.mu.Unlock()
	out.Fh = fh
	// The listing cannot change while mounted: let the kernel cache it.
	out.OpenFlags |= fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_CACHE_DIR
	return fuse.OK
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

// ReadDir lists from the handle's snapshot: ".", "..", then the entries.
// The offset of an entry is its position plus one, so a reader can resume
// anywhere.
func (r *rawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	r.mu.Lock()
	h := r.handles[in.Fh]
	var dir []dirEntry
	if h != nil {
		dir = h.dir
	}
	r.mu.Unlock()
	if h == nil {
		return fuse.EBADF
	}
	if dir == nil {
		list, s := r.listDir(h.node)
		if !s.Ok() {
			return s
		}
		r.mu.Lock()
		if h.dir == nil {
			h.dir = list
		}
		dir = h.dir
		r.mu.Unlock()
	}
	total := uint64(len(dir)) + 2
	for off := in.Offset; off < total; off++ {
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
	return fuse.OK
}

// ReleaseDir drops the listing.
func (r *rawFS) ReleaseDir(in *fuse.ReleaseIn) {
	r.mu.Lock()
	delete(r.handles, in.Fh)
	r.mu.Unlock()
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
