package integration

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	vfs "github.com/vzfs/vzfs/fs"
	"github.com/vzfs/vzfs/spec"
)

// mountView is a view mounted by the vzfs binary for a test.
type mountView struct {
	dir string
	pid int
}

var mountPidRe = regexp.MustCompile(`daemon pid (\d+)`)

// mountStart runs 'vzfs mount ARGS... SPEC MNT' on a fresh temp mountpoint
// and registers a cleanup that unmounts it (lazily if need be) and makes
// sure the daemon is gone, whatever the test did.
func mountStart(t *testing.T, specFile string, args ...string) *mountView {
	t.Helper()
	return mountAt(t, specFile, t.TempDir(), args...)
}

// mountAt is mountStart on a given, existing mountpoint.
func mountAt(t *testing.T, specFile, mnt string, args ...string) *mountView {
	t.Helper()
	r := runVzfs(t, append(append([]string{"mount"}, args...), specFile, mnt)...)
	if r.code != 0 {
		t.Fatalf("vzfs mount: exit %d\n%s", r.code, r.stderr)
	}
	m := mountPidRe.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("vzfs mount printed no pid: %q", r.stdout)
	}
	pid, _ := strconv.Atoi(m[1])
	v := &mountView{dir: mnt, pid: pid}
	t.Cleanup(func() { mountCleanup(t, v) })
	return v
}

// mountCleanup removes every trace of v: the mount and the daemon.
func mountCleanup(t *testing.T, v *mountView) {
	if _, ok := vfs.FindMount(v.dir); ok {
		if err := unix.Unmount(v.dir, 0); err != nil {
			_ = unix.Unmount(v.dir, unix.MNT_DETACH)
		}
	}
	if v.pid > 0 && !mountWaitExit(v.pid, 5*time.Second) {
		t.Errorf("daemon %d still alive after unmount; killing it", v.pid)
		_ = unix.Kill(v.pid, unix.SIGKILL)
		mountWaitExit(v.pid, 5*time.Second)
	}
	if _, ok := vfs.FindMount(v.dir); ok {
		t.Errorf("mount %s left behind", v.dir)
		_ = unix.Unmount(v.dir, unix.MNT_DETACH)
	}
}

// mountWaitExit waits for pid to go away (or become a zombie).
func mountWaitExit(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// mountLdd writes a spec from 'vzfs ldd' of files plus extra lines.
func mountLdd(t *testing.T, files []string, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "test.spec")
	r := runVzfs(t, append([]string{"ldd", "-o", out}, files...)...)
	if r.code != 0 {
		t.Fatalf("vzfs ldd %v: exit %d\n%s", files, r.code, r.stderr)
	}
	if len(extra) > 0 {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(f, strings.Join(extra, "\n"))
		f.Close()
	}
	return out
}

// mountViewPaths lists every path in the spec's view: entries and their
// ancestors, as the view shows them.
func mountViewPaths(t *testing.T, specFile string) []string {
	s, err := spec.ParseFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{"/": true}
	for _, e := range s.Entries {
		for p := e.Path; p != "/"; p = filepath.Dir(p) {
			set[p] = true
		}
	}
	var out []string
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// 1. ldd spec + mount: chroot ls works, find shows exactly the spec.
func TestMountLddChroot(t *testing.T) {
	requireFUSE(t)
	sp := mountLdd(t, []string{"ls"})
	v := mountStart(t, sp)

	r := chrootRun(t, v.dir, "/usr/bin/ls", "/")
	if r.code != 0 {
		t.Fatalf("chroot ls: exit %d: %s", r.code, r.stderr)
	}
	tops := map[string]bool{}
	for _, p := range mountViewPaths(t, sp) {
		if p != "/" {
			tops[strings.SplitN(p[1:], "/", 2)[0]] = true
		}
	}
	var want []string
	for n := range tops {
		want = append(want, n)
	}
	sort.Strings(want)
	if got := strings.Fields(r.stdout); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("chroot ls / = %q, want the spec's top-level entries %q", got, want)
	}

	fr := runCmd(t, nil, "find", v.dir)
	if fr.code != 0 {
		t.Fatalf("find: %s", fr.stderr)
	}
	var found []string
	for _, l := range strings.Split(strings.TrimSpace(fr.stdout), "\n") {
		p := strings.TrimPrefix(l, v.dir)
		if p == "" {
			p = "/"
		}
		found = append(found, p)
	}
	sort.Strings(found)
	if want := mountViewPaths(t, sp); strings.Join(found, "\n") != strings.Join(want, "\n") {
		t.Fatalf("find lists:\n%s\nwant exactly the spec and its ancestors:\n%s", strings.Join(found, "\n"), strings.Join(want, "\n"))
	}
	t.Logf("view of %d paths matches the spec", len(found))
}

