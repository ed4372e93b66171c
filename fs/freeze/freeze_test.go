package freeze

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	vfs "github.com/vzfs/vzfs/fs"
	"github.com/vzfs/vzfs/spec"
)

// fixture builds a small tree of every kind of entry freeze must keep and
// returns its root. Times are set to fixed, distinct values so that a copy
// that forgets them shows.
func fixture(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "fix")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "bin", "tool"), []byte("#!/bin/sh\necho tool\n"), 0o755))
	must(unix.Chmod(filepath.Join(root, "bin", "tool"), 0o4755))
	must(os.WriteFile(filepath.Join(root, "bin", "plain"), []byte("data"), 0o640))
	must(os.Link(filepath.Join(root, "bin", "plain"), filepath.Join(root, "bin", "plain-link")))
	must(os.Symlink("/etc/hostname", filepath.Join(root, "abs-link")))
	must(os.Symlink("bin/tool", filepath.Join(root, "rel-link")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o620))
	must(os.Mkdir(filepath.Join(root, "sticky"), 0o755))
	must(unix.Chmod(filepath.Join(root, "sticky"), 0o1777))
	must(os.Mkdir(filepath.Join(root, "ro"), 0o755))
	must(os.WriteFile(filepath.Join(root, "ro", "inside"), []byte("x"), 0o600))
	// A sparse file: 64 MiB with data only at both ends.
	sp, err := os.Create(filepath.Join(root, "sparse"))
	must(err)
	_, err = sp.WriteAt([]byte("head"), 0)
	must(err)
	_, err = sp.WriteAt([]byte("tail"), 64<<20-4)
	must(err)
	must(sp.Close())
	if err := unix.Lsetxattr(filepath.Join(root, "bin", "plain"), "user.vzfs", []byte("v\x00bin"), 0); err != nil {
		t.Logf("no user xattrs here: %v", err)
	}
	ts := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	for i, p := range []string{"bin/tool", "bin/plain", "abs-link", "rel-link", "fifo", "sparse", "ro/inside", "ro", "sticky", "bin", "."} {
		tt := unix.NsecToTimespec(ts.Add(time.Duration(i) * time.Hour).UnixNano())
		must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, p), []unix.Timespec{tt, tt}, unix.AT_SYMLINK_NOFOLLOW))
	}
	must(unix.Chmod(filepath.Join(root, "ro"), 0o555))
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(root, "ro"), 0o755) })
	return root
}

