// Package integration holds end-to-end tests: the real vzfs binary on real
// programs, real FUSE mounts and real chroots. Most of it needs root; CI runs
// it as root with VZFS_REQUIRE_FUSE=1, where a missing FUSE or root fails the
// run instead of skipping.
package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vzfs/vzfs/spec"
)

// vzfsBin is the binary under test, built once by TestMain.
var vzfsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vzfs-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vzfsBin = filepath.Join(dir, "vzfs")
	args := []string{"build", "-o", vzfsBin}
	if os.Getenv("VZFS_RACE") == "1" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/vzfs")...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building vzfs:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// strict reports whether missing privileges or FUSE must fail the test
// rather than skip it, as in CI.
func strict() bool { return os.Getenv("VZFS_REQUIRE_FUSE") == "1" }

// requireRoot skips (or, in CI, fails) a test that needs root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if strict() {
		t.Fatal("this test needs root, and VZFS_REQUIRE_FUSE=1 forbids skipping")
	}
	t.Skip("needs root")
}

// requireFUSE skips (or, in CI, fails) a test that needs /dev/fuse and root.
func requireFUSE(t testing.TB) {
	t.Helper()
	requireRoot(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if strict() {
			t.Fatalf("/dev/fuse is missing and VZFS_REQUIRE_FUSE=1: %v", err)
		}
		t.Skip("needs /dev/fuse")
	}
}

// result is what a vzfs run printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
}

// runVzfs runs the vzfs binary with args and returns its output and exit code.
func runVzfs(t testing.TB, args ...string) result {
	t.Helper()
	return runCmd(t, nil, vzfsBin, args...)
}

// runCmd runs a command, optionally with extra environment, and returns its
// output and exit code; a failure to start it fails the test.
func runCmd(t testing.TB, env []string, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running %s %s: %v", name, strings.Join(args, " "), err)
	}
	return r
}

// copySpec copies exactly the spec's entries from the host into dest, with
// their parent directories. A directory line makes the directory alone;
// subtree entries are copied whole. It stands in for freeze in tests of the
// producers.
func copySpec(t testing.TB, specFile, dest string) {
	t.Helper()
	s, err := spec.ParseFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s.Entries {
		if e.Path == "/" {
			continue
		}
		fi, err := os.Lstat(e.Path)
		if err != nil {
			t.Fatalf("spec entry %s: %v", e.Path, err)
		}
		target := filepath.Join(copyMkdirs(t, dest, filepath.Dir(e.Path)), filepath.Base(e.Path))
		if fi.IsDir() && !e.Subtree {
			if err := os.Mkdir(target, 0o755); err != nil && !os.IsExist(err) {
				t.Fatal(err)
			}
			if err := os.Chmod(target, fi.Mode().Perm()|fi.Mode()&(os.ModeSticky|os.ModeSetgid|os.ModeSetuid)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if out, err := exec.Command("cp", "-a", "--no-dereference", "-T", e.Path, target).CombinedOutput(); err != nil {
			t.Fatalf("copying %s: %v\n%s", e.Path, err, out)
		}
	}
}

// copyMkdirs makes the directory dir (a host path) inside dest, with the
// host's modes, and returns where it is in dest. A component that is already
// a symlink in dest is followed inside dest, as the chroot will follow it:
// cp --parents would instead fail below a copied "bin -> usr/bin".
func copyMkdirs(t testing.TB, dest, dir string) string {
	t.Helper()
	cur, host := dest, "/"
	comps := strings.Split(strings.Trim(dir, "/"), "/")
	for hops := 0; len(comps) > 0; {
		c := comps[0]
		comps = comps[1:]
		if c == "" {
			continue
		}
		next := filepath.Join(cur, c)
		host = filepath.Join(host, c)
		fi, err := os.Lstat(next)
		switch {
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			if hops++; hops > 40 {
				t.Fatalf("too many symlinks under %s in %s", dir, dest)
			}
			link, err := os.Readlink(next)
			if err != nil {
				t.Fatal(err)
			}
			// Re-root the link inside dest and walk its components next.
			rel, _ := filepath.Rel(dest, cur)
			if filepath.IsAbs(link) {
				rel = ""
			}
			comps = append(strings.Split(filepath.Join("/", rel, link), "/"), comps...)
			cur, host = dest, "/"
		case err == nil:
			cur = next
		default:
			mode := os.FileMode(0o755)
			if hfi, err := os.Stat(host); err == nil {
				mode = hfi.Mode().Perm()
			}
			if err := os.Mkdir(next, mode); err != nil {
				t.Fatal(err)
			}
			cur = next
		}
	}
	return cur
}

// bindMount bind-mounts src on dst until the test ends; cleanup falls back
// to a lazy unmount so that a busy mount never outlives the test.
func bindMount(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("mount --bind %s %s: %v\n%s", src, dst, err, out)
	}
	t.Cleanup(func() {
		if err := exec.Command("umount", dst).Run(); err != nil {
			_ = exec.Command("umount", "-l", dst).Run()
		}
	})
}

// hostDir makes a world-searchable directory under /var/tmp, removed when
// the test ends: views and sandboxes cover /tmp, so files a spec must name
// live there.
func hostDir(t testing.TB, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// chrootRun runs argv inside root with chroot(8) and returns its result.
func chrootRun(t testing.TB, root string, argv ...string) result {
	t.Helper()
	return runCmd(t, nil, "chroot", append([]string{root}, argv...)...)
}

// writeFile writes a file for a test, creating parent directories.
func writeFile(t testing.TB, name, content string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}
