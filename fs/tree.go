package fs

import (
	"errors"
	"fmt"
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

	// Jobs bounds the parallel lstat pass; 0 means GOMAXPROCS.
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

// NewTree builds the view of s. It lstats every entry once, so that missing
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

	nodes := make([]buildNode, 1, len(entries)+len(entries)/4+16)
	nodes[0] = buildNode{path: "/", parent: noNode}
	index := make(map[string]uint32, cap(nodes))
	index["/"] = 0
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
	for _, e := range entries {
		if e.Path != "/" && coveredBySubtree(e.Path) {
			continue
		}
		if err := spec.Validate(e.Path); err != nil {
			return nil, fmt.Errorf("spec entry %q: %w", e.Path, err)
		}
		i := ensure(e.Path)
		nodes[i].flags |= flagExplicit
		if e.Subtree {
			nodes[i].flags |= flagSubtree
		}
	}
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

// lstatAll fills in type and identity for every node, in parallel: a spec of
// a million entries is a million lstat calls, which one core does in about
// a second.
func lstatAll(nodes []buildNode, jobs int) {
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	const chunk = 4096
	var wg sync.WaitGroup
	work := make(chan int, jobs)
	for w := 0; w < jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st unix.Stat_t
			// Siblings sit next to each other, so stat each relative to
			// an fd of their parent, opened once per run of siblings:
			// the kernel then walks one component instead of the whole
			// path. Opening the parent follows symlinks as lstat of the
			// full path would.
			dirFd, dirNode := -1, noNode
			for start := range work {
				end := min(start+chunk, len(nodes))
				for i := start; i < end; i++ {
					n := &nodes[i]
					var err error
					if i > 0 && n.parent != dirNode {
						if dirFd >= 0 {
							unix.Close(dirFd)
						}
						dirNode = n.parent
						dirFd, err = unix.Open(nodes[dirNode].path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
						if err != nil {
							dirFd = -1
						}
					}
					if i > 0 && dirFd >= 0 {
						err = unix.Fstatat(dirFd, baseName(n.path), &st, unix.AT_SYMLINK_NOFOLLOW)
					} else {
						err = unix.Lstat(n.path, &st)
					}
					if err != nil {
						n.err = err
						continue
					}
					n.typ = uint8(st.Mode >> 12 & 0xf)
					n.ino = st.Ino
					n.dev = st.Dev
				}
			}
			if dirFd >= 0 {
				unix.Close(dirFd)
			}
		}()
	}
	for start := 0; start < len(nodes); start += chunk {
		work <- start
	}
	close(work)
	wg.Wait()
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
