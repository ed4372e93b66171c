package fs

import (
	"container/list"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Node IDs. A tree node n is FUSE node n+1, so the root (0) is
// FUSE_ROOT_ID (1) and serving a tree node needs no table at all. Nodes
// below "/**" entries get IDs from dynBase up, live only while the kernel
// holds them, and are never reused.
const dynBase = uint64(1) << 32

// hostKey is a host file's identity.
type hostKey struct{ dev, ino uint64 }

// dynNode is a looked-up host entry below a "/**" node.
type dynNode struct {
	path    string // host path of the latest lookup
	key     hostKey
	typ     uint32 // S_IFMT bits
	lookups uint64 // kernel references; freed at 0
	learned bool   // served because learn mode recorded it: its children are learned too
}

// backing is one registered passthrough file, shared by all opens of a node:
// the kernel allows one backing file per inode.
type backing struct {
	id   int32
	key  hostKey
	refs int
	idle *list.Element // in rawFS.idle while no handle uses it
}

// handle is an open file.
type handle struct {
	node uint64
	fd   int  // host fd for reads; -1 with passthrough
	pt   bool // holds a reference on backing[node]
}

// dirEntry is one entry of a listed directory.
type dirEntry struct {
	name string
	typ  uint32
	ino  uint64
}

// rawFS implements fuse.RawFileSystem over a Tree. Operations it does not
// implement answer ENOSYS from the embedded default, except writes, which
// answer EROFS (node_write.go).
type rawFS struct {
	fuse.RawFileSystem

	t   *Tree
	log *zap.Logger
	srv *fuse.Server

	mnt       string // absolute mountpoint: hidden, or the view would loop into itself
	mntParent string
	mntName   string
	rootDev   uint64

	entryTO, attrTO, negTO time.Duration

	learn Learner // nil unless in learn mode

	passthrough  atomic.Bool
	ptWarnOnce   sync.Once
	handleNumber counter

	mu      sync.Mutex
	dyn     map[uint64]*dynNode
	dynByID map[hostKey]uint64
	nextDyn uint64
	changed map[Node]hostKey // tree nodes whose host file was replaced since build
	handles map[uint64]*handle
	backing map[uint64]*backing
	idle    *list.List // node IDs of unused backings, most recent first

	listings listingCache // directory listings being read
}

func newRawFS(t *Tree, mnt string, o MountOptions) *rawFS {
	// The host paths learn mode compares with are physical (no symlink is
	// ever followed on the host), so the mountpoint must be too: reached
	// through a symlinked component, a lookup inside it would otherwise
	// look like any other host path and come back into this daemon.
	if real, err := filepath.EvalSymlinks(mnt); err == nil {
		mnt = real
	}
	to := DefaultTimeout
	if o.Timeout != 0 {
		to = max(o.Timeout, 0)
	}
	rd, _ := t.HostID(RootNode)
	r := &rawFS{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		t:             t,
		log:           o.Logger,
		mnt:           mnt,
		mntParent:     parentOf(mnt),
		mntName:       baseName(mnt),
		rootDev:       rd,
		entryTO:       to,
		attrTO:        to,
		negTO:         to,
		learn:         o.Learn,
		dyn:           map[uint64]*dynNode{},
		dynByID:       map[hostKey]uint64{},
		nextDyn:       dynBase,
		changed:       map[Node]hostKey{},
		handles:       map[uint64]*handle{},
		backing:       map[uint64]*backing{},
		idle:          list.New(),
	}
	if r.learn != nil {
		// A negative entry cached by the kernel would hide a miss, or a
		// name learned later, from the learner.
		r.negTO = 0
	}
	r.passthrough.Store(!o.NoPassthrough)
	return r
}

func (r *rawFS) String() string { return "vzfs" }

func (r *rawFS) Init(s *fuse.Server) { r.srv = s }

// target is what a FUSE node ID stands for right now.
type target struct {
	path     string
	typ      uint32
	key      hostKey
	node     Node // the tree node, or the "/**" node above a dynamic one
	static   bool // a tree node
	hostList bool // listed and looked up in the host directory
	synth    bool // a synthetic directory with no host entry
	learned  bool // a learned host directory: names looked up in it are learned
}

// resolve finds what nodeID names, or ok=false for an ID the kernel should
// not have (ESTALE to the caller).
func (r *rawFS) resolve(nodeID uint64) (tg target, ok bool) {
	if nodeID >= 1 && nodeID < dynBase {
		n := Node(nodeID - 1)
		if !r.t.valid(n) {
			return tg, false
		}
		tg = target{
			path:     r.t.HostPath(n),
			typ:      r.t.Type(n),
			node:     n,
			static:   true,
			hostList: r.t.IsSubtree(n),
			synth:    r.t.IsSynthetic(n),
		}
		tg.key = r.expectedKey(n)
		return tg, true
	}
	r.mu.Lock()
	d := r.dyn[nodeID]
	if d != nil {
		tg = target{path: d.path, typ: d.typ, key: d.key, hostList: d.typ == unix.S_IFDIR, learned: d.learned}
	}
	r.mu.Unlock()
	return tg, d != nil
}

// expectedKey is the host identity a tree node was last served with.
func (r *rawFS) expectedKey(n Node) hostKey {
	r.mu.Lock()
	k, ok := r.changed[n]
	r.mu.Unlock()
	if ok {
		return k
	}
	dev, ino := r.t.HostID(n)
	return hostKey{dev, ino}
}

// isMountpoint reports whether host path p is the view's own mountpoint,
// which must never be served: the daemon would look up its own mount.
func (r *rawFS) isMountpoint(p string) bool { return p == r.mnt }

// unlearnable reports whether learn mode must neither serve nor record
// host path p: the mountpoint and anything inside it (a lookup there would
// come back into this daemon and deadlock it), and NeverLearned trees.
func (r *rawFS) unlearnable(p string) bool {
	if p == r.mnt || (strings.HasPrefix(p, r.mnt) && len(p) > len(r.mnt) && p[len(r.mnt)] == '/') {
		return true
	}
	return NeverLearned(p)
}

// statAt lstats host path p with no symlink followed on the way: the parent
// directory is opened with OpenHost rules, then the name is stat'ed in it.
func statAt(p string, st *unix.Stat_t) error {
	if p == "/" {
		return unix.Lstat("/", st)
	}
	dir, err := openHostFd(parentOf(p), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	return unix.Fstatat(dir, baseName(p), st, unix.AT_SYMLINK_NOFOLLOW)
}

// ino maps a host (dev, ino) to the inode number the view shows: unchanged
// on the root's device, mixed with the device elsewhere, so files on two
// host filesystems do not collide and hard links keep sharing a number.
func (r *rawFS) ino(k hostKey) uint64 {
	swap := func(d uint64) uint64 { return d<<32 | d>>32 }
	return k.ino ^ swap(k.dev) ^ swap(r.rootDev)
}

// fillAttr converts a host stat into FUSE attributes.
func (r *rawFS) fillAttr(a *fuse.Attr, st *unix.Stat_t) {
	a.Ino = r.ino(hostKey{st.Dev, st.Ino})
	a.Size = uint64(st.Size)
	a.Blocks = uint64(st.Blocks)
	a.Atime, a.Atimensec = uint64(st.Atim.Sec), uint32(st.Atim.Nsec)
	a.Mtime, a.Mtimensec = uint64(st.Mtim.Sec), uint32(st.Mtim.Nsec)
	a.Ctime, a.Ctimensec = uint64(st.Ctim.Sec), uint32(st.Ctim.Nsec)
	a.Mode = st.Mode
	a.Nlink = uint32(st.Nlink)
	a.Uid, a.Gid = st.Uid, st.Gid
	a.Rdev = uint32(st.Rdev)
	a.Blksize = uint32(st.Blksize)
}

// statTarget reads tg's current host attributes and checks it is still the
// entry that was served: same type, and for a tree node or an open, the
// same identity. A vanished entry is ENOENT, a replaced one ESTALE.
func (r *rawFS) statTarget(tg target, st *unix.Stat_t) fuse.Status {
	if tg.synth {
		*st = syntheticStat()
		st.Ino = uint64(tg.node) | 1<<62
		return fuse.OK
	}
	if err := statAt(tg.path, st); err != nil {
		if isGone(err) {
			return fuse.ENOENT
		}
		return errno(err)
	}
	if st.Mode&unix.S_IFMT != tg.typ {
		return fuse.Status(unix.ESTALE)
	}
	if (hostKey{st.Dev, st.Ino}) != tg.key {
		return fuse.Status(unix.ESTALE)
	}
	return fuse.OK
}

// dirNlink is the link count of a tree directory: 2 plus its
// subdirectories in the view, as find's leaf optimization expects, rather
// than the host's count of entries the view hides.
func (r *rawFS) dirNlink(n Node) uint32 {
	c := uint32(2)
	for i, k := 0, r.t.NumChildren(n); i < k; i++ {
		if r.t.Type(r.t.ChildAt(n, i)) == unix.S_IFDIR {
			c++
		}
	}
	return c
}

func (r *rawFS) setEntry(out *fuse.EntryOut, nodeID uint64) {
	out.NodeId = nodeID
	out.Generation = 0
	out.SetEntryTimeout(r.entryTO)
	out.SetAttrTimeout(r.attrTO)
}

// closeAll releases host fds and backing files after the mount is gone.
func (r *rawFS) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, h := range r.handles {
		if h.fd >= 0 {
			unix.Close(h.fd)
		}
		delete(r.handles, id)
	}
	r.backing = map[uint64]*backing{}
	r.idle.Init()
	r.dyn = map[uint64]*dynNode{}
	r.dynByID = map[hostKey]uint64{}
}
