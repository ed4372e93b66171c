package fs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// requireFUSE skips unless the test can mount (root and /dev/fuse); with
// VZFS_REQUIRE_FUSE=1, as in CI, it fails instead.
func requireFUSE(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	} else if _, err := os.Stat("/dev/fuse"); err != nil {
		why = "needs /dev/fuse"
	}
	if why == "" {
		return
	}
	if os.Getenv("VZFS_REQUIRE_FUSE") == "1" {
		t.Fatal(why + ", and VZFS_REQUIRE_FUSE=1 forbids skipping")
	}
	t.Skip(why)
}

// testMount mounts s under a temp dir and unmounts in cleanup, lazily if
// something still holds it.
func testMount(t *testing.T, s *spec.Spec, o MountOptions) (*Server, *Tree) {
	t.Helper()
	requireFUSE(t)
	tr, err := NewTree(s, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(t)
	}
	srv, err := Mount(mnt, tr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			_ = Unmount(mnt, true)
			srv.Wait()
		}
	})
	return srv, tr
}

func TestMountServesSpec(t *testing.T) {
	d := fixture(t)
	srv, _ := testMount(t, fixtureSpec(d), MountOptions{FsName: "test.spec"})
	m := srv.Mountpoint()
	v := func(p string) string { return filepath.Join(m, d, p) }
	ptBefore := srv.Passthrough()

	got, err := os.ReadFile(v("bin/tool"))
	if err != nil || string(got) != "#!/bin/sh\necho tool\n" {
		t.Fatalf("read bin/tool = %q, %v", got, err)
	}
	if srv.Passthrough() != ptBefore {
		t.Fatal("the kernel offered passthrough but refused the backing file")
	}
	ents, err := os.ReadDir(v("etc"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "conf,secret" {
		t.Fatalf("etc lists %q, want only the spec's conf,secret", names)
	}
	if _, err := os.Lstat(v("etc/unlisted")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unlisted host file visible: %v", err)
	}
	// Symlinks verbatim; the absolute one resolves inside the view.
	if l, err := os.Readlink(v("abs")); err != nil || l != "/etc" {
		t.Fatalf("readlink abs = %q, %v", l, err)
	}
	if l, err := os.Readlink(v("link")); err != nil || l != "lib/a.so" {
		t.Fatalf("readlink link = %q, %v", l, err)
	}
	// Subtree: the host directory, lazily.
	got, err = os.ReadFile(v("data/x/y.txt"))
	if err != nil || string(got) != "y\n" {
		t.Fatalf("read subtree file = %q, %v", got, err)
	}
	if l, err := os.Readlink(v("data/x/w.link")); err != nil || l != "y.txt" {
		t.Fatalf("subtree symlink = %q, %v", l, err)
	}
	// Attributes are the host's, with hard links sharing inode numbers.
	var hs, vs unix.Stat_t
	must(t, unix.Lstat(filepath.Join(d, "etc/secret"), &hs))
	must(t, unix.Lstat(v("etc/secret"), &vs))
	if hs.Mode != vs.Mode || hs.Uid != vs.Uid || hs.Size != vs.Size || hs.Mtim != vs.Mtim || hs.Ino != vs.Ino {
		t.Fatalf("attrs differ: host %+v view %+v", hs, vs)
	}
	// The mount is listed as vzfs with the spec as its source.
	mi, ok := FindMount(m)
	if !ok || mi.FSType != "fuse.vzfs" || mi.Source != "test.spec" {
		t.Fatalf("mountinfo = %+v, %v", mi, ok)
	}
	if _, err := CheckMountpoint(m); err == nil {
		t.Fatal("CheckMountpoint accepted a live vzfs mount")
	}
}

func TestMountReadOnly(t *testing.T) {
	d := fixture(t)
	srv, _ := testMount(t, fixtureSpec(d), MountOptions{})
	v := func(p string) string { return filepath.Join(srv.Mountpoint(), d, p) }
	before, _ := os.ReadFile(filepath.Join(d, "etc/conf"))
	checks := map[string]error{
		"create": os.WriteFile(v("etc/new"), []byte("x"), 0o644),
		"write":  os.WriteFile(v("etc/conf"), []byte("x"), 0o644),
		"mkdir":  os.Mkdir(v("etc/d"), 0o755),
		"remove": os.Remove(v("etc/conf")),
		"chmod":  os.Chmod(v("etc/conf"), 0o777),
		"rename": os.Rename(v("etc/conf"), v("etc/conf2")),
		"link":   os.Symlink("x", v("etc/l")),
		"sub":    os.WriteFile(v("data/z.txt"), []byte("x"), 0o644),
		"xattr":  unix.Setxattr(v("etc/conf"), "user.x", []byte("1"), 0),
	}
	for op, err := range checks {
		if !errors.Is(err, unix.EROFS) {
			t.Errorf("%s: %v, want EROFS", op, err)
		}
	}
	after, _ := os.ReadFile(filepath.Join(d, "etc/conf"))
	if !bytes.Equal(before, after) {
		t.Fatal("host file changed")
	}
	if _, err := os.Stat(filepath.Join(d, "etc/new")); err == nil {
		t.Fatal("host gained a file")
	}
}

func TestMountHostChanges(t *testing.T) {
	d := fixture(t)
	srv, _ := testMount(t, fixtureSpec(d), MountOptions{Timeout: -1})
	v := func(p string) string { return filepath.Join(srv.Mountpoint(), d, p) }
	if _, err := os.ReadFile(v("etc/conf")); err != nil {
		t.Fatal(err)
	}
	// Swap the served file for a symlink to a secret: the view must never
	// hand out the link's target.
	must(t, os.Remove(filepath.Join(d, "etc/conf")))
	must(t, os.Symlink(filepath.Join(d, "etc/secret"), filepath.Join(d, "etc/conf")))
	if got, err := os.ReadFile(v("etc/conf")); err == nil {
		t.Fatalf("read through swapped symlink: %q", got)
	}
	// Swap a directory on the way for a symlink.
	must(t, os.Rename(filepath.Join(d, "lib"), filepath.Join(d, "lib.old")))
	must(t, os.Symlink(filepath.Join(d, "etc"), filepath.Join(d, "lib")))
	if got, err := os.ReadFile(v("lib/a.so")); err == nil {
		t.Fatalf("read through swapped directory: %q", got)
	}
	// A vanished file is ENOENT, and the daemon stays up.
	must(t, os.Remove(filepath.Join(d, "data/z.txt")))
	if _, err := os.ReadFile(v("data/z.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("vanished subtree file: %v", err)
	}
	// A replaced file (package update) is served as the new one.
	must(t, os.WriteFile(filepath.Join(d, "bin/tool.new"), []byte("new\n"), 0o755))
	must(t, os.Rename(filepath.Join(d, "bin/tool.new"), filepath.Join(d, "bin/tool")))
	if got, err := os.ReadFile(v("bin/tool")); err != nil || string(got) != "new\n" {
		t.Fatalf("replaced file = %q, %v", got, err)
	}
}

// TestMountConcurrentReaders hashes every file of a "/**" view from 16
// goroutines and compares with the host.
func TestMountConcurrentReaders(t *testing.T) {
	root := "/usr/share/perl5"
	if _, err := os.Stat(root); err != nil {
		root = "/usr/include"
	}
	s := spec.New(spec.Entry{Path: root, Subtree: true})
	srv, _ := testMount(t, s, MountOptions{})
	var files []string
	_ = filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() && len(files) < 2000 {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 50 {
		t.Fatalf("only %d files under %s", len(files), root)
	}
	sort.Strings(files)
	want := map[string][32]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want[f] = sha256.Sum256(b)
	}
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; time.Now().Before(deadline) && i < len(files)*2; i++ {
				f := files[i%len(files)]
				fh, err := os.Open(filepath.Join(srv.Mountpoint(), f))
				if err != nil {
					errs <- err
					return
				}
				h := sha256.New()
				_, err = io.Copy(h, fh)
				fh.Close()
				if err != nil {
					errs <- err
					return
				}
				if [32]byte(h.Sum(nil)) != want[f] {
					errs <- errors.New("hash mismatch for " + f)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