// 2. Writes fail with EROFS and the host is unchanged.
func TestMountWritesFail(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f.txt"), "host data\n", 0o644)
	sp := mountLdd(t, []string{"/bin/sh", "touch", "rm", "mkdir", "chmod"}, dir, dir+"/f.txt")
	sum := func() string {
		out, err := exec.Command("sh", "-c", "find "+dir+" /etc/passwd /usr/bin/ls -xdev -exec sha256sum {} + 2>/dev/null; ls -l --full-time "+dir).CombinedOutput()
		if err != nil {
			t.Fatalf("checksums: %v\n%s", err, out)
		}
		return string(out)
	}
	before := sum()
	v := mountStart(t, sp)
	for _, c := range []string{
		"touch " + dir + "/new",
		"touch " + dir + "/f.txt",
		"rm " + dir + "/f.txt",
		"rm /bin/sh",
		"mkdir " + dir + "/d",
		"chmod 777 " + dir + "/f.txt",
		"echo x > " + dir + "/f.txt",
		"echo x >> " + dir + "/f.txt",
	} {
		r := chrootRun(t, v.dir, "/bin/sh", "-c", c)
		if r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("%q in the view: exit %d, stderr %q; want EROFS", c, r.code, r.stderr)
		}
	}
	// The same from the host side, through the mountpoint.
	if err := os.WriteFile(filepath.Join(v.dir, dir, "f.txt"), []byte("x"), 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("host-side write: %v, want EROFS", err)
	}
	if after := sum(); after != before {
		t.Fatalf("host changed:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// 3. Host permissions hold for non-root users; setuid does not apply.
func TestMountPermissions(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "root only\n", 0o600)
	suid := filepath.Join(dir, "suid-id")
	if out, err := exec.Command("cp", "/usr/bin/id", suid).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// os.Chmod would drop the setuid bit: os.FileMode has its own.
	if err := unix.Chmod(suid, 0o4755); err != nil {
		t.Fatal(err)
	}
	sp := mountLdd(t, []string{"cat", "setpriv", "id", suid}, secret)
	v := mountStart(t, sp)
	nobody := []string{"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}

	if r := chrootRun(t, v.dir, "/usr/bin/cat", secret); r.code != 0 || r.stdout != "root only\n" {
		t.Fatalf("root cat secret: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	r := chrootRun(t, v.dir, append(nobody, "/usr/bin/cat", secret)...)
	if r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
		t.Fatalf("nobody cat secret: exit %d %q %q; want Permission denied", r.code, r.stdout, r.stderr)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(v.dir, suid), &st); err != nil || st.Mode&unix.S_ISUID == 0 {
		t.Fatalf("setuid bit not shown in the view: %o %v", st.Mode, err)
	}
	r = chrootRun(t, v.dir, append(nobody, suid, "-u")...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "65534" {
		t.Fatalf("setuid-root id as nobody under nosuid: exit %d %q %q; want 65534", r.code, r.stdout, r.stderr)
	}
}

// 4. Symlinks: absolute ones resolve inside the view, merged /usr works,
// targets outside the spec dangle.
func TestMountSymlinks(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "target.txt"), "inside\n", 0o644)
	if err := os.Symlink(filepath.Join(dir, "target.txt"), filepath.Join(dir, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	sp := mountLdd(t, []string{"cat", "readlink"}, "/bin", dir+"/abs", dir+"/target.txt", dir+"/out")
	v := mountStart(t, sp)
	if r := chrootRun(t, v.dir, "/bin/cat", dir+"/abs"); r.code != 0 || r.stdout != "inside\n" {
		t.Fatalf("cat through absolute symlink (and /bin -> usr/bin): exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := chrootRun(t, v.dir, "/bin/readlink", dir+"/out"); r.stdout != "/etc/hostname\n" {
		t.Fatalf("readlink verbatim: %q", r.stdout)
	}
	if _, err := os.Stat("/etc/hostname"); err == nil {
		if r := chrootRun(t, v.dir, "/bin/cat", dir+"/out"); r.code == 0 {
			t.Fatalf("symlink to a host file outside the spec was followed: %q", r.stdout)
		}
	}
	if l, err := os.Readlink(filepath.Join(v.dir, "lib64")); err != nil || l != "usr/lib64" {
		t.Logf("lib64 in the view: %q %v", l, err)
	}
}

// 5. Real programs run from ldd specs plus /** lines, with the host's output.
func TestMountPrograms(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "script.bash")
	writeFile(t, script, "#!/bin/bash\nfor i in 1 2 3; do echo $((i*i)); done\necho ${BASH_VERSINFO[0]}\n", 0o755)
	perlScript := filepath.Join(dir, "core.pl")
	// A file, not -e: perl -e opens /dev/null, which a bare view lacks.
	writeFile(t, perlScript, "use List::Util qw(sum); use POSIX qw(floor); print sum(1..10), floor(2.5), qq{\n};\n", 0o644)
	listDir := filepath.Join(dir, "many")
	for i := 0; i < 37; i++ {
		writeFile(t, filepath.Join(listDir, fmt.Sprintf("f%02d", i)), "x", 0o644)
	}
	dynload, _ := filepath.Glob("/usr/lib/python3.11/lib-dynload/*.so")
	files := append([]string{"/usr/bin/python3", "perl", "/bin/sh", "ls", "sort", "wc", script, perlScript}, dynload...)
	var extra []string
	for _, d := range []string{"/usr/lib/python3.11", "/etc/perl", "/usr/lib/x86_64-linux-gnu/perl5/5.36", "/usr/share/perl5",
		"/usr/lib/x86_64-linux-gnu/perl-base", "/usr/lib/x86_64-linux-gnu/perl/5.36", "/usr/share/perl/5.36", listDir} {
		if _, err := os.Stat(d); err == nil {
			extra = append(extra, d+"/**")
		}
	}
	sp := mountLdd(t, files, extra...)
	v := mountStart(t, sp)
	for _, argv := range [][]string{
		{"/usr/bin/python3", "-c", "import json, sqlite3, ssl; print(json.dumps({'a': [1, 2]}), sqlite3.sqlite_version, ssl.OPENSSL_VERSION)"},
		{"/usr/bin/perl", perlScript},
		{script},
		{"/bin/sh", "-c", "ls " + listDir + " | sort | wc -l"},
	} {
		host := runCmd(t, nil, argv[0], argv[1:]...)
		in := chrootRun(t, v.dir, argv...)
		if host.code != 0 {
			t.Fatalf("%v on the host: exit %d %s", argv, host.code, host.stderr)
		}
		if in.code != 0 || in.stdout != host.stdout {
			t.Errorf("%v in the view: exit %d\nstdout %q\nwant   %q\nstderr %s", argv, in.code, in.stdout, host.stdout, in.stderr)
		}
	}
}

// 6. 16 parallel readers hash every file of a large /** view.
func TestMountConcurrentHash(t *testing.T) {
	requireFUSE(t)
	root := "/usr/lib/python3.11"
	sp := filepath.Join(t.TempDir(), "big.spec")
	writeFile(t, sp, root+"/**\n", 0o644)
	v := mountStart(t, sp)
	var files []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 500 {
		t.Fatalf("only %d files under %s", len(files), root)
	}
	hash := func(p string) ([32]byte, error) {
		f, err := os.Open(p)
		if err != nil {
			return [32]byte{}, err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return [32]byte{}, err
		}
		return [32]byte(h.Sum(nil)), nil
	}
	deadline := time.Now().Add(15 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	hashed := 0
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(files) && time.Now().Before(deadline); i += 16 {
				want, err1 := hash(files[i])
				got, err2 := hash(filepath.Join(v.dir, files[i]))
				mu.Lock()
				hashed++
				if err1 == nil && (err2 != nil || got != want) {
					errs = append(errs, fmt.Sprintf("%s: %v", files[i], err2))
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %s", len(errs), errs[0])
	}
	t.Logf("hashed %d of %d files through the view, all equal", hashed, len(files))
}

// 7. Lifecycle: signals, dead daemons, refusals.
func TestMountLifecycle(t *testing.T) {
	requireFUSE(t)
	sp := mountLdd(t, []string{"ls"})

	t.Run("SIGTERM unmounts", func(t *testing.T) {
		v := mountStart(t, sp)
		if err := unix.Kill(v.pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if !mountWaitExit(v.pid, 10*time.Second) {
			t.Fatal("daemon did not exit on SIGTERM")
		}
		if _, ok := vfs.FindMount(v.dir); ok {
			t.Fatal("mount left after SIGTERM")
		}
	})

	killed := func(t *testing.T) *mountView {
		v := mountStart(t, sp)
		if err := unix.Kill(v.pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		mountWaitExit(v.pid, 5*time.Second)
		// While the kernel tears the connection down, a request can still
		// fail with EIO; once it is down, every request says ENOTCONN.
		var st unix.Statfs_t
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err = unix.Statfs(v.dir, &st)
			if errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) || !errors.Is(err, unix.EIO) || time.Now().After(deadline) {
				break
			}
		}
		if !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.ECONNABORTED) {
			t.Fatalf("statfs after SIGKILL: %v, want ENOTCONN or ECONNABORTED", err)
		}
		r := runVzfs(t, "mount", sp, v.dir)
		if r.code != 2 || !strings.Contains(r.stderr, "stale mount") || !strings.Contains(r.stderr, "--force") {
			t.Fatalf("mount on a stale mount: exit %d %q", r.code, r.stderr)
		}
		return v
	}
	t.Run("SIGKILL then umount", func(t *testing.T) {
		v := killed(t)
		if r := runVzfs(t, "umount", v.dir); r.code != 0 {
			t.Fatalf("vzfs umount of a dead mount: exit %d %s", r.code, r.stderr)
		}
		if _, ok := vfs.FindMount(v.dir); ok {
			t.Fatal("dead mount still there")
		}
	})
	t.Run("SIGKILL then mount --force", func(t *testing.T) {
		v := killed(t)
		r := runVzfs(t, "mount", "--force", sp, v.dir)
		if r.code != 0 {
			t.Fatalf("mount --force: exit %d %s", r.code, r.stderr)
		}
		m := mountPidRe.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("no pid in %q", r.stdout)
		}
		v.pid, _ = strconv.Atoi(m[1])
		if r := chrootRun(t, v.dir, "/usr/bin/ls", "/usr/bin"); r.code != 0 || strings.TrimSpace(r.stdout) != "ls" {
			t.Fatalf("view after --force: %d %q %q", r.code, r.stdout, r.stderr)
		}
		if r := runVzfs(t, "umount", v.dir); r.code != 0 {
			t.Fatalf("umount: %d %s", r.code, r.stderr)
		}
		if !mountWaitExit(v.pid, time.Second) {
			t.Fatal("vzfs umount returned before the daemon exited")
		}
	})
	t.Run("busy umount", func(t *testing.T) {
		v := mountStart(t, sp)
		f, err := os.Open(filepath.Join(v.dir, "usr/bin/ls"))
		if err != nil {
			t.Fatal(err)
		}
		r := runVzfs(t, "umount", v.dir)
		if r.code == 0 || !strings.Contains(r.stderr, "busy") {
			t.Errorf("umount of a busy mount: exit %d %q", r.code, r.stderr)
		}
		f.Close()
		if r := runVzfs(t, "umount", v.dir); r.code != 0 {
			t.Fatalf("umount after close: %d %s", r.code, r.stderr)
		}
	})

	// Refusals: exit 2 with one error line.
	dir := t.TempDir()
	badSpec := filepath.Join(dir, "bad.spec")
	writeFile(t, badSpec, "/usr/bin/ls\nrelative/path\n", 0o644)
	missSpec := filepath.Join(dir, "miss.spec")
	writeFile(t, missSpec, "/usr/bin/ls\n/nonexistent/vzfs-a\n/nonexistent/vzfs-b\n", 0o644)
	aFile := filepath.Join(dir, "file")
	writeFile(t, aFile, "", 0o644)
	mnt := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"bad spec", []string{badSpec, mnt}, []string{badSpec + ":2:", "relative"}},
		{"missing entries", []string{missSpec, mnt}, []string{"2 spec entries missing", "/nonexistent/vzfs-a", "/nonexistent/vzfs-b", "--skip-missing"}},
		{"no mountpoint", []string{sp, filepath.Join(dir, "nope")}, []string{"does not exist"}},
		{"file mountpoint", []string{sp, aFile}, []string{"not a directory"}},
		{"no spec", []string{filepath.Join(dir, "nope.spec"), mnt}, []string{"nope.spec"}},
	} {
		r := runVzfs(t, append([]string{"mount"}, c.args...)...)
		if r.code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", c.name, r.code, r.stderr)
		}
		if n := strings.Count(r.stderr, "vzfs: error:"); n != 1 {
			t.Errorf("%s: %d error lines, want 1:\n%s", c.name, n, r.stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, r.stderr)
			}
		}
		if _, ok := vfs.FindMount(mnt); ok {
			t.Fatalf("%s: left a mount", c.name)
		}
	}
	// --skip-missing mounts anyway.
	v := mountStart(t, missSpec, "--skip-missing")
	if _, err := os.Stat(filepath.Join(v.dir, "usr/bin/ls")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(v.dir, "nonexistent")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("skipped entry's ancestor visible: %v", err)
	}
}
