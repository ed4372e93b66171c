package fs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// Node names one node of a Tree: a spec entry or an ancestor directory of
// one. It is an index, so holding millions of them costs nothing; it is only
// meaningful together with the Tree that returned it.
type Node uint32

// RootNode is the node of "/"; every Tree has it.
const RootNode Node = 0

// noNode marks an absent parent (the root's).
const noNode = ^uint32(0)

// Node flags, kept in one byte per node.
const (
	flagExplicit  = 1 << 0 // the spec names this path (not only an ancestor)
	flagSubtree   = 1 << 1 // a "/**" entry: the host directory is served below it
	flagSynthetic = 1 << 2 // an extra directory that does not exist on the host
	flagExtra     = 1 << 3 // asked for through TreeOptions.ExtraDirs
	flagKeep      = 1 << 4 // an implicit symlink ancestor that entries are reached through
)

// Tree is the view model built from a spec: one node per spec entry and per
// ancestor directory, with the type and (device, inode) identity each had on
// the host when the tree was built. The FUSE server and freeze both read it,
// so what is served and what is frozen never disagree.
//
// A Tree is read-only after NewTree and safe for concurrent readers.
//
// # Layout
//
// A Tree is built to hold millions of entries in a few dozen bytes each:
// nodes are numbered breadth first, so the children of a node are a
// contiguous run of numbers sorted by name, and every per-node field is a
// flat slice indexed by Node. Names live in one byte arena. Nothing else is
// stored per node: attributes are read from the host with lstat when asked
// (Info), which also keeps them current.
type Tree struct {
	names    []byte   // all names, back to back
	nameOff  []uint32 // start of node n's name in names
	nameLen  []uint8  // NAME_MAX is 255
	parent   []uint32 // parent node, noNode for the root
	kidStart []uint32 // children of n are Node(kidStart[n]) .. Node(kidStart[n+1]-1)
	flags    []uint8
	typ      []uint8  // S_IFMT >> 12 at build time
	ino      []uint64 // host inode number at build time
	devIdx   []uint16 // index into devs
	devs     []uint64 // distinct host devices seen

	unreachable []string
	missing     []MissingEntry
}

// TreeOptions tunes NewTree.
type TreeOptions struct {
	// SkipMissing drops spec entries that do not exist on the host instead of
	// failing; Tree.Missing lists what was dropped.
	SkipMissing bool

	// ExtraDirs are directories the view must have even when neither the
	// spec nor the host has them: mount points for binds made inside the
	// view (vzfs run --bind). One that is missing on the host is served as
	// an empty root-owned 0755 directory.
	ExtraDirs []string

	// Jobs bounds the parallel lstat pass; 0 means GOMAXPROCS, at least 4.
	Jobs int
}

// MissingEntry is a spec entry that the host does not have.
type MissingEntry struct {
	Path string
	Err  error
}

// MissingError reports every spec entry missing on the host. NewTree returns
// it (without SkipMissing) so the user sees all of them at once rather than
// one per attempt.
type MissingError struct {
	Entries []MissingEntry
}

