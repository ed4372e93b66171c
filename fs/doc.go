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
// # Errors
//
// NewTree returns *MissingError when spec entries are missing on the host.
// Mount returns *MountError with a Kind saying what is wrong with the
// mountpoint (missing, not a directory, already a vzfs mount, stale).
package fs
