package integration

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// freezeLdd writes a spec with `vzfs ldd -o` and returns its path.
func freezeLdd(t *testing.T, dir, name string, inputs ...string) string {
	t.Helper()
	sp := filepath.Join(dir, name+".spec")
	r := runVzfs(t, append([]string{"ldd", "-o", sp}, inputs...)...)
	if r.code != 0 {
		t.Fatalf("vzfs ldd %v: exit %d\n%s", inputs, r.code, r.stderr)
	}
	return sp
}

// freezeRun runs vzfs freeze and fails the test unless it exits 0.
func freezeRun(t *testing.T, args ...string) result {
	t.Helper()
	r := runVzfs(t, append([]string{"freeze"}, args...)...)
	if r.code != 0 {
		t.Fatalf("vzfs freeze %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return r
}

// freezeRmTree removes a frozen tree, which may hold read-only directories.
func freezeRmTree(t *testing.T, dir string) {
	t.Cleanup(func() {
		_ = exec.Command("chmod", "-R", "u+rwx", dir).Run()
		_ = os.RemoveAll(dir)
	})
}

// TestFreezeRealPrograms is acceptance 1: real programs frozen from ldd
// specs run in a chroot and print what they print on the host.
func TestFreezeRealPrograms(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	dyn := "/usr/lib/python3.11/lib-dynload/"
	cases := []struct {
		name   string
		inputs []string
		argv   []string
	}{
		{"ls", []string{"ls"}, []string{"/usr/bin/ls", "-ln", "/usr/bin/ls", "/etc/ld.so.cache"}},
		{"python3", []string{"/usr/bin/python3", "/usr/lib/python3.11/**",
			dyn + "_ssl.cpython-311-x86_64-linux-gnu.so", dyn + "_sqlite3.cpython-311-x86_64-linux-gnu.so"},
			[]string{"/usr/bin/python3", "-c", "import ssl, sqlite3, json; print(ssl.OPENSSL_VERSION, sqlite3.sqlite_version, json.dumps({'a': [1, 2]}))"}},
		{"perl", []string{"/usr/bin/perl", "/usr/share/perl/5.36/**", "/usr/lib/x86_64-linux-gnu/perl/5.36/**",
			"/usr/lib/x86_64-linux-gnu/perl-base/**", "/usr/share/perl5/**", "/dev/null"},
			[]string{"/usr/bin/perl", "-MPOSIX", "-MList::Util=sum", "-e", "print sum(1..10), ' ', POSIX::floor(2.5), qq{\\n}"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sp := freezeLdd(t, dir, c.name, c.inputs...)
			dest := filepath.Join(dir, c.name+"-root")
			freezeRmTree(t, dest)
			freezeRun(t, sp, dest)
			host := runCmd(t, nil, c.argv[0], c.argv[1:]...)
			got := chrootRun(t, dest, c.argv...)
			if host.code != 0 || got.code != 0 || got.stdout != host.stdout || got.stdout == "" {
				t.Errorf("%v\nhost: exit %d %q %s\nchroot: exit %d %q %s", c.argv, host.code, host.stdout, host.stderr, got.code, got.stdout, got.stderr)
			}
		})
	}
}

// TestFreezeGCCBuild is acceptance 1's build case: a spec traced from a
// real gcc build, frozen, builds the same program in a chroot.
func TestFreezeGCCBuild(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatal("vzfs trace needs strace (apt-get install strace)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.c")
	writeFile(t, src, "#include <stdio.h>\n#include <math.h>\nint main(void) { printf(\"%.3f\\n\", sqrt(2.0)); return 0; }\n", 0o644)
	sp := filepath.Join(dir, "gcc.spec")
	if r := runVzfs(t, "trace", "-o", sp, "--", "gcc", "-O2", "-o", filepath.Join(dir, "hello"), src, "-lm"); r.code != 0 {
		t.Fatalf("vzfs trace gcc: exit %d\n%s", r.code, r.stderr)
	}
	host := runCmd(t, nil, filepath.Join(dir, "hello"))
	dest := filepath.Join(dir, "root")
	freezeRmTree(t, dest)
	freezeRun(t, sp, dest)
	// /tmp is in the view (the base extra) but its contents are not.
	writeFile(t, filepath.Join(dest, "tmp", "hello.c"), freezeRead(t, src), 0o644)
	if r := chrootRun(t, dest, "gcc", "-O2", "-o", "/tmp/hello", "/tmp/hello.c", "-lm"); r.code != 0 {
		t.Fatalf("gcc in the chroot: exit %d\n%s", r.code, r.stderr)
	}
	got := chrootRun(t, dest, "/tmp/hello")
	if host.code != 0 || got.stdout != host.stdout || got.stdout != "1.414\n" {
		t.Errorf("host %q, chroot-built %q %s", host.stdout, got.stdout, got.stderr)
	}
}

func freezeRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// freezeFixture builds the fidelity fixture of acceptance 2 under root.
func freezeFixture(t *testing.T, root string) {
	t.Helper()
	sh := `set -e
cd "$1"
mkdir -p bin odd/inner sticky
printf '#!/bin/sh\necho hi\n' > bin/suid; chmod 4755 bin/suid
cp /usr/bin/true bin/ping; setcap cap_net_raw+ep bin/ping
printf 'sg' > bin/sgid; chown 0:2 bin/sgid; chmod 2751 bin/sgid
truncate -s 1G sparse; printf 'head' | dd of=sparse conv=notrunc status=none
printf 'shared' > bin/a; ln bin/a bin/b; ln bin/a odd/c
ln -s /etc/hostname abs; ln -s ../bin/suid odd/rel
mkfifo -m 0640 fifo
mknod -m 0600 null c 1 3
setfattr -n user.note -v hello bin/a
chmod 1777 sticky; chmod 0711 odd/inner; chmod 0555 odd
touch -h -d '2021-02-03 04:05:06.123456789' abs odd/rel bin/suid
touch -d '2020-01-01 00:00:00' bin/a sparse
`
	if out, err := exec.Command("sh", "-c", sh, "sh", root).CombinedOutput(); err != nil {
		t.Fatalf("building fixture: %v\n%s", err, out)
	}
	freezeRmTree(t, root)
}

// freezeStatAll lists stat and getfattr output for every entry below dir,
// with paths relative to it.
func freezeStatAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		// %i inode and %h links differ by nature; compared separately.
		st, err := exec.Command("stat", "-c", "%F %a %u %g %s %t:%T %y %N", p).Output()
		if err != nil {
			return err
		}
		line := strings.ReplaceAll(string(st), dir, "DIR")
		if fi.Mode()&os.ModeSymlink == 0 {
			xa, _ := exec.Command("getfattr", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", p).Output()
			line += strings.ReplaceAll(string(xa), p, "")
		}
		if fi.IsDir() {
			// A directory's size is its filesystem's business.
			line = strings.Replace(line, fmt.Sprintf(" %d ", fi.Size()), " - ", 1)
		}
		out[rel] = line
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFreezeFidelity is acceptance 2.
func TestFreezeFidelity(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	fix := filepath.Join(dir, "fix")
	if err := os.Mkdir(fix, 0o755); err != nil {
		t.Fatal(err)
	}
	freezeFixture(t, fix)
	sp := filepath.Join(dir, "fix.spec")
	writeFile(t, sp, fix+"/**\n", 0o644)
	dest := filepath.Join(dir, "out")
	freezeRmTree(t, dest)
	freezeRun(t, "--no-resolve", sp, dest)

	want := freezeStatAll(t, fix)
	got := freezeStatAll(t, filepath.Join(dest, fix))
	if len(want) < 15 {
		t.Fatalf("fixture has only %d entries", len(want))
	}
	for rel, w := range want {
		if got[rel] != w {
			t.Errorf("%s:\nhost:   %s\nfrozen: %s", rel, w, got[rel])
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			t.Errorf("%s: in the frozen tree, not on the host", rel)
		}
	}
	if !strings.Contains(want["bin/ping"], "security.capability") {
		t.Errorf("fixture lacks the capability xattr: %s", want["bin/ping"])
	}
	out := filepath.Join(dest, fix)
	var a, b, c, sp1 syscall.Stat_t
	for p, st := range map[string]*syscall.Stat_t{"bin/a": &a, "bin/b": &b, "odd/c": &c, "sparse": &sp1} {
		if err := syscall.Lstat(filepath.Join(out, p), st); err != nil {
			t.Fatal(err)
		}
	}
	if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
		t.Errorf("hard links: inodes %d %d %d, nlink %d; want one inode, 3 links", a.Ino, b.Ino, c.Ino, a.Nlink)
	}
	if sp1.Size != 1<<30 || sp1.Blocks*512 > 1<<20 {
		t.Errorf("sparse file: size %d, %d bytes allocated; want 1 GiB in under 1 MiB", sp1.Size, sp1.Blocks*512)
	}
	// The capability works: getcap reads it back.
	if r := runCmd(t, nil, "getcap", filepath.Join(out, "bin/ping")); !strings.Contains(r.stdout, "cap_net_raw=ep") {
		t.Errorf("getcap on the frozen file: %q %s", r.stdout, r.stderr)
	}
}

// freezeBigFixture makes n files of size bytes each, every one starting
// with tag, and returns a spec of the directory.
func freezeBigFixture(t *testing.T, root, tag string, n, size int) {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, size)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		copy(buf, fmt.Sprintf("%s %04d\n", tag, i))
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%04d", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// freezeState reads what DEST holds: "" if absent, else the tag all its
// files share, "MIXED" or "PARTIAL" if they disagree or some are short or
// missing.
func freezeState(t *testing.T, dest, fix string, n, size int) string {
	t.Helper()
	dir := filepath.Join(dest, fix)
	if _, err := os.Lstat(dest); os.IsNotExist(err) {
		return ""
	}
	tags := map[string]bool{}
	for i := range n {
		f, err := os.Open(filepath.Join(dir, fmt.Sprintf("f%04d", i)))
		if err != nil {
			return "PARTIAL"
		}
		head := make([]byte, 3)
		_, err = io.ReadFull(f, head)
		fi, _ := f.Stat()
		f.Close()
		if err != nil || fi.Size() != int64(size) {
			return "PARTIAL"
		}
		tags[string(head)] = true
	}
	if len(tags) != 1 {
		return "MIXED"
	}
	for k := range tags {
		return k
	}
	return ""
}

// freezeKillDuring starts vzfs with args, kills it with SIGKILL after d
// and reaps it.
func freezeKillDuring(t *testing.T, d time.Duration, args ...string) {
	t.Helper()
	cmd := exec.Command(vzfsBin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func freezeLeftovers(t *testing.T, dir string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.Contains(e.Name(), ".vzfs-tmp-") {
			n++
		}
	}
	return n
}

// TestFreezeKillAtomic is acceptance 3: SIGKILL in the middle of a freeze
// never leaves a half tree at DEST, and in the middle of --update leaves
// the old tree or the new one.
func TestFreezeKillAtomic(t *testing.T) {
	requireRoot(t)
	const n, size = 48, 6 << 20 // 288 MiB
	dir := t.TempDir()
	fix := filepath.Join(dir, "data")
	freezeBigFixture(t, fix, "OLD", n, size)
	sp := filepath.Join(dir, "data.spec")
	writeFile(t, sp, fix+"/**\n", 0o644)
	destDir := filepath.Join(dir, "dests")
	if err := os.Mkdir(destDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(destDir, "out")

	// How long a whole freeze takes here, to aim the kills inside it.
	start := time.Now()
	freezeRun(t, "--no-resolve", sp, dest)
	full := time.Since(start)
	t.Logf("a full freeze takes %v", full)
	if err := os.RemoveAll(dest); err != nil {
		t.Fatal(err)
	}

	sawLeftover := false
	for i := range 8 {
		d := full * time.Duration(i+1) / 10
		freezeKillDuring(t, d, "freeze", "--no-resolve", sp, dest)
		switch st := freezeState(t, dest, fix, n, size); st {
		case "":
			sawLeftover = sawLeftover || freezeLeftovers(t, destDir) > 0
		case "OLD":
			if err := os.RemoveAll(dest); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("kill after %v left DEST %s", d, st)
		}
	}
	if !sawLeftover {
		t.Error("no kill landed mid-copy (no temporary tree seen); the test proves nothing")
	}
	// The next run cleans up the leftovers of killed ones.
	freezeRun(t, "--no-resolve", sp, dest)
	if k := freezeLeftovers(t, destDir); k != 0 {
		t.Errorf("%d leftovers after a completed freeze", k)
	}

	// --update from OLD to NEW, killed: DEST is OLD or NEW, never a mix.
	freezeBigFixture(t, fix, "NEW", n, size)
	seen := map[string]int{}
	for i := range 8 {
		d := full * time.Duration(i+1) / 8
		freezeKillDuring(t, d, "freeze", "--update", "--no-resolve", sp, dest)
		st := freezeState(t, dest, fix, n, size)
		seen[st]++
		if st != "OLD" && st != "NEW" {
			t.Fatalf("kill after %v during --update left DEST %q", d, st)
		}
		if st == "NEW" {
			break
		}
	}
	t.Logf("states after killed updates: %v", seen)
	freezeRun(t, "--update", "--no-resolve", sp, dest)
	if st := freezeState(t, dest, fix, n, size); st != "NEW" {
		t.Errorf("after a completed update DEST is %q", st)
	}
	if seen["OLD"] == 0 {
		t.Error("no kill landed before the update finished; the test proves nothing")
	}
}

// TestFreezeSafety is acceptance 4: a symlink planted in DEST is never
// written through, and a DEST whose parent is reached through a symlink is
// refused.
func TestFreezeSafety(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	sp := filepath.Join(dir, "etc.spec")
	writeFile(t, sp, "/etc/hostname\n/etc/passwd\n", 0o644)
	var before syscall.Stat_t
	if err := syscall.Lstat("/etc", &before); err != nil {
		t.Fatal(err)
	}
	listing := func() string {
		ents, _ := os.ReadDir("/etc")
		var s []string
		for _, e := range ents {
			s = append(s, e.Name())
		}
		return strings.Join(s, " ")
	}
	etcBefore := listing()

	dest := filepath.Join(dir, "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dest, "etc")); err != nil {
		t.Fatal(err)
	}
	// Without --update the non-empty DEST is refused outright.
	if r := runVzfs(t, "freeze", "--no-resolve", sp, dest); r.code != 1 || !strings.Contains(r.stderr, "--update") {
		t.Errorf("freeze into a non-empty DEST: exit %d %s", r.code, r.stderr)
	}
	freezeRun(t, "--update", "--no-resolve", sp, dest)
	if fi, err := os.Lstat(filepath.Join(dest, "etc")); err != nil || !fi.IsDir() {
		t.Errorf("DEST/etc is not a directory after update: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "etc/hostname")); err != nil || len(b) == 0 {
		t.Errorf("DEST/etc/hostname: %v", err)
	}

	// DEST below a symlinked directory.
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "via")); err != nil {
		t.Fatal(err)
	}
	r := runVzfs(t, "freeze", "--no-resolve", sp, filepath.Join(dir, "via", "out"))
	if r.code != 1 || !strings.Contains(r.stderr, "symlink") || !strings.Contains(r.stderr, real) {
		t.Errorf("DEST through a symlink: exit %d %s", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(real); len(ents) != 0 {
		t.Errorf("freeze wrote through the symlinked parent: %v", ents)
	}

	var after syscall.Stat_t
	if err := syscall.Lstat("/etc", &after); err != nil {
		t.Fatal(err)
	}
	if after.Mtim != before.Mtim || listing() != etcBefore {
		t.Error("the host's /etc changed during the test")
	}
}

// TestFreezeTar is acceptance 5.
func TestFreezeTar(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	sp := freezeLdd(t, dir, "ls", "ls")
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	freezeRun(t, "--tar", a, "--mtime", "2024-01-01T00:00:00Z", sp)
	r := runCmd(t, []string{"SOURCE_DATE_EPOCH=1704067200"}, vzfsBin, "freeze", "--tar", b, sp)
	if r.code != 0 {
		t.Fatalf("freeze with SOURCE_DATE_EPOCH: %s", r.stderr)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ab) == 0 || !bytes.Equal(ab, bb) {
		t.Fatalf("two tars of the same spec and mtime differ (%d and %d bytes)", len(ab), len(bb))
	}
	out := runVzfs(t, "freeze", "--tar", "-", "--mtime", "@1704067200", sp)
	if out.code != 0 || out.stdout != string(ab) {
		t.Errorf("--tar - differs from the file (exit %d)", out.code)
	}
	x := filepath.Join(dir, "x")
	if err := os.Mkdir(x, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, nil, "tar", "--xattrs", "--xattrs-include=*", "-xpf", a, "-C", x); r.code != 0 {
		t.Fatalf("GNU tar: %s", r.stderr)
	}
	host := runCmd(t, nil, "ls", "--version")
	got := chrootRun(t, x, "ls", "--version")
	if got.code != 0 || got.stdout != host.stdout {
		t.Errorf("ls in the extracted tar: exit %d %q %s", got.code, got.stdout, got.stderr)
	}
	if r := chrootRun(t, x, "/usr/bin/ls", "/usr/bin"); r.code != 0 || strings.TrimSpace(r.stdout) != "ls" {
		t.Errorf("/usr/bin in the chroot holds %q", r.stdout)
	}
}

// freezeTarNames lists a tar's member names.
func freezeTarNames(t *testing.T, r io.Reader) []string {
	t.Helper()
	tr := tar.NewReader(r)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
}

// TestFreezeOCI is acceptance 6.
func TestFreezeOCI(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	sp := freezeLdd(t, dir, "ls", "ls")
	img := filepath.Join(dir, "img.tar")
	args := []string{"--tag", "vzfs-test/ls:1", "--entrypoint", "/usr/bin/ls -l", "--env", "A=1", "--workdir", "/", "--mtime", "@1704067200", sp}
	freezeRun(t, append([]string{"--oci", img}, args...)...)
	freezeRun(t, append([]string{"--oci", filepath.Join(dir, "img2.tar")}, args...)...)
	ab, _ := os.ReadFile(img)
	bb, _ := os.ReadFile(filepath.Join(dir, "img2.tar"))
	if !bytes.Equal(ab, bb) {
		t.Error("two oci-archives of the same spec and mtime differ")
	}
	freezeRun(t, append([]string{"--oci", filepath.Join(dir, "layout")}, args...)...)

	x := filepath.Join(dir, "x")
	if err := os.Mkdir(x, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, nil, "tar", "-xf", img, "-C", x); r.code != 0 {
		t.Fatal(r.stderr)
	}
	var digests []string
	for _, d := range []string{x, filepath.Join(dir, "layout")} {
		idx, err := layout.ImageIndexFromPath(d)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil || len(im.Manifests) != 1 {
			t.Fatalf("index of %s: %v", d, err)
		}
		image, err := idx.Image(im.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(image); err != nil {
			t.Fatalf("%s: digests do not verify: %v", d, err)
		}
		digests = append(digests, im.Manifests[0].Digest.String())
		layers, err := image.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%d layers: %v", len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		got := freezeTarNames(t, rc)
		rc.Close()
		tr := runVzfs(t, "freeze", "--tar", "-", "--mtime", "@1704067200", sp)
		want := freezeTarNames(t, strings.NewReader(tr.stdout))
		if strings.Join(got, "\n") != strings.Join(want, "\n") || len(want) < 20 {
			t.Errorf("layer entries differ from the spec's tar:\nlayer %v\ntar   %v", got, want)
		}
		cf, err := image.ConfigFile()
		if err != nil || strings.Join(cf.Config.Entrypoint, " ") != "/usr/bin/ls -l" {
			t.Errorf("config entrypoint %v, %v", cf.Config.Entrypoint, err)
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("archive and layout digests differ: %v", digests)
	}

	// skopeo (Debian package skopeo) reads the archive as podman would.
	if _, err := exec.LookPath("skopeo"); err == nil {
		r := runCmd(t, nil, "skopeo", "inspect", "--raw", "oci-archive:"+img)
		if r.code != 0 {
			t.Errorf("skopeo inspect: %s", r.stderr)
		}
		r = runCmd(t, nil, "skopeo", "copy", "oci-archive:"+img, "oci:"+filepath.Join(dir, "copied")+":ls")
		if r.code != 0 {
			t.Errorf("skopeo copy: %s", r.stderr)
		}
	} else if strict() {
		t.Error("skopeo is not installed (apt-get install skopeo)")
	}
	// umoci (Debian package umoci) unpacks it into a runtime bundle.
	if _, err := exec.LookPath("umoci"); err == nil {
		bundle := filepath.Join(dir, "bundle")
		r := runCmd(t, nil, "umoci", "unpack", "--image", filepath.Join(dir, "layout")+":vzfs-test/ls:1", bundle)
		if r.code != 0 {
			t.Errorf("umoci unpack: %s", r.stderr)
		} else if got := chrootRun(t, filepath.Join(bundle, "rootfs"), "/usr/bin/ls", "/usr/bin"); strings.TrimSpace(got.stdout) != "ls" {
			t.Errorf("ls in the umoci rootfs: %q %s", got.stdout, got.stderr)
		}
	} else if strict() {
		t.Error("umoci is not installed (apt-get install umoci)")
	}
}

// TestFreezeDiskFull: running out of space names the destination and
// leaves nothing behind.
func TestFreezeDiskFull(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "small")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, nil, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt); r.code != 0 {
		t.Fatalf("mount tmpfs: %s", r.stderr)
	}
	t.Cleanup(func() {
		if exec.Command("umount", mnt).Run() != nil {
			_ = exec.Command("umount", "-l", mnt).Run()
		}
	})
	big := filepath.Join(dir, "big")
	writeFile(t, big, strings.Repeat("x", 4<<20), 0o644)
	sp := filepath.Join(dir, "big.spec")
	writeFile(t, sp, big+"\n", 0o644)
	for _, args := range [][]string{{sp, filepath.Join(mnt, "out")}, {"--tar", filepath.Join(mnt, "out.tar"), sp}} {
		r := runVzfs(t, append([]string{"freeze", "--no-resolve"}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "disk full") || !strings.Contains(r.stderr, mnt) {
			t.Errorf("freeze %v onto a full disk: exit %d %s", args, r.code, r.stderr)
		}
		if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
			t.Errorf("a failed freeze left %v", ents)
		}
	}
}

// TestFreezeMissingEntries: entries missing on the host are all listed,
// the exit is 2 as for mount and run, and no DEST appears.
func TestFreezeMissingEntries(t *testing.T) {
	dir := t.TempDir()
	specFile := filepath.Join(dir, "s.spec")
	writeFile(t, specFile, "/usr/bin/true\n/nope/a\n/nope/b\n", 0o644)
	dest := filepath.Join(dir, "out")
	r := runVzfs(t, "freeze", "--no-resolve", specFile, dest)
	if r.code != 2 || !strings.Contains(r.stderr, "/nope/a") || !strings.Contains(r.stderr, "/nope/b") || !strings.Contains(r.stderr, specFile) {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 naming the spec and both entries", r.code, r.stderr)
	}
	if _, err := os.Lstat(dest); !os.IsNotExist(err) {
		t.Errorf("DEST exists after a refused freeze: %v", err)
	}
	if r := runVzfs(t, "freeze", "--no-resolve", "--skip-missing", specFile, dest); r.code != 0 {
		t.Fatalf("--skip-missing: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dest, "usr/bin/true")); err != nil {
		t.Errorf("--skip-missing did not freeze the rest: %v", err)
	}
}