func treeOf(t *testing.T, entries ...spec.Entry) *vfs.Tree {
	t.Helper()
	tr, err := vfs.NewTree(spec.New(entries...), vfs.TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// compareTrees checks that every entry below src has a twin below dst with
// the same type, mode, owner, size, mtime, link target and xattrs.
func compareTrees(t *testing.T, src, dst string) {
	t.Helper()
	n := 0
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		n++
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		var a, b unix.Stat_t
		if err := unix.Lstat(p, &a); err != nil {
			return err
		}
		if err := unix.Lstat(q, &b); err != nil {
			t.Errorf("%s: missing in the copy: %v", rel, err)
			return nil
		}
		if a.Mode != b.Mode {
			t.Errorf("%s: mode %#o, copy has %#o", rel, a.Mode, b.Mode)
		}
		if isRoot && (a.Uid != b.Uid || a.Gid != b.Gid) {
			t.Errorf("%s: owner %d:%d, copy has %d:%d", rel, a.Uid, a.Gid, b.Uid, b.Gid)
		}
		if a.Mode&unix.S_IFMT != unix.S_IFDIR && a.Size != b.Size {
			t.Errorf("%s: size %d, copy has %d", rel, a.Size, b.Size)
		}
		if a.Mtim != b.Mtim {
			t.Errorf("%s: mtime %v, copy has %v", rel, a.Mtim, b.Mtim)
		}
		if a.Mode&unix.S_IFMT == unix.S_IFLNK {
			la, _ := os.Readlink(p)
			lb, _ := os.Readlink(q)
			if la != lb {
				t.Errorf("%s: link %q, copy has %q", rel, la, lb)
			}
			return nil
		}
		xa, err := readXattrs(p, &a)
		if err != nil {
			return err
		}
		xb, err := readXattrs(q, &b)
		if err != nil {
			return err
		}
		if fmt.Sprint(xa) != fmt.Sprint(xb) {
			t.Errorf("%s: xattrs %q, copy has %q", rel, xa, xb)
		}
		if a.Mode&unix.S_IFMT == unix.S_IFREG {
			da, _ := os.ReadFile(p)
			db, _ := os.ReadFile(q)
			if !bytes.Equal(da, db) {
				t.Errorf("%s: content differs", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("compared only %d entries", n)
	}
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestToDirFidelity(t *testing.T) {
	src := fixture(t)
	dest := filepath.Join(t.TempDir(), "out")
	s, err := ToDir(treeOf(t, spec.Entry{Path: src, Subtree: true}), dest, DirOptions{Jobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	if s.Files != 5 || s.Copied != 4 {
		t.Errorf("stats %+v: want 5 files, 4 copied (one is a hard link)", s)
	}
	out := filepath.Join(dest, src)
	compareTrees(t, src, out)
	if ino(t, filepath.Join(out, "bin/plain")) != ino(t, filepath.Join(out, "bin/plain-link")) {
		t.Error("hard links do not share an inode in the copy")
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(out, "sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("sparse file allocates %d bytes in the copy; holes were filled", st.Blocks*512)
	}
	// Ancestors of the subtree are there too, as directories.
	if fi, err := os.Lstat(filepath.Join(dest, filepath.Dir(src))); err != nil || !fi.IsDir() {
		t.Errorf("ancestor directory missing: %v", err)
	}
	// Nothing is left beside DEST.
	ents, _ := os.ReadDir(filepath.Dir(dest))
	if len(ents) != 1 {
		t.Errorf("leftovers beside DEST: %v", ents)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(out, "ro"), 0o755) })
}

func TestToDirRefusesExisting(t *testing.T) {
	src := fixture(t)
	tr := treeOf(t, spec.Entry{Path: filepath.Join(src, "bin")})
	dir := t.TempDir()

	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(full, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := ToDir(tr, full, DirOptions{})
	var ee *ExistsError
	if !errors.As(err, &ee) {
		t.Errorf("non-empty DEST: got %v, want ExistsError", err)
	}

	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ToDir(tr, empty, DirOptions{}); err != nil {
		t.Errorf("empty DEST: %v", err)
	}

	link := filepath.Join(dir, "link")
	if err := os.Symlink(empty, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ToDir(tr, link, DirOptions{Update: true}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("DEST a symlink: got %v", err)
	}
	if _, err := ToDir(tr, filepath.Join(link, "sub"), DirOptions{}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("DEST below a symlink: got %v", err)
	}
	if _, err := os.Lstat(filepath.Join(empty, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("freeze wrote through the symlink: %v", err)
	}
}

func TestToDirUpdate(t *testing.T) {
	src := fixture(t)
	tr := func() *vfs.Tree { return treeOf(t, spec.Entry{Path: src, Subtree: true}) }
	dest := filepath.Join(t.TempDir(), "out")
	if _, err := ToDir(tr(), dest, DirOptions{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dest, src)
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(out, "ro"), 0o755) })
	rootIno := ino(t, dest)

	// Nothing changed: nothing is written, not even a new root.
	s, err := ToDir(tr(), dest, DirOptions{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Unchanged || ino(t, dest) != rootIno {
		t.Fatalf("no-change update rewrote DEST: %+v", s)
	}

	keptIno := ino(t, filepath.Join(out, "sparse"))
	// Change one file (same size, new mtime), add one, remove one; and
	// plant a stray file in DEST.
	if err := os.WriteFile(filepath.Join(src, "bin/tool"), []byte("#!/bin/sh\necho TOOL\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(src, "new"), "new")
	if err := os.Remove(filepath.Join(src, "rel-link")); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(out, "stray"), "stray")
	s, err = ToDir(tr(), dest, DirOptions{Update: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Unchanged || s.Copied != 2 {
		t.Errorf("update stats %+v: want 2 files copied (tool, new)", s)
	}
	compareTrees(t, src, out)
	for _, gone := range []string{"rel-link", "stray"} {
		if _, err := os.Lstat(filepath.Join(out, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still in DEST after update: %v", gone, err)
		}
	}
	if ino(t, filepath.Join(out, "sparse")) != keptIno {
		t.Error("unchanged file was rewritten by update")
	}

	// Same size and mtime but other bytes: only --checksum sees it.
	st, _ := os.Stat(filepath.Join(src, "bin/plain"))
	writeTestFile(t, filepath.Join(src, "bin/plain"), "DATA")
	if err := os.Chtimes(filepath.Join(src, "bin/plain"), st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if s, err := ToDir(tr(), dest, DirOptions{Update: true}); err != nil || !s.Unchanged {
		t.Errorf("quick check: %+v, %v; want unchanged", s, err)
	}
	if s, err := ToDir(tr(), dest, DirOptions{Update: true, Checksum: true}); err != nil || s.Unchanged {
		t.Errorf("--checksum: %+v, %v; want a rewrite", s, err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "bin/plain")); string(b) != "DATA" {
		t.Errorf("after --checksum update bin/plain holds %q", b)
	}
}

func writeTestFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestToDirUpdatePlantedSymlink: a symlink planted in DEST where the spec
// has a directory must be replaced, never followed.
func TestToDirUpdatePlantedSymlink(t *testing.T) {
	src := fixture(t)
	tr := treeOf(t, spec.Entry{Path: src, Subtree: true})
	dest := filepath.Join(t.TempDir(), "out")
	victim := t.TempDir()
	first, rest, _ := strings.Cut(strings.TrimPrefix(src, "/"), "/")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dest, first)); err != nil {
		t.Fatal(err)
	}
	// Behind the link sits a perfect old tree: same sizes, times, modes.
	// An update that followed the link would reuse (hard-link) its files,
	// or write into it.
	bait := filepath.Join(victim, rest)
	if err := os.MkdirAll(filepath.Dir(bait), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src, bait).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(bait, "ro"), 0o755) })
	before := listTree(t, victim)
	if _, err := ToDir(tr, dest, DirOptions{Update: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dest, src, "ro"), 0o755) })
	if after := listTree(t, victim); after != before {
		t.Errorf("freeze changed the tree behind the planted symlink:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, f := range []string{"bin/plain", "bin/tool", "sparse"} {
		if ino(t, filepath.Join(dest, src, f)) == ino(t, filepath.Join(bait, f)) {
			t.Errorf("%s was reused from behind the planted symlink", f)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dest, first)); err != nil || !fi.IsDir() {
		t.Errorf("planted symlink not replaced by a directory: %v", err)
	}
	compareTrees(t, src, filepath.Join(dest, src))
}

func TestToDirLinkHard(t *testing.T) {
	src := fixture(t)
	dest := filepath.Join(filepath.Dir(src), "out") // same filesystem
	s, err := ToDir(treeOf(t, spec.Entry{Path: src, Subtree: true}), dest, DirOptions{Link: LinkHard})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dest, src)
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(out, "ro"), 0o755) })
	// The setuid bin/tool is copied: a link would keep the old inode alive
	// in the tree after a host security update.
	if s.Linked != 3 || s.Copied != 1 {
		t.Errorf("stats %+v: want 3 linked, 1 copied", s)
	}
	if ino(t, filepath.Join(out, "sparse")) != ino(t, filepath.Join(src, "sparse")) {
		t.Error("--link hard did not share the host inode")
	}
	if ino(t, filepath.Join(out, "bin/tool")) == ino(t, filepath.Join(src, "bin/tool")) {
		t.Error("--link hard linked a setuid binary")
	}
	compareTrees(t, src, out)
}

func TestToDirReflinkFallsBack(t *testing.T) {
	src := fixture(t)
	dest := filepath.Join(t.TempDir(), "out")
	if _, err := ToDir(treeOf(t, spec.Entry{Path: src, Subtree: true}), dest, DirOptions{Link: LinkReflink}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dest, src)
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(out, "ro"), 0o755) })
	compareTrees(t, src, out)
}

func TestToDirMissingSource(t *testing.T) {
	src := fixture(t)
	_, err := vfs.NewTree(spec.New(spec.Entry{Path: src + "/nope"}, spec.Entry{Path: src + "/nada"}), vfs.TreeOptions{})
	var me *vfs.MissingError
	if !errors.As(err, &me) || len(me.Entries) != 2 {
		t.Errorf("got %v, want both missing entries listed", err)
	}
}

func TestStaleTempsRemoved(t *testing.T) {
	src := fixture(t)
	dir := t.TempDir()
	dest := filepath.Join(dir, "out")
	stale := filepath.Join(dir, ".out"+tempMarker+"999999999-0123456789ab")
	live := filepath.Join(dir, ".out"+tempMarker+fmt.Sprint(os.Getppid())+"-0123456789ab")
	other := filepath.Join(dir, ".other"+tempMarker+"999999999-0123456789ab")
	for _, d := range []string{stale, live, other} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ToDir(treeOf(t, spec.Entry{Path: filepath.Join(src, "bin")}), dest, DirOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary of a dead process not removed: %v", err)
	}
	for _, keep := range []string{live, other} {
		if _, err := os.Lstat(keep); err != nil {
			t.Errorf("%s removed, but it is not a stale temporary of DEST: %v", keep, err)
		}
	}
}

func tarEntries(t *testing.T, b []byte) []*tar.Header {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var hs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
}

func TestToTarDeterministic(t *testing.T) {
	src := fixture(t)
	clamp := time.Date(2020, 1, 2, 5, 0, 0, 0, time.UTC)
	var a, b bytes.Buffer
	for _, buf := range []*bytes.Buffer{&a, &b} {
		if _, err := ToTar(treeOf(t, spec.Entry{Path: src, Subtree: true}), buf, TarOptions{Mtime: &clamp}); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two tars of the same tree differ")
	}
	hs := tarEntries(t, a.Bytes())
	rel := strings.TrimPrefix(src, "/")
	byName := map[string]*tar.Header{}
	var names []string
	for _, h := range hs {
		byName[h.Name] = h
		names = append(names, h.Name)
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner names %q/%q in archive", h.Name, h.Uname, h.Gname)
		}
		if h.ModTime.After(clamp) {
			t.Errorf("%s: mtime %v after clamp %v", h.Name, h.ModTime, clamp)
		}
		if strings.HasPrefix(h.Name, "/") || strings.Contains(h.Name, "..") {
			t.Errorf("unsafe name %q", h.Name)
		}
	}
	want := []struct {
		name string
		typ  byte
	}{
		{rel + "/", tar.TypeDir}, {rel + "/abs-link", tar.TypeSymlink}, {rel + "/bin/", tar.TypeDir},
		{rel + "/bin/plain", tar.TypeReg}, {rel + "/bin/plain-link", tar.TypeLink}, {rel + "/bin/tool", tar.TypeReg},
		{rel + "/fifo", tar.TypeFifo}, {rel + "/sparse", tar.TypeReg},
	}
	for _, w := range want {
		h := byName[w.name]
		if h == nil {
			t.Errorf("%s missing from the archive; have %v", w.name, names)
			continue
		}
		if h.Typeflag != w.typ {
			t.Errorf("%s: type %c, want %c", w.name, h.Typeflag, w.typ)
		}
	}
	if h := byName[rel+"/bin/plain-link"]; h != nil && h.Linkname != rel+"/bin/plain" {
		t.Errorf("hard link to %q", h.Linkname)
	}
	if h := byName[rel+"/bin/tool"]; h != nil && h.Mode != 0o4755 {
		t.Errorf("setuid lost: mode %#o", h.Mode)
	}
	if h := byName[rel+"/bin/plain"]; h != nil {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, "bin/plain"), &st); err != nil {
			t.Fatal(err)
		}
		if xs, _ := readXattrs(filepath.Join(src, "bin/plain"), &st); len(xs) > 0 && h.PAXRecords["SCHILY.xattr.user.vzfs"] != "v\x00bin" {
			t.Errorf("xattr not in PAX records: %q", h.PAXRecords)
		}
	}
	if h := byName[rel+"/abs-link"]; h != nil && h.Linkname != "/etc/hostname" {
		t.Errorf("symlink target %q", h.Linkname)
	}
	for i := 1; i < len(names); i++ {
		// Walk order: a parent before its children, siblings sorted.
		if filepath.Dir(strings.TrimSuffix(names[i], "/")) == filepath.Dir(strings.TrimSuffix(names[i-1], "/")) && names[i] < names[i-1] {
			t.Errorf("siblings out of order: %q before %q", names[i-1], names[i])
		}
	}
}

