package fs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// fixture builds a small host tree under a temp dir and returns its root:
//
//	bin/tool (0755)  etc/secret (0600)  etc/conf  lib/a.so
//	link -> lib/a.so (relative)  abs -> /etc (absolute)
//	data/x/y.txt  data/z.txt   (served as data/**)
func fixture(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for name, body := range map[string]string{
		"bin/tool":      "#!/bin/sh\necho tool\n",
		"etc/secret":    "s3cret\n",
		"etc/conf":      "conf\n",
		"lib/a.so":      "ELF?",
		"data/x/y.txt":  "y\n",
		"data/z.txt":    "z\n",
		"hidden/nope":   "not in spec\n",
		"etc/unlisted":  "unlisted\n",
		"data/x/w.link": "",
	} {
		p := filepath.Join(d, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".link") {
			if err := os.Symlink("y.txt", p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.Chmod(filepath.Join(d, "bin/tool"), 0o755))
	must(t, os.Chmod(filepath.Join(d, "etc/secret"), 0o600))
	must(t, os.Symlink("lib/a.so", filepath.Join(d, "link")))
	must(t, os.Symlink("/etc", filepath.Join(d, "abs")))
	return d
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func fixtureSpec(d string) *spec.Spec {
	s := spec.New()
	for _, p := range []string{"bin/tool", "etc/secret", "etc/conf", "lib/a.so", "link", "abs"} {
		s.AddPath(filepath.Join(d, p))
	}
	s.Add(spec.Entry{Path: filepath.Join(d, "data"), Subtree: true})
	return s
}

func TestTreeNodesAndAncestors(t *testing.T) {
	d := fixture(t)
	tr, err := NewTree(fixtureSpec(d), TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func(n Node)
	walk = func(n Node) {
		got = append(got, tr.Path(n))
		for _, c := range tr.Children(n) {
			walk(c)
		}
	}
	walk(RootNode)
	// Every ancestor of d is in the tree; check the part below d.
	var below []string
	for _, p := range got {
		if strings.HasPrefix(p, d) {
			below = append(below, strings.TrimPrefix(p, d))
		}
	}
	want := []string{"", "/abs", "/bin", "/bin/tool", "/data", "/etc", "/etc/conf", "/etc/secret", "/lib", "/lib/a.so", "/link"}
	if !reflect.DeepEqual(below, want) {
		t.Fatalf("tree below fixture:\n got %q\nwant %q", below, want)
	}
	n, rest, ok := tr.Lookup(d + "/data/x/y.txt")
	if !ok || rest != "x/y.txt" || tr.Path(n) != d+"/data" || !tr.IsSubtree(n) {
		t.Fatalf("Lookup below subtree = %d %q %v", n, rest, ok)
	}
	n, _, ok = tr.Lookup(d + "/link")
	if !ok || tr.Type(n) != unix.S_IFLNK {
		t.Fatalf("link node: ok=%v type=%o", ok, tr.Type(n))
	}
	if _, _, ok := tr.Lookup(d + "/hidden"); ok {
		t.Fatal("unlisted directory is in the tree")
	}
	in, err := tr.Info(n)
	if err != nil || in.Link != "lib/a.so" {
		t.Fatalf("Info(link) = %+v, %v", in, err)
	}
	// Ancestors take the host directory's mode.
	must(t, os.Chmod(filepath.Join(d, "etc"), 0o710))
	en, _, _ := tr.Lookup(d + "/etc")
	in, err = tr.Info(en)
	if err != nil || in.Stat.Mode&0o7777 != 0o710 {
		t.Fatalf("ancestor mode = %o, %v", in.Stat.Mode&0o7777, err)
	}
}

func TestTreeMissing(t *testing.T) {
	d := fixture(t)
	s := fixtureSpec(d)
	s.AddPath(d + "/gone/deep/file")
	s.AddPath(d + "/etc/missing")
	_, err := NewTree(s, TreeOptions{})
	var me *MissingError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v, want *MissingError", err)
	}
	var paths []string
	for _, m := range me.Entries {
		paths = append(paths, m.Path)
	}
	want := []string{d + "/etc/missing", d + "/gone/deep/file"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("missing = %q, want %q", paths, want)
	}
	tr, err := NewTree(s, TreeOptions{SkipMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Missing()) != 2 {
		t.Fatalf("Missing() = %v", tr.Missing())
	}
	if _, _, ok := tr.Lookup(d + "/gone"); ok {
		t.Fatal("implicit ancestor of a missing entry left in the tree")
	}
}

func TestTreeThroughSymlink(t *testing.T) {
	d := fixture(t)
	s := spec.New()
	s.AddPath(d + "/abs/hostname") // through the symlink abs -> /etc
	s.AddPath(d + "/lib/a.so")
	tr, err := NewTree(s, TreeOptions{SkipMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Unreachable(); len(got) != 1 || got[0] != d+"/abs/hostname" {
		t.Fatalf("Unreachable = %q", got)
	}
	n, _, ok := tr.Lookup(d + "/abs")
	if !ok || tr.Type(n) != unix.S_IFLNK {
		t.Fatal("the symlink an entry is reached through must stay, as a symlink")
	}
}

func TestTreeExtraDirs(t *testing.T) {
	d := fixture(t)
	tr, err := NewTree(fixtureSpec(d), TreeOptions{ExtraDirs: []string{d + "/mnt/bind", d + "/etc"}})
	if err != nil {
		t.Fatal(err)
	}
	n, _, ok := tr.Lookup(d + "/mnt/bind")
	if !ok || !tr.IsSynthetic(n) || tr.Type(n) != unix.S_IFDIR {
		t.Fatal("extra dir missing on the host is not a synthetic directory")
	}
	n, _, _ = tr.Lookup(d + "/etc")
	if tr.IsSynthetic(n) {
		t.Fatal("extra dir that exists on the host marked synthetic")
	}
	if _, err := NewTree(fixtureSpec(d), TreeOptions{ExtraDirs: []string{d + "/etc/conf"}}); err == nil {
		t.Fatal("extra dir on a host file accepted")
	}
}

func TestTreeWalk(t *testing.T) {
	d := fixture(t)
	tr, err := NewTree(fixtureSpec(d), TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = tr.Walk(func(in *Info) error {
		if strings.HasPrefix(in.Path, d) {
			rel := strings.TrimPrefix(in.Path, d)
			if in.InSubtree {
				rel += " (sub)"
			}
			if in.Link != "" {
				rel += " -> " + in.Link
			}
			got = append(got, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "/abs -> /etc", "/bin", "/bin/tool", "/data", "/data/x (sub)", "/data/x/w.link (sub) -> y.txt",
		"/data/x/y.txt (sub)", "/data/z.txt (sub)", "/etc", "/etc/conf", "/etc/secret", "/lib", "/lib/a.so", "/link -> lib/a.so"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Walk:\n got %q\nwant %q", got, want)
	}
	if !sort.StringsAreSorted(got) {
		t.Fatal("walk order not sorted")
	}
}

func TestTreeChangedType(t *testing.T) {
	d := fixture(t)
	tr, err := NewTree(fixtureSpec(d), TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := d + "/etc/conf"
	must(t, os.Remove(p))
	must(t, os.Symlink("/etc/shadow", p))
	n, _, _ := tr.Lookup(p)
	if _, err := tr.Info(n); !errors.Is(err, ErrStale) {
		t.Fatalf("Info after type change: %v, want ESTALE", err)
	}
}

func TestOpenHostNoSymlinks(t *testing.T) {
	d := fixture(t)
	if f, err := OpenHost(d+"/lib/a.so", unix.O_RDONLY); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	for _, p := range []string{d + "/link", d + "/abs/hostname"} {
		if f, err := OpenHost(p, unix.O_RDONLY); err == nil {
			f.Close()
			t.Fatalf("OpenHost(%s) followed a symlink", p)
		}
		fd, err := openWalk(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
		if err == nil {
			unix.Close(fd)
			t.Fatalf("openWalk(%s) followed a symlink", p)
		}
	}
}
