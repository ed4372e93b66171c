// Package fs is the read-only view of a spec: the tree model (Tree, Node)
// that both the FUSE server and freeze read, and the FUSE server (Server)
// that serves it.
//
// # The model
//
// NewTree turns a spec into a Tree: a node for every spec entry and every
// ancestor directory. Ancestors are served with the host directory's mode,
// owner and times. A "/**" entry is a node whose host directory is served
// lazily below it, never walked at mount time. Attributes are not stored:
// they come from lstat on the host when asked, so the tree of a million
// entries fits in a few dozen bytes per entry. Walk visits every node,
// expanding "/**" subtrees from the host, in sorted order; freeze writes
// what it visits.
//
// # The server
//
// Mount serves a Tree on a directory over FUSE with go-fuse's raw protocol
// layer. Nodes are numbered by the Tree itself, so no per-node state exists
// until the kernel looks something up, and looked-up "/**" nodes are freed
// when the kernel forgets them. The mount is read-only by construction (no
// write operation is implemented beyond returning EROFS) and mounted "ro",
// nosuid and nodev by default, with default_permissions so the kernel
// applies the host modes. File data is opened on the host without following
// any symlink and checked against the (device, inode) that was served, so
// a file swapped on the host after lookup gives ESTALE, never another
// file's data. When the kernel allows FUSE passthrough, reads bypass the
// daemon entirely.
//
// # Learn mode
//
// With MountOptions.Learn, the view also serves what the spec lacks: a
// name looked up in a tree directory (or in a directory learned before)
// that the host has is handed to the Learner, then served from the host;
// a learned directory behaves like a "/**" one, except that every name
// looked up in it is learned too. A name that exists nowhere is a miss.
// Tree directories list their host directory whole, with the host's
// types, but a listing records nothing: only lookups do. Negative entries
// are not cached, so every miss reaches the Learner. NeverLearned trees
// (/proc, /sys, /dev, /run, /tmp) and the mountpoint itself are never
// served. Learned nodes are dynamic nodes like those below "/**": their
// inode numbers come from the host, and the kernel may forget them.
//
// SpecLearner is the Learner that appends to the spec file, one write(2)
// per line before the lookup is answered, and rewrites it sorted at Close;
// it holds SPEC.lock (flock) meanwhile, so a second learner of the same
// spec gets a *LockedError.
//
// # Errors
//
// NewTree returns *MissingError when spec entries are missing on the host.
// Mount returns *MountError with a Kind saying what is wrong with the
// mountpoint (missing, not a directory, already a vzfs mount, stale).
// NewSpecLearner returns *LockedError when another learner holds the spec.
package fs