func TestToTarFileLeavesNothingOnError(t *testing.T) {
	src := fixture(t)
	tr := treeOf(t, spec.Entry{Path: filepath.Join(src, "bin/plain")})
	dir := t.TempDir()
	// Make the host file vanish between NewTree and the freeze.
	if err := os.Rename(filepath.Join(src, "bin/plain"), filepath.Join(src, "bin/moved")); err != nil {
		t.Fatal(err)
	}
	if _, err := ToTarFile(tr, filepath.Join(dir, "out.tar"), TarOptions{}); err == nil {
		t.Fatal("freezing a vanished file succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a failed tar left %v", ents)
	}
}

func TestTarName(t *testing.T) {
	for _, bad := range []string{"/", "", "rel", "/a/../b", "/a//b", "/a/./b", "/a/\x00"} {
		if _, err := tarName(bad); err == nil {
			t.Errorf("tarName(%q) accepted", bad)
		}
	}
	if n, err := tarName("/usr/bin/ls"); err != nil || n != "usr/bin/ls" {
		t.Errorf("tarName(/usr/bin/ls) = %q, %v", n, err)
	}
}

func TestParseMtime(t *testing.T) {
	for in, want := range map[string]int64{"@0": 0, "@1700000000": 1700000000, "2024-01-02T03:04:05Z": 1704164645, "2024-01-02T04:04:05+01:00": 1704164645} {
		got, err := ParseMtime(in)
		if err != nil || got.Unix() != want {
			t.Errorf("ParseMtime(%q) = %v, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "@", "@-1", "@+5", "@1e9", "yesterday", "1700000000", "0001-01-01T00:00:00Z"} {
		if _, err := ParseMtime(bad); err == nil {
			t.Errorf("ParseMtime(%q) accepted", bad)
		}
	}
}

func TestParseCommand(t *testing.T) {
	for in, want := range map[string]string{
		"/bin/ls -l":               `["/bin/ls" "-l"]`,
		`["/bin/sh", "-c", "a b"]`: `["/bin/sh" "-c" "a b"]`,
		"  /usr/bin/python3  -u  ": `["/usr/bin/python3" "-u"]`,
	} {
		got, err := ParseCommand(in)
		if err != nil || fmt.Sprintf("%q", got) != want {
			t.Errorf("ParseCommand(%q) = %q, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "  ", "[]", `[""]`, `["a", 1]`, "[not json", "a\x00b"} {
		if _, err := ParseCommand(bad); err == nil {
			t.Errorf("ParseCommand(%q) accepted", bad)
		}
	}
}

func TestDestErrNamesDiskFull(t *testing.T) {
	err := destErr("/srv/out", "writing", syscall.ENOSPC)
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "/srv/out") {
		t.Errorf("destErr(ENOSPC) = %v", err)
	}
}

// listTree describes every entry below root: path, mode, size, inode.
func listTree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(&b, "%s %v %d %d\n", strings.TrimPrefix(p, root), fi.Mode(), fi.Size(), st.Ino)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestReadXattrsNeverFollows: xattrs come from the entry the walk saw, or
// not at all; a swapped file or a directory swapped for a symlink must not
// hand over another file's xattrs (file capabilities, say).
func TestReadXattrsNeverFollows(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	p := filepath.Join(d, "f")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(p, "user.who", []byte("real"), 0); err != nil {
		t.Skipf("no user xattrs on %s: %v", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if xs, err := readXattrs(p, &st); err != nil || len(xs) != 1 || string(xs[0].Value) != "real" {
		t.Fatalf("readXattrs = %v, %v; want user.who=real", xs, err)
	}
	// A decoy with other xattrs, reachable only through a swapped link.
	decoy := filepath.Join(dir, "decoy")
	if err := os.MkdirAll(decoy, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(decoy, "f"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(decoy, "f"), "user.who", []byte("decoy"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(d, filepath.Join(dir, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("decoy", d); err != nil {
		t.Fatal(err)
	}
	if xs, err := readXattrs(p, &st); err == nil {
		t.Fatalf("read xattrs %v through a directory swapped for a symlink", xs)
	}
	// The file itself replaced: a different inode is stale.
	if err := os.Remove(d); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(decoy, d); err != nil {
		t.Fatal(err)
	}
	if xs, err := readXattrs(p, &st); !errors.Is(err, vfs.ErrStale) {
		t.Fatalf("readXattrs of a replaced file = %v, %v; want ErrStale", xs, err)
	}
}