func (e *MissingError) Error() string {
	const show = 10
	var b strings.Builder
	fmt.Fprintf(&b, "%d spec entr%s missing on the host:", len(e.Entries), plural(len(e.Entries), "y", "ies"))
	for i, m := range e.Entries {
		if i == show {
			fmt.Fprintf(&b, " ... and %d more", len(e.Entries)-show)
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(" " + m.Path)
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// buildNode is a node while the tree is being built, before it is packed.
type buildNode struct {
	path   string // substring of a spec path: no extra allocation
	parent uint32
	flags  uint8
	typ    uint8
	ino    uint64
	dev    uint64
	err    error
	state  uint8
}

// Build states of a node.
const (
	stateUnknown     = iota
	stateAlive       // served
	stateMissing     // not on the host
	stateUnreachable // below a host symlink or file
	stateDropped     // an implicit ancestor with nothing live below it
)

// NewTree builds the view of s. It looks every entry up once (lstat, or
// getdents of a directory the spec lists much of), so that missing
// entries are found now rather than by a program at run time; with
// o.SkipMissing they are dropped (see Tree.Missing), otherwise the error is
// a *MissingError naming all of them.
//
// Entries below a "/**" entry are dropped: the subtree serves them from the
// host. Entries whose path passes through a host symlink or non-directory
// are dropped too, since the view serves that ancestor verbatim and the
// kernel follows it; Tree.Unreachable lists them.
func NewTree(s *spec.Spec, o TreeOptions) (*Tree, error) {
	// Building allocates a few tables per entry that die at the end; with
	// the default GC target a million-entry build spends most of its time
	// collecting them over and over.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	var entries []spec.Entry
	if s != nil {
		entries = s.Entries
	}
	subtrees := map[string]bool{}
	for _, e := range entries {
		if e.Subtree {
			subtrees[e.Path] = true
		}
	}
	coveredBySubtree := func(p string) bool {
		if len(subtrees) == 0 {
			return false
		}
		for d := parentOf(p); ; d = parentOf(d) {
			if subtrees[d] {
				return true
			}
			if d == "/" {
				return false
			}
		}
	}

	// Only directories go in the index: a million-entry spec has a few
	// thousand, and an index of every entry is most of the build's time.
	// Pass one makes a node for every parent directory; pass two a node
	// for every entry that is not one of them. Entries come sorted, or
	// nearly, so consecutive entries mostly share a parent: remembering
	// the last one saves most lookups.
	nodes := make([]buildNode, 1, len(entries)+len(entries)/4+16)
	nodes[0] = buildNode{path: "/", parent: noNode}
	index := map[string]uint32{"/": 0}
	var ensure func(p string) uint32
	ensure = func(p string) uint32 {
		if i, ok := index[p]; ok {
			return i
		}
		par := ensure(parentOf(p))
		i := uint32(len(nodes))
		nodes = append(nodes, buildNode{path: p, parent: par})
		index[p] = i
		return i
	}
	lastDir, lastIdx, lastCovered := "", uint32(0), false
	// parentIdx returns the node of p's parent, made if need be, or
	// covered when a "/**" entry above p serves it.
	parentIdx := func(p string) (idx uint32, covered bool) {
		d := parentOf(p)
		if d != lastDir {
			lastDir = d
			lastCovered = subtrees[d] || coveredBySubtree(d)
			if !lastCovered {
				lastIdx = ensure(d)
			}
		}
		return lastIdx, lastCovered
	}
	// Specs come sorted and without duplicates (spec.Spec keeps them
	// so), and then a duplicate can only be the entry just before; a
	// spec built by hand gets an index of its leaves as well.
	sorted := true
	for i := 1; i < len(entries) && sorted; i++ {
		sorted = entries[i-1].Path <= entries[i].Path
	}
	var leaves map[string]uint32
	if !sorted {
		leaves = map[string]uint32{}
	}
	// Extra directories are made with ensure below, which must find an
	// entry that names one: those few entries go in the index too.
	extra := map[string]bool{}
	for _, d := range o.ExtraDirs {
		for ; d != "/" && d != "" && !extra[d]; d = parentOf(d) {
			extra[d] = true
		}
	}
	skip := make([]bool, len(entries))
	for i, e := range entries {
		if e.Path == "/" {
			continue
		}
		if err := spec.Validate(e.Path); err != nil {
			return nil, fmt.Errorf("spec entry %q: %w", e.Path, err)
		}
		_, skip[i] = parentIdx(e.Path)
	}
	lastLeaf := noNode
	for i, e := range entries {
		if skip[i] {
			continue
		}
		j, ok := index[e.Path]
		switch {
		case ok:
		case leaves != nil:
			j, ok = leaves[e.Path]
		case lastLeaf != noNode && nodes[lastLeaf].path == e.Path:
			j, ok = lastLeaf, true
		}
		if !ok {
			par, _ := parentIdx(e.Path)
			j = uint32(len(nodes))
			nodes = append(nodes, buildNode{path: e.Path, parent: par})
			lastLeaf = j
			if leaves != nil {
				leaves[e.Path] = j
			}
			if extra[e.Path] {
				index[e.Path] = j
			}
		}
		nodes[j].flags |= flagExplicit
		if e.Subtree {
			nodes[j].flags |= flagSubtree
		}
	}
	skip, leaves = nil, nil
	for _, d := range o.ExtraDirs {
		if err := spec.Validate(d); err != nil {
			return nil, fmt.Errorf("extra directory %q: %w", d, err)
		}
		if coveredBySubtree(d) {
			continue
		}
		i := ensure(d)
		for j := i; j != noNode && nodes[j].flags&(flagExplicit|flagExtra) == 0; j = nodes[j].parent {
			nodes[j].flags |= flagExtra
		}
		nodes[i].flags |= flagExtra
	}
	index = nil
	lstatAll(nodes, o.Jobs)

	// Decide which nodes live, parents first: node i's parent always has a
	// smaller index, because ensure appends parents before children.
	var missing []MissingEntry
	var unreachable []string
	for i := range nodes {
		n := &nodes[i]
		if i > 0 {
			p := &nodes[n.parent]
			switch {
			case p.state == stateMissing:
				n.state, n.err = stateMissing, p.err
			case p.state == stateUnreachable:
				n.state = stateUnreachable
			case p.typ != unix.S_IFDIR>>12:
				// The ancestor is a symlink (or a file): serve it as it is
				// and let the kernel follow it; keep it even if the spec
				// only implies it.
				n.state = stateUnreachable
				p.flags |= flagKeep
			}
			if n.state != stateUnknown {
				if n.flags&flagExplicit != 0 {
					if n.state == stateMissing {
						missing = append(missing, MissingEntry{Path: n.path, Err: n.err})
					} else {
						unreachable = append(unreachable, n.path)
					}
				}
				continue
			}
		}
		if n.err != nil {
			if n.flags&flagExtra != 0 && errors.Is(n.err, unix.ENOENT) {
				n.flags |= flagSynthetic
				n.typ = unix.S_IFDIR >> 12
				n.err = nil
			} else {
				n.state = stateMissing
				if n.flags&flagExplicit != 0 {
					missing = append(missing, MissingEntry{Path: n.path, Err: n.err})
				}
				continue
			}
		}
		if n.flags&flagExtra != 0 && n.typ != unix.S_IFDIR>>12 {
			return nil, fmt.Errorf("extra directory %s: exists on the host and is not a directory", n.path)
		}
		if n.flags&flagSubtree != 0 && n.typ != unix.S_IFDIR>>12 {
			// "/**" on a file is just the file.
			n.flags &^= flagSubtree
		}
		n.state = stateAlive
	}
	// An implicit ancestor lives only for the sake of a live descendant: a
	// missing entry must not leave an empty directory behind. Children come
	// after parents, so walking backwards sees every child first.
	hasKids := make([]bool, len(nodes))
	for i := len(nodes) - 1; i > 0; i-- {
		n := &nodes[i]
		if n.state == stateAlive && n.flags&(flagExplicit|flagExtra|flagKeep) == 0 && !hasKids[i] {
			n.state = stateDropped
		}
		if n.state == stateAlive {
			hasKids[n.parent] = true
		}
	}
	hasKids = nil
	sortStrings(missing)
	if len(missing) > 0 && !o.SkipMissing {
		return nil, &MissingError{Entries: missing}
	}
	if nodes[0].state != stateAlive {
		return nil, fmt.Errorf("lstat /: %w", nodes[0].err)
	}
	t := pack(nodes)
	sort.Strings(unreachable)
	t.unreachable = unreachable
	t.missing = missing
	return t, nil
}

func sortStrings(m []MissingEntry) {
	sort.Slice(m, func(i, j int) bool { return m[i].Path < m[j].Path })
}

// lstatAll fills in type and identity for every node. Nodes are grouped by
// parent directory and the directories shared out among workers. A spec of
// a million entries is a million lstat calls, which this machine does in
// about two seconds a core; most entries sit in directories the spec lists
// much of, though, and one getdents of such a directory gives the name,
// type and inode of every entry at once (see statDir).
func lstatAll(nodes []buildNode, jobs int) {
	if jobs <= 0 {
		// Waiting on a cold disk is not computing: a few more workers
		// than cores keep it busy.
		jobs = max(4, runtime.GOMAXPROCS(0))
	}
	var st unix.Stat_t
	if err := unix.Lstat(nodes[0].path, &st); err != nil {
		nodes[0].err = err
	} else {
		nodes[0].setStat(&st)
	}
	if len(nodes) == 1 {
		return
	}
	// Children of each node, by counting sort on parent.
	start := make([]uint32, len(nodes)+1)
	for i := 1; i < len(nodes); i++ {
		start[nodes[i].parent+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	kids := make([]uint32, len(nodes)-1)
	fill := append([]uint32(nil), start[:len(nodes)]...)
	for i := 1; i < len(nodes); i++ {
		p := nodes[i].parent
		kids[fill[p]] = uint32(i)
		fill[p]++
	}
	fill = nil
	var dirs []uint32
	for p := range nodes {
		if start[p+1] > start[p] {
			dirs = append(dirs, uint32(p))
		}
	}
	mounts := mountPoints()
	var wg sync.WaitGroup
	work := make(chan []uint32, jobs)
	for w := 0; w < jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sd dirStatter
			for batch := range work {
				for _, p := range batch {
					sd.statDir(nodes, p, kids[start[p]:start[p+1]], mounts)
				}
			}
		}()
	}
	// Batches of directories, each about 4096 entries' worth, so that
	// small directories do not cost a channel operation each.
	for i := 0; i < len(dirs); {
		j, n := i, 0
		for j < len(dirs) && n < 4096 {
			n += int(start[dirs[j]+1] - start[dirs[j]])
			j++
		}
		work <- dirs[i:j]
		i = j
	}
	close(work)
	wg.Wait()
}

func (n *buildNode) setStat(st *unix.Stat_t) {
	n.typ = uint8(st.Mode >> 12 & 0xf)
	n.ino = st.Ino
	n.dev = st.Dev
}

// dirStatter is one lstatAll worker's scratch space.
type dirStatter struct {
	buf    []byte
	wanted map[string]uint32
	seen   []bool
}

// minListed is the fewest entries a directory must have in the spec for
// statDir to read the directory rather than lstat them one by one.
const minListed = 16

// statDir fills in the children kids of directory node p. Opening the
// directory by its full path follows symlinks, as lstat of the children's
// full paths would: the caller drops nodes below a symlink anyway.
//
// When the spec lists many entries of the directory, and the directory is
// not much bigger than that, it is read with getdents instead: the name,
// type (d_type) and inode (d_ino) of every entry, with the device the
// directory's. That is what lstat would say, except for an entry that is
// a mount point (getdents gives the covered inode), a subdirectory (a
// btrfs subvolume has a device of its own) and filesystems whose d_ino or
// d_type is not st_ino or st_mode's (overlayfs, network filesystems): those
// entries, those filesystems and names the listing lacks are lstat'ed
// one by one.
func (sd *dirStatter) statDir(nodes []buildNode, p uint32, kids []uint32, mounts map[string]bool) {
	dir := nodes[p].path
	if len(kids) >= minListed {
		if sd.readDir(nodes, dir, kids, mounts) {
			return
		}
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fd = -1
	}
	sd.statEach(nodes, fd, kids)
	if fd >= 0 {
		unix.Close(fd)
	}
}

// statEach lstats kids relative to dirFd, or by full path without one.
func (sd *dirStatter) statEach(nodes []buildNode, dirFd int, kids []uint32) {
	var st unix.Stat_t
	for _, k := range kids {
		n := &nodes[k]
		var err error
		if dirFd >= 0 {
			err = unix.Fstatat(dirFd, baseName(n.path), &st, unix.AT_SYMLINK_NOFOLLOW)
		} else {
			err = unix.Lstat(n.path, &st)
		}
		if err != nil {
			n.err = err
			continue
		}
		n.setStat(&st)
	}
}

// trustedDirents are filesystems whose getdents gives d_ino == st_ino and
// a d_type always set and equal to lstat's.
var trustedDirents = map[int64]bool{
	0xEF53:     true, // ext2, ext3, ext4
	0x58465342: true, // xfs
	0x01021994: true, // tmpfs
	0x9123683E: true, // btrfs
	0xF2F52010: true, // f2fs
}

// readDir is statDir's getdents path; false means it did nothing and the
// caller must lstat every child.
func (sd *dirStatter) readDir(nodes []buildNode, dir string, kids []uint32, mounts map[string]bool) bool {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	var sfs unix.Statfs_t
	if unix.Fstat(fd, &st) != nil || unix.Fstatfs(fd, &sfs) != nil || !trustedDirents[int64(sfs.Type)] {
		return false
	}
	// A directory of many more entries than the spec wants from it
	// costs more to read than the lstats; directory sizes are a rough
	// guide (ext4 counts blocks, tmpfs 20 bytes an entry).
	if st.Size > int64(len(kids))*8*32 && st.Size > 64<<10 {
		return false
	}
	if sd.wanted == nil {
		sd.wanted = map[string]uint32{}
		sd.buf = make([]byte, 64<<10)
	}
	clear(sd.wanted)
	for i, k := range kids {
		sd.wanted[baseName(nodes[k].path)] = uint32(i)
	}
	sd.seen = append(sd.seen[:0], make([]bool, len(kids))...)
	dev := st.Dev
	var rest []uint32 // children to lstat one by one
	for {
		n, err := unix.Getdents(fd, sd.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false
		}
		if n <= 0 {
			break
		}
		b := sd.buf[:n]
		for len(b) >= 19 {
			// struct linux_dirent64: ino u64, off s64, reclen u16,
			// type u8, name.
			reclen := int(binary.LittleEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return false
			}
			ino := binary.LittleEndian.Uint64(b[0:8])
			typ := b[18]
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			i, ok := sd.wanted[string(name)]
			if !ok || sd.seen[i] {
				continue
			}
			sd.seen[i] = true
			k := kids[i]
			if typ == unix.DT_DIR || typ == unix.DT_UNKNOWN || mounts[nodes[k].path] {
				rest = append(rest, k)
				continue
			}
			nodes[k].typ = typ
			nodes[k].ino = ino
			nodes[k].dev = dev
		}
	}
	for i, k := range kids {
		if !sd.seen[i] {
			rest = append(rest, k)
		}
	}
	if len(rest) > 0 {
		sd.statEach(nodes, fd, rest)
	}
	return true
}

// mountPoints returns the paths mounts are on, from /proc/self/mountinfo;
// nil when it cannot be read, and then nothing is taken as one (see
// statDir: directories, where mounts usually are, are lstat'ed anyway).
func mountPoints() map[string]bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	m := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 {
			m[unescapeMountinfo(fields[4])] = true
		}
	}
	return m
}

// pack lays the live nodes out breadth first with each node's children
// sorted by name, which is what makes Child a binary search and Children a
// slice bound.
func pack(nodes []buildNode) *Tree {
	// Children lists of the build nodes, by counting sort on parent.
	count := make([]uint32, len(nodes)+1)
	live := 0
	nameBytes := 0
	for i := 1; i < len(nodes); i++ {
		if nodes[i].state == stateAlive {
			count[nodes[i].parent+1]++
			live++
			nameBytes += len(baseName(nodes[i].path))
		}
	}
	for i := 1; i < len(count); i++ {
		count[i] += count[i-1]
	}
	kids := make([]uint32, live)
	fill := append([]uint32(nil), count[:len(nodes)]...)
	for i := 1; i < len(nodes); i++ {
		if nodes[i].state == stateAlive {
			p := nodes[i].parent
			kids[fill[p]] = uint32(i)
			fill[p]++
		}
	}
	fill = nil
	for p := range nodes {
		group := kids[count[p]:count[p+1]]
		if len(group) > 1 {
			sort.Slice(group, func(a, b int) bool {
				return baseName(nodes[group[a]].path) < baseName(nodes[group[b]].path)
			})
		}
	}

	n := live + 1
	t := &Tree{
		names:    make([]byte, 0, nameBytes),
		nameOff:  make([]uint32, n),
		nameLen:  make([]uint8, n),
		parent:   make([]uint32, n),
		kidStart: make([]uint32, n+1),
		flags:    make([]uint8, n),
		typ:      make([]uint8, n),
		ino:      make([]uint64, n),
		devIdx:   make([]uint16, n),
	}
	devIndex := map[uint64]uint16{}
	order := make([]uint32, 1, n) // new index -> build index
	order[0] = 0
	newIdx := make([]uint32, len(nodes))
	for next := 0; next < len(order); next++ {
		b := order[next]
		bn := &nodes[b]
		t.kidStart[next] = uint32(len(order))
		for _, k := range kids[count[b]:count[b+1]] {
			newIdx[k] = uint32(len(order))
			order = append(order, k)
		}
		name := baseName(bn.path)
		if b == 0 {
			name = ""
			t.parent[next] = noNode
		} else {
			t.parent[next] = newIdx[bn.parent]
		}
		t.nameOff[next] = uint32(len(t.names))
		t.nameLen[next] = uint8(len(name))
		t.names = append(t.names, name...)
		t.flags[next] = bn.flags
		t.typ[next] = bn.typ
		t.ino[next] = bn.ino
		di, ok := devIndex[bn.dev]
		if !ok {
			di = uint16(len(t.devs))
			t.devs = append(t.devs, bn.dev)
			devIndex[bn.dev] = di
		}
		t.devIdx[next] = di
	}
	t.kidStart[n] = uint32(n)
	return t
}

// Len returns the number of nodes, the root included.
func (t *Tree) Len() int { return len(t.flags) }

// Missing lists the spec entries NewTree dropped under SkipMissing because
// the host lacks them.
func (t *Tree) Missing() []MissingEntry { return t.missing }

// Unreachable lists spec entries dropped because an ancestor is a host
// symlink (or other non-directory): programs reach them through the link,
// so its target must be in the spec.
func (t *Tree) Unreachable() []string { return t.unreachable }

func (t *Tree) valid(n Node) bool { return int(n) < len(t.flags) }

// Name returns n's last path component; the root's is "".
func (t *Tree) Name(n Node) string {
	o := t.nameOff[n]
	return string(t.names[o : o+uint32(t.nameLen[n])])
}

// nameBytes returns n's name without copying.
func (t *Tree) nameBytes(n Node) []byte {
	o := t.nameOff[n]
	return t.names[o : o+uint32(t.nameLen[n])]
}

// Parent returns n's parent directory; the root is its own parent.
func (t *Tree) Parent(n Node) Node {
	if n == RootNode {
		return RootNode
	}
	return Node(t.parent[n])
}

// Path returns n's absolute path in the view. Built on demand from the
// names, so it allocates.
func (t *Tree) Path(n Node) string {
	if n == RootNode {
		return "/"
	}
	var depth, size int
	for m := n; m != RootNode; m = Node(t.parent[m]) {
		depth++
		size += 1 + int(t.nameLen[m])
	}
	buf := make([]byte, size)
	end := size
	for m := n; m != RootNode; m = Node(t.parent[m]) {
		nb := t.nameBytes(m)
		end -= len(nb)
		copy(buf[end:], nb)
		end--
		buf[end] = '/'
	}
	return string(buf)
}

// HostPath returns the host path n is served from. The view mirrors host
// paths one to one today; the two are kept apart so a later root prefix
// (a foreign rootfs) changes only this.
func (t *Tree) HostPath(n Node) string { return t.Path(n) }

// Children returns n's children in the spec, sorted by name. Under a "/**"
// node (IsSubtree) the host directory is listed instead; Children is then
// empty.
func (t *Tree) Children(n Node) []Node {
	lo, hi := t.kidStart[n], t.kidStart[n+1]
	out := make([]Node, hi-lo)
	for i := range out {
		out[i] = Node(lo + uint32(i))
	}
	return out
}

// NumChildren returns len(Children(n)) without allocating.
func (t *Tree) NumChildren(n Node) int { return int(t.kidStart[n+1] - t.kidStart[n]) }

// ChildAt returns n's i-th child in name order, 0 <= i < NumChildren(n).
func (t *Tree) ChildAt(n Node, i int) Node { return Node(t.kidStart[n] + uint32(i)) }

// Child looks up the child of n called name.
func (t *Tree) Child(n Node, name string) (Node, bool) {
	lo, hi := int(t.kidStart[n]), int(t.kidStart[n+1])
	i := sort.Search(hi-lo, func(i int) bool {
		return string(t.nameBytes(Node(lo+i))) >= name
	})
	if i < hi-lo && string(t.nameBytes(Node(lo+i))) == name {
		return Node(lo + i), true
	}
	return 0, false
}

// Lookup finds the node for an absolute view path. It does not descend into
// "/**" subtrees: for a path below one it returns the subtree's root node
// and rest, the remaining relative path; rest is "" for a node of the tree.
func (t *Tree) Lookup(p string) (n Node, rest string, ok bool) {
	if p == "" || p[0] != '/' {
		return 0, "", false
	}
	n = RootNode
	p = strings.TrimLeft(p, "/")
	for p != "" {
		name := p
		if i := strings.IndexByte(p, '/'); i >= 0 {
			name = p[:i]
		}
		if t.IsSubtree(n) {
			return n, p, true
		}
		c, found := t.Child(n, name)
		if !found {
			return 0, "", false
		}
		n = c
		p = strings.TrimLeft(p[len(name):], "/")
	}
	return n, "", true
}

// IsSubtree reports whether n is a "/**" entry whose host directory is
// served below it.
func (t *Tree) IsSubtree(n Node) bool { return t.flags[n]&flagSubtree != 0 }

// IsExplicit reports whether the spec names n itself, rather than only a
// path below it.
func (t *Tree) IsExplicit(n Node) bool { return t.flags[n]&flagExplicit != 0 }

// IsSynthetic reports whether n is an extra directory that does not exist on
// the host (TreeOptions.ExtraDirs).
func (t *Tree) IsSynthetic(n Node) bool { return t.flags[n]&flagSynthetic != 0 }

// Type returns n's file type bits (unix.S_IFDIR, S_IFREG, S_IFLNK, ...) as
// found on the host when the tree was built.
func (t *Tree) Type(n Node) uint32 { return uint32(t.typ[n]) << 12 }

// HostID returns the host (device, inode) n had when the tree was built.
// Serving compares it with what it finds later, to notice a swapped file.
func (t *Tree) HostID(n Node) (dev, ino uint64) {
	return t.devs[t.devIdx[n]], t.ino[n]
}

// parentOf returns the parent of a clean absolute path; "/" is its own.
func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// baseName returns the last component of a clean absolute path.
func baseName(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}
