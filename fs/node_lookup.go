package fs

import (
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Lookup answers a name in a directory: from the tree for tree
// directories, from the host below "/**" nodes. A name the view does not
// have is a cached negative entry.
func (r *rawFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 {
		return fuse.EINVAL
	}
	parent, ok := r.resolve(h.NodeId)
	if !ok {
		return fuse.Status(unix.ESTALE)
	}
	if parent.typ != unix.S_IFDIR {
		return fuse.ENOTDIR
	}
	if parent.hostList {
		return r.lookupHost(parent, name, out)
	}
	n, ok := r.t.Child(parent.node, name)
	if !ok {
		if r.learn != nil && !parent.synth {
			return r.lookupHost(target{path: parent.path, learned: true}, name, out)
		}
		return r.negative(out)
	}
	child := target{path: r.t.HostPath(n), typ: r.t.Type(n), node: n, static: true,
		hostList: r.t.IsSubtree(n), synth: r.t.IsSynthetic(n)}
	if r.isMountpoint(child.path) {
		return r.negative(out)
	}
	var st unix.Stat_t
	if child.synth {
		child.key = r.expectedKey(n)
		if s := r.statTarget(child, &st); !s.Ok() {
			return s
		}
	} else {
		if err := statAt(child.path, &st); err != nil {
			if isGone(err) {
				return fuse.ENOENT
			}
			return errno(err)
		}
		if st.Mode&unix.S_IFMT != child.typ {
			// The kernel would see one node change type: say it is
			// gone rather than confuse it.
			return fuse.ENOENT
		}
		r.noteIdentity(n, hostKey{st.Dev, st.Ino})
	}
	r.setEntry(out, uint64(n)+1)
	r.fillAttr(&out.Attr, &st)
	if child.typ == unix.S_IFDIR && !child.hostList && r.learn == nil {
		out.Attr.Nlink = r.dirNlink(n)
	}
	return fuse.OK
}

// noteIdentity records the host identity a tree node is now served with;
// opens compare against it. A file replaced on the host (a package update
// renames a new file in) is served as the new file from the next lookup on.
func (r *rawFS) noteIdentity(n Node, k hostKey) {
	dev, ino := r.t.HostID(n)
	r.mu.Lock()
	if k == (hostKey{dev, ino}) {
		delete(r.changed, n)
	} else {
		r.changed[n] = k
	}
	r.mu.Unlock()
}

// lookupHost looks name up in the host directory of parent, below a "/**"
// node or in learn mode, and hands out a dynamic node ID for it. When
// parent is learned (a tree directory the spec does not cover whole, or a
// directory learned before), the name is recorded before it is answered,
// and a name that is not there is a miss.
func (r *rawFS) lookupHost(parent target, name string, out *fuse.EntryOut) fuse.Status {
	p := join(parent.path, name)
	if r.isMountpoint(p) {
		return r.negative(out)
	}
	learn := parent.learned && r.learn != nil
	if learn && r.unlearnable(p) {
		return r.negative(out)
	}
	var st unix.Stat_t
	if err := statAt(p, &st); err != nil {
		if isGone(err) {
			if learn {
				r.learn.Miss(p)
			}
			return r.negative(out)
		}
		return errno(err)
	}
	if learn {
		if err := r.learn.Learn(p); err != nil {
			// Never serve what is not recorded: the spec would lack
			// what the program was given.
			r.log.Error("cannot record a learned path; failing its lookup", zap.String("path", p), zap.Error(err))
			return fuse.EIO
		}
	}
	k := hostKey{st.Dev, st.Ino}
	typ := st.Mode & unix.S_IFMT
	r.mu.Lock()
	id, ok := r.dynByID[k]
	if ok && r.dyn[id].typ == typ && r.dyn[id].learned == learn {
		d := r.dyn[id]
		d.lookups++
		d.path = p
	} else {
		id = r.nextDyn
		r.nextDyn++
		r.dyn[id] = &dynNode{path: p, key: k, typ: typ, lookups: 1, learned: learn}
		r.dynByID[k] = id
	}
	r.mu.Unlock()
	r.setEntry(out, id)
	r.fillAttr(&out.Attr, &st)
	return fuse.OK
}

// negative answers "no such entry", cached by the kernel for the negative
// timeout: programs probe many paths that are not there (library search
// paths, python's import path), and each probe would otherwise come back
// to the daemon.
func (r *rawFS) negative(out *fuse.EntryOut) fuse.Status {
	if r.negTO <= 0 {
		return fuse.ENOENT
	}
	out.NodeId = 0
	out.SetEntryTimeout(r.negTO)
	return fuse.OK
}

// Forget drops kernel references; a dynamic node with none left is freed.
// Tree nodes cost nothing and are never freed.
func (r *rawFS) Forget(nodeID, nlookup uint64) {
	if nodeID < dynBase {
		return
	}
	r.mu.Lock()
	if d := r.dyn[nodeID]; d != nil {
		if d.lookups <= nlookup {
			delete(r.dyn, nodeID)
			if r.dynByID[d.key] == nodeID {
				delete(r.dynByID, d.key)
			}
		} else {
			d.lookups -= nlookup
		}
	}
	r.mu.Unlock()
}

// GetAttr answers stat from the host's current lstat.
func (r *rawFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	tg, ok := r.resolve(in.NodeId)
	if !ok {
		return fuse.Status(unix.ESTALE)
	}
	var st unix.Stat_t
	if s := r.statTarget(tg, &st); !s.Ok() {
		return s
	}
	r.fillAttr(&out.Attr, &st)
	if tg.static && tg.typ == unix.S_IFDIR && !tg.hostList && r.learn == nil {
		// In learn mode the directory lists the host's entries, so the
		// host's count is the true one.
		out.Attr.Nlink = r.dirNlink(tg.node)
	}
	if tg.synth {
		out.Attr.Ino = uint64(tg.node) | 1<<62
	}
	out.SetTimeout(r.attrTO)
	return fuse.OK
}

// Readlink returns a symlink's target verbatim; the kernel resolves it
// inside the view, so absolute targets stay in the view.
func (r *rawFS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	tg, ok := r.resolve(h.NodeId)
	if !ok {
		return nil, fuse.Status(unix.ESTALE)
	}
	if tg.typ != unix.S_IFLNK {
		return nil, fuse.EINVAL
	}
	dir, err := openHostFd(parentOf(tg.path), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		if isGone(err) {
			return nil, fuse.ENOENT
		}
		return nil, errno(err)
	}
	defer unix.Close(dir)
	var st unix.Stat_t
	if err := unix.Fstatat(dir, baseName(tg.path), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fuse.ENOENT
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK || (hostKey{st.Dev, st.Ino}) != tg.key {
		return nil, fuse.Status(unix.ESTALE)
	}
	l, err := readlink(dir, baseName(tg.path))
	if err != nil {
		return nil, fuse.EIO
	}
	return []byte(l), fuse.OK
}

// StatFs reports the host root filesystem's numbers, so df and programs
// that check free space see something sensible.
func (r *rawFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	var s unix.Statfs_t
	if err := unix.Statfs("/", &s); err != nil {
		return errno(err)
	}
	out.Blocks, out.Bfree, out.Bavail = s.Blocks, 0, 0
	out.Files, out.Ffree = s.Files, 0
	out.Bsize = uint32(s.Bsize)
	out.NameLen = uint32(s.Namelen)
	out.Frsize = uint32(s.Frsize)
	return fuse.OK
}

// GetXAttr passes host extended attributes through (file capabilities,
// ACLs), read from an fd opened without following symlinks. Symlinks have
// none here.
func (r *rawFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	fd, s := r.openPath(h.NodeId)
	if !s.Ok() {
		return 0, s
	}
	defer unix.Close(fd)
	sz, err := unix.Fgetxattr(fd, attr, dest)
	if err == unix.ERANGE {
		need, err2 := unix.Fgetxattr(fd, attr, nil)
		if err2 != nil {
			return 0, errno(err2)
		}
		return uint32(need), fuse.ERANGE
	}
	if err != nil {
		return 0, errno(err)
	}
	return uint32(sz), fuse.OK
}

// ListXAttr lists host extended attributes, like GetXAttr.
func (r *rawFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	fd, s := r.openPath(h.NodeId)
	if !s.Ok() {
		return 0, s
	}
	defer unix.Close(fd)
	sz, err := unix.Flistxattr(fd, dest)
	if err == unix.ERANGE {
		need, err2 := unix.Flistxattr(fd, nil)
		if err2 != nil {
			return 0, errno(err2)
		}
		return uint32(need), fuse.ERANGE
	}
	if err != nil {
		return 0, errno(err)
	}
	return uint32(sz), fuse.OK
}

// openPath opens a node's host entry for xattr calls. fgetxattr needs a
// real fd, and O_PATH fds give EBADF, so files and directories are opened
// read-only with O_NONBLOCK (a FIFO must not block the daemon); other
// types report no attributes.
func (r *rawFS) openPath(nodeID uint64) (int, fuse.Status) {
	tg, ok := r.resolve(nodeID)
	if !ok {
		return -1, fuse.Status(unix.ESTALE)
	}
	if tg.synth || (tg.typ != unix.S_IFREG && tg.typ != unix.S_IFDIR) {
		return -1, fuse.ENODATA
	}
	fd, err := openHostFd(tg.path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		if isGone(err) {
			return -1, fuse.ENOENT
		}
		return -1, errno(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || (hostKey{st.Dev, st.Ino}) != tg.key {
		unix.Close(fd)
		return -1, fuse.Status(unix.ESTALE)
	}
	return fd, fuse.OK
}
