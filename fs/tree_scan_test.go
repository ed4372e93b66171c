package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// scanFixture makes a directory big enough for NewTree to read it with
// getdents rather than lstat each entry: files, hard links, symlinks,
// subdirectories, a FIFO. It returns the directory and every path in it.
func scanFixture(t *testing.T) (string, []string) {
	t.Helper()
	d := filepath.Join(t.TempDir(), "big")
	must(t, os.Mkdir(d, 0o755))
	var paths []string
	for i := 0; i < 3*minListed; i++ {
		p := filepath.Join(d, fmt.Sprintf("file%03d", i))
		must(t, os.WriteFile(p, []byte("x"), 0o644))
		paths = append(paths, p)
	}
	must(t, os.Link(paths[0], d+"/hardlink"))
	must(t, os.Symlink("file001", d+"/rel.link"))
	must(t, os.Symlink("/etc", d+"/abs.link"))
	must(t, os.Mkdir(d+"/sub", 0o700))
	must(t, os.WriteFile(d+"/sub/inner", nil, 0o644))
	must(t, unix.Mkfifo(d+"/fifo", 0o600))
	paths = append(paths, d+"/hardlink", d+"/rel.link", d+"/abs.link", d+"/sub", d+"/sub/inner", d+"/fifo")
	return d, paths
}

// checkAgainstLstat fails unless every node of tr has the type and
// (device, inode) lstat gives its path now.
func checkAgainstLstat(t *testing.T, tr *Tree) {
	t.Helper()
	for i := 0; i < tr.Len(); i++ {
		n := Node(i)
		var st unix.Stat_t
		must(t, unix.Lstat(tr.Path(n), &st))
		dev, ino := tr.HostID(n)
		if tr.Type(n) != st.Mode&unix.S_IFMT || dev != st.Dev || ino != st.Ino {
			t.Errorf("%s: tree has type %o dev %d ino %d, lstat %o %d %d",
				tr.Path(n), tr.Type(n), dev, ino, st.Mode&unix.S_IFMT, st.Dev, st.Ino)
		}
	}
}

// TestTreeDirentsMatchLstat: reading a directory with getdents gives every
// node the type and identity lstat gives, and entries missing from the
// listing are still reported missing.
func TestTreeDirentsMatchLstat(t *testing.T) {
	d, paths := scanFixture(t)
	s := spec.New()
	for _, p := range paths {
		s.AddPath(p)
	}
	s.AddPath(d + "/gone1")
	s.AddPath(d + "/gone2")
	tr, err := NewTree(s, TreeOptions{SkipMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, m := range tr.Missing() {
		missing = append(missing, m.Path)
	}
	if want := []string{d + "/gone1", d + "/gone2"}; !slices.Equal(missing, want) {
		t.Fatalf("missing = %q, want %q", missing, want)
	}
	if got, want := tr.Len(), len(paths)+len(ancestors(d)); got != want {
		t.Errorf("tree has %d nodes, want %d", got, want)
	}
	checkAgainstLstat(t, tr)
}

// ancestors lists p and its ancestor directories, "/" included.
func ancestors(p string) []string {
	out := []string{p}
	for p != "/" {
		p = parentOf(p)
		out = append(out, p)
	}
	return out
}

// TestTreeDirentsMountedFile: a file with a bind mount on it is served as
// the mounted file, as lstat sees it, not as the file getdents lists.
func TestTreeDirentsMountedFile(t *testing.T) {
	requireFUSE(t) // root, for the bind mount
	d, paths := scanFixture(t)
	src := filepath.Join(t.TempDir(), "other")
	must(t, os.WriteFile(src, []byte("other"), 0o644))
	target := paths[5]
	must(t, unix.Mount(src, target, "", unix.MS_BIND, ""))
	t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
	s := spec.New()
	for _, p := range paths {
		s.AddPath(p)
	}
	tr, err := NewTree(s, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, _, ok := tr.Lookup(target)
	if !ok {
		t.Fatalf("%s not in the tree", target)
	}
	var st unix.Stat_t
	must(t, unix.Stat(src, &st))
	if _, ino := tr.HostID(n); ino != st.Ino {
		t.Errorf("bind-mounted %s has inode %d, want the mounted file's %d", target, ino, st.Ino)
	}
	checkAgainstLstat(t, tr)
	_ = d
}

// TestTreeUnsortedSpec: a spec built by hand, unsorted and with
// duplicates, gives the same tree as its sorted form.
func TestTreeUnsortedSpec(t *testing.T) {
	d, paths := scanFixture(t)
	var entries []spec.Entry
	for i := len(paths) - 1; i >= 0; i-- {
		entries = append(entries, spec.Entry{Path: paths[i]})
	}
	entries = append(entries, spec.Entry{Path: paths[3]}, spec.Entry{Path: d + "/sub"}, spec.Entry{Path: d})
	tr, err := NewTree(&spec.Spec{Entries: entries}, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := NewTree(spec.New(entries...), TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != want.Len() {
		t.Fatalf("unsorted spec: %d nodes, sorted: %d", tr.Len(), want.Len())
	}
	for i := 0; i < tr.Len(); i++ {
		if a, b := tr.Path(Node(i)), want.Path(Node(i)); a != b {
			t.Fatalf("node %d: %s, sorted spec has %s", i, a, b)
		}
		if a, b := tr.IsExplicit(Node(i)), want.IsExplicit(Node(i)); a != b {
			t.Fatalf("%s: explicit %v, sorted spec says %v", tr.Path(Node(i)), a, b)
		}
	}
	n, _, _ := tr.Lookup(d)
	names := make([]string, 0, tr.NumChildren(n))
	for i := 0; i < tr.NumChildren(n); i++ {
		names = append(names, tr.Name(tr.ChildAt(n, i)))
	}
	if !sort.StringsAreSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Fatalf("children of %s not sorted and unique: %q", d, names)
	}
}

// TestTreeExtraDirIsEntry: an extra directory that the spec names as a
// plain entry is one node, not two.
func TestTreeExtraDirIsEntry(t *testing.T) {
	d, paths := scanFixture(t)
	s := spec.New()
	for _, p := range paths {
		if p != d+"/sub/inner" {
			s.AddPath(p)
		}
	}
	tr, err := NewTree(s, TreeOptions{ExtraDirs: []string{d + "/sub"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tr.Len(), len(paths)-1+len(ancestors(d)); got != want {
		t.Fatalf("tree has %d nodes, want %d", got, want)
	}
	n, _, ok := tr.Lookup(d + "/sub")
	if !ok || !tr.IsExplicit(n) || tr.IsSynthetic(n) {
		t.Fatalf("%s/sub: found %v, explicit %v, synthetic %v", d, ok, tr.IsExplicit(n), tr.IsSynthetic(n))
	}
}
