package fs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// walkSwapFixture builds d/a/b/file, d/a/b/sym -> orig, d/a/sub/x/y (served
// as d/a/sub/**), and a decoy tree d/evil with the same names, a different
// mode and link target, for a swap to point at.
func walkSwapFixture(t *testing.T) (d string, sp *spec.Spec) {
	t.Helper()
	d = t.TempDir()
	for _, dir := range []string{"a/b", "a/sub/x", "evil/b", "evil/sub/x", "evilx"} {
		must(t, os.MkdirAll(filepath.Join(d, dir), 0o755))
	}
	for _, f := range []string{"a/b/file", "a/sub/x/y", "evil/b/file", "evil/sub/x/y", "evilx/y"} {
		must(t, os.WriteFile(filepath.Join(d, f), []byte("data\n"), 0o644))
	}
	for _, f := range []string{"evil/b/file", "evil/sub/x/y", "evilx/y"} {
		must(t, os.Chmod(filepath.Join(d, f), 0o604))
	}
	must(t, os.Symlink("orig", filepath.Join(d, "a/b/sym")))
	must(t, os.Symlink("EVIL", filepath.Join(d, "evil/b/sym")))
	sp = spec.New()
	sp.AddPath(filepath.Join(d, "a/b/file"))
	sp.AddPath(filepath.Join(d, "a/b/sym"))
	sp.Add(spec.Entry{Path: filepath.Join(d, "a/sub"), Subtree: true})
	return d, sp
}

// walkDecoys returns the (dev, ino) of every file in the decoy trees.
func walkDecoys(t *testing.T, d string) map[[2]uint64]string {
	t.Helper()
	ids := map[[2]uint64]string{}
	for _, f := range []string{"evil/b", "evil/b/file", "evil/b/sym", "evil/sub", "evil/sub/x", "evil/sub/x/y", "evilx", "evilx/y"} {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(d, f), &st))
		ids[[2]uint64{st.Dev, st.Ino}] = f
	}
	return ids
}

// An ancestor swapped for a symlink while Walk runs (between its visit and
// its children's) must stop the walk, never report what the link points
// at: Info resolves every entry relative to its parent, opened with no
// symlink followed.
func TestWalkAncestorSwapped(t *testing.T) {
	for _, tc := range []struct {
		name       string
		when, swap string // on visiting when, replace swap by a symlink
		target     string
	}{
		// A tree directory above spec'd files and a symlink.
		{"tree ancestor", "/a/b", "a", "evil"},
		// The parent of a "/**" subtree root.
		{"subtree parent", "/a/b/sym", "a", "evil"},
		// A directory inside a "/**" subtree.
		{"inside subtree", "/a/sub/x", "a/sub/x", "../../evilx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, sp := walkSwapFixture(t)
			decoys := walkDecoys(t, d)
			tr, err := NewTree(sp, TreeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			swapped := false
			var leaked []string
			err = tr.Walk(func(in *Info) error {
				if in.Link == "EVIL" {
					leaked = append(leaked, in.Path+" -> EVIL")
				}
				if f, ok := decoys[[2]uint64{in.Stat.Dev, in.Stat.Ino}]; ok {
					leaked = append(leaked, in.Path+" has the stat of "+f)
				}
				if in.Path == d+tc.when && !swapped {
					swapped = true
					p := filepath.Join(d, tc.swap)
					must(t, os.Rename(p, p+".real"))
					must(t, os.Symlink(tc.target, p))
				}
				return nil
			})
			if !swapped {
				t.Fatalf("the walk never visited %s; the test proves nothing", d+tc.when)
			}
			if len(leaked) > 0 {
				t.Errorf("Walk reported the symlink target's data: %q", leaked)
			}
			if err == nil {
				t.Errorf("Walk went on through a swapped ancestor without an error")
			} else if !errors.Is(err, unix.ELOOP) && !errors.Is(err, ErrStale) && !errors.Is(err, unix.ENOTDIR) {
				t.Errorf("Walk: %v; want ELOOP, ENOTDIR or ESTALE", err)
			}
		})
	}
}
