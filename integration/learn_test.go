package integration

import (
	"errors"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// learnDir makes a directory outside /tmp: learn mode never serves /tmp,
// and the sandbox covers it with a tmpfs.
func learnDir(t *testing.T) string { return hostDir(t, "vzfs-learn-test-") }

// learnMount runs 'vzfs mount --learn ARGS... SPEC MNT' on MNT = dir/mnt,
// logging to dir/daemon.log, and cleans up as mountStart does.
func learnMount(t *testing.T, dir, specFile string, args ...string) *mountView {
	t.Helper()
	mnt := filepath.Join(dir, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	return mountAt(t, specFile, mnt, append([]string{"--log-file", filepath.Join(dir, "daemon.log"), "--learn"}, args...)...)
}

// learnUmount unmounts v cleanly with vzfs umount, which waits for the
// daemon, so the spec has been rewritten when it returns.
func learnUmount(t *testing.T, v *mountView) {
	t.Helper()
	if r := runVzfs(t, "umount", v.dir); r.code != 0 {
		t.Fatalf("vzfs umount: exit %d\n%s", r.code, r.stderr)
	}
}

// learnSpec parses a spec; a torn final line is allowed, an error is not.
func learnSpec(t *testing.T, specFile string) *spec.Spec {
	t.Helper()
	s, err := spec.ParseFile(specFile)
	if err != nil {
		t.Fatalf("spec after learning does not parse: %v", err)
	}
	return s
}

// learnNew lists the entries of the spec file after that before lacks.
func learnNew(t *testing.T, before *spec.Spec, after string) []string {
	t.Helper()
	var out []string
	for _, e := range learnSpec(t, after).Entries {
		if !before.Has(e) {
			out = append(out, e.String())
		}
	}
	return out
}

// learnHostFiles lists up to n regular files below root on the host that
// spec s does not cover, in a stable order.
func learnHostFiles(t *testing.T, root string, n int, s *spec.Spec) []string {
	t.Helper()
	var out []string
	errStop := errors.New("enough")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() && !s.Covers(p) && spec.Validate(p) == nil {
			out = append(out, p)
			if len(out) == n {
				return errStop
			}
		}
		return nil
	})
	if err != nil && err != errStop {
		t.Fatal(err)
	}
	if len(out) < n {
		t.Fatalf("only %d files below %s, want %d", len(out), root, n)
	}
	return out
}

const learnProjMakefile = `# Compiles every time, so each run exercises the compiler.
.PHONY: check
check:
	gcc -O1 -o probe probe.c -ldl
	./probe
`

// The probe needs what no static resolver sees: a library by dlopen, gconv
// modules through iconv, and locale data.
const learnProjProbe = `#include <dlfcn.h>
#include <iconv.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

int main(void) {
	/* Not libm: make links that, so its spec has it already. */
	void *c = dlopen("libcrypt.so.1", RTLD_NOW);
	if (!c) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
	if (!dlsym(c, "crypt")) { fprintf(stderr, "dlsym crypt: %s\n", dlerror()); return 1; }
	iconv_t cd = iconv_open("UTF-16", "UTF-8");
	if (cd == (iconv_t)-1) { perror("iconv_open"); return 1; }
	char in[] = "h\xc3\xa9", out[16], *ip = in, *op = out;
	size_t il = strlen(in), ol = sizeof out;
	if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1) { perror("iconv"); return 1; }
	iconv_close(cd);
	if (!setlocale(LC_ALL, "C.UTF-8")) { fprintf(stderr, "setlocale\n"); return 1; }
	printf("probe ok: %zu bytes of UTF-16\n", sizeof out - ol);
	return 0;
}
`

// 1. A real test suite teaches the spec: learn with 'make check', then the
// learned spec passes strict, and the unlearned one fails.
func TestLearnTeachesMakeCheck(t *testing.T) {
	requireFUSE(t)
	proj := learnDir(t)
	writeFile(t, filepath.Join(proj, "Makefile"), learnProjMakefile, 0o644)
	writeFile(t, filepath.Join(proj, "probe.c"), learnProjProbe, 0o644)
	if r := runCmd(t, nil, "make", "-C", proj, "check"); r.code != 0 {
		t.Fatalf("make check fails natively: %s%s", r.stdout, r.stderr)
	}

	dir := t.TempDir()
	learned := filepath.Join(dir, "make.spec")
	if r := runVzfs(t, "ldd", "-o", learned, "make"); r.code != 0 {
		t.Fatalf("vzfs ldd make: exit %d\n%s", r.code, r.stderr)
	}
	orig := filepath.Join(dir, "orig.spec")
	b, err := os.ReadFile(learned)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, orig, string(b), 0o644)
	before := learnSpec(t, orig)
	misses := filepath.Join(dir, "misses.txt")

	r := runSandbox(t, nil, "run", "--learn", "--learn-log", misses, "--bind", proj, "--workdir", proj, learned, "--", "make", "check")
	if r.code != 0 || !strings.Contains(r.stdout, "probe ok") {
		t.Fatalf("learning run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "learned") {
		t.Errorf("no learn report in the log:\n%s", r.stderr)
	}
	added := learnNew(t, before, learned)
	joined := strings.Join(added, "\n")
	for _, want := range []string{"/cc1\n", "/bin/as", "crt1.o", "/stdio.h", "/libcrypt.so.1", "/gconv/UTF-16.so", "/C.utf8/LC_CTYPE"} {
		if !strings.Contains(joined+"\n", want) {
			t.Errorf("learned spec lacks %s", want)
		}
	}
	for _, p := range added {
		if strings.HasPrefix(p, proj) || strings.HasPrefix(p, "/tmp/") || strings.HasPrefix(p, "/proc/") {
			t.Errorf("learned %s, which the sandbox provides", p)
		}
	}
	// The rewrite left it sorted, with no duplicates.
	got, err := os.ReadFile(learned)
	if err != nil {
		t.Fatal(err)
	}
	var sorted strings.Builder
	if err := learnSpec(t, learned).Write(&sorted); err != nil {
		t.Fatal(err)
	}
	if string(got) != sorted.String() {
		t.Error("learned spec is not sorted and deduplicated after the run")
	}
	if _, err := os.Stat(learned + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left after the run: %v", err)
	}
	t.Logf("learned %d entries", len(added))

	r = runSandbox(t, nil, "run", "--bind", proj, "--workdir", proj, learned, "--", "make", "check")
	if r.code != 0 || !strings.Contains(r.stdout, "probe ok") {
		t.Fatalf("strict run with the learned spec: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runSandbox(t, nil, "run", "--bind", proj, "--workdir", proj, orig, "--", "make", "check")
	if r.code == 0 {
		t.Fatalf("strict run with the unlearned spec passed:\n%s%s", r.stdout, r.stderr)
	}
}

// 2. Crash safety: whatever a lookup was answered for is in the spec after
// a kill -9 of the daemon, and the spec always parses.
func TestLearnCrashSafety(t *testing.T) {
	requireFUSE(t)
	dir := learnDir(t)
	specFile := filepath.Join(dir, "crash.spec")
	if r := runVzfs(t, "ldd", "-o", specFile, "/bin/sh"); r.code != 0 {
		t.Fatalf("vzfs ldd: exit %d\n%s", r.code, r.stderr)
	}
	const rounds = 10
	files := learnHostFiles(t, "/usr/share", 100+rounds*150, learnSpec(t, specFile))
	kill := func(v *mountView) {
		t.Helper()
		if err := unix.Kill(v.pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if !mountWaitExit(v.pid, 5*time.Second) {
			t.Fatal("daemon survived SIGKILL")
		}
		// Clears the dead mount.
		learnUmount(t, v)
	}

	// All answered, then killed.
	v := learnMount(t, dir, specFile)
	for _, p := range files[:100] {
		if _, err := os.Lstat(filepath.Join(v.dir, p)); err != nil {
			t.Fatalf("lstat in the view: %v", err)
		}
	}
	kill(v)
	s := learnSpec(t, specFile)
	for _, p := range files[:100] {
		if !s.Has(spec.Entry{Path: p}) {
			t.Fatalf("%s was answered but is not in the spec after kill -9", p)
		}
	}

	// Killed while lookups are in flight.
	rng := rand.New(rand.NewSource(1))
	for round := range rounds {
		batch := files[100+round*150 : 100+(round+1)*150]
		v := learnMount(t, dir, specFile)
		var answered sync.Map
		var n atomic.Int32
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(batch); i += 4 {
					if _, err := os.Lstat(filepath.Join(v.dir, batch[i])); err == nil {
						answered.Store(batch[i], true)
						n.Add(1)
					}
				}
			}()
		}
		time.Sleep(time.Duration(rng.Intn(15)+1) * time.Millisecond)
		kill(v)
		wg.Wait()
		s := learnSpec(t, specFile)
		answered.Range(func(k, _ any) bool {
			if !s.Has(spec.Entry{Path: k.(string)}) {
				t.Errorf("round %d: %s was answered but is not in the spec", round, k)
			}
			return true
		})
		t.Logf("round %d: %d lookups answered before the kill, spec torn line %d", round, n.Load(), s.Torn)
	}
}

// 3. A second learning mount (or run) of the same spec is refused.
func TestLearnSecondMountRefused(t *testing.T) {
	requireFUSE(t)
	dir := learnDir(t)
	specFile := filepath.Join(dir, "one.spec")
	if r := runVzfs(t, "ldd", "-o", specFile, "/bin/sh"); r.code != 0 {
		t.Fatalf("vzfs ldd: exit %d\n%s", r.code, r.stderr)
	}
	v := learnMount(t, dir, specFile)
	mnt2 := filepath.Join(dir, "mnt2")
	if err := os.Mkdir(mnt2, 0o755); err != nil {
		t.Fatal(err)
	}
	r := runVzfs(t, "mount", "--learn", specFile, mnt2)
	if r.code != 2 || !strings.Contains(r.stderr, "being learned") || !strings.Contains(r.stderr, strconv.Itoa(v.pid)) {
		t.Fatalf("second learn mount: exit %d, want 2 naming pid %d\n%s", r.code, v.pid, r.stderr)
	}
	if _, ok := learnFindMount(mnt2); ok {
		t.Fatal("the refused mount is mounted")
	}
	// runVzfs, not runSandbox: the learning daemon is a vzfs process
	// that is meant to be alive.
	r = runVzfs(t, "run", "--learn", specFile, "--", "/bin/sh", "-c", "exit 0")
	if r.code != 2 || !strings.Contains(r.stderr, "being learned") {
		t.Fatalf("learning run of a locked spec: exit %d, want 2\n%s", r.code, r.stderr)
	}
	// A strict mount of it is fine.
	r = runVzfs(t, "mount", specFile, mnt2)
	if r.code != 0 {
		t.Fatalf("strict mount of a spec being learned: exit %d\n%s", r.code, r.stderr)
	}
	if m := mountPidRe.FindStringSubmatch(r.stdout); m != nil {
		pid, _ := strconv.Atoi(m[1])
		v2 := &mountView{dir: mnt2, pid: pid}
		t.Cleanup(func() { mountCleanup(t, v2) })
	}
	learnUmount(t, v)
	// Released at unmount: learning again works.
	learnUmount(t, learnMount(t, dir, specFile))
}

func learnFindMount(p string) (string, bool) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == p {
			return l, true
		}
	}
	return "", false
}

// 4. Listing a big host directory records the directory, not its entries.
func TestLearnListingHygiene(t *testing.T) {
	requireFUSE(t)
	dir := learnDir(t)
	specFile := filepath.Join(dir, "ls.spec")
	if r := runVzfs(t, "ldd", "-o", specFile, "ls"); r.code != 0 {
		t.Fatalf("vzfs ldd: exit %d\n%s", r.code, r.stderr)
	}
	bigs := []string{"/usr/share/doc", "/usr/lib/x86_64-linux-gnu"}
	below := func(p string) bool {
		return strings.HasPrefix(p, bigs[0]+"/") || strings.HasPrefix(p, bigs[1]+"/")
	}
	before := learnSpec(t, specFile)

	// ls and readdir: nothing below the directories is recorded.
	v := learnMount(t, dir, specFile)
	for _, big := range bigs {
		r := runCmd(t, nil, "ls", "-1", "--color=never", filepath.Join(v.dir, big))
		if n := strings.Count(r.stdout, "\n"); r.code != 0 || n < 100 {
			t.Fatalf("ls %s in the view: exit %d, %d entries\n%s", big, r.code, n, r.stderr)
		}
		want, _ := os.ReadDir(big)
		got, err := os.ReadDir(filepath.Join(v.dir, big))
		if err != nil || len(got) != len(want) {
			t.Fatalf("readdir %s: %d entries, host has %d (%v)", big, len(got), len(want), err)
		}
		for i := range got {
			if got[i].Name() != want[i].Name() || got[i].Type() != want[i].Type() {
				t.Fatalf("readdir %s: %s %v, host %s %v", big, got[i].Name(), got[i].Type(), want[i].Name(), want[i].Type())
			}
		}
	}
	learnUmount(t, v)
	added := learnNew(t, before, specFile)
	for _, p := range added {
		if below(p) {
			t.Errorf("listing recorded the entry %s", p)
		}
	}
	if !learnSpec(t, specFile).Has(spec.Entry{Path: "/usr/share/doc"}) {
		t.Errorf("the listed directory was not recorded; added: %q", added)
	}

	// find -maxdepth 1 goes by d_type, except that GNU find lstats the
	// directories it lists (fts's cycle check): those are lookups, and
	// recorded. No other entry is.
	before = learnSpec(t, specFile)
	v = learnMount(t, dir, specFile)
	for _, big := range bigs {
		r := runCmd(t, nil, "find", filepath.Join(v.dir, big), "-maxdepth", "1")
		if n := strings.Count(r.stdout, "\n"); r.code != 0 || n < 100 {
			t.Fatalf("find %s in the view: exit %d, %d entries\n%s", big, r.code, n, r.stderr)
		}
	}
	learnUmount(t, v)
	dirs := 0
	for _, p := range learnNew(t, before, specFile) {
		if !below(p) {
			continue
		}
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() || strings.Count(p, "/") != 4 {
			t.Errorf("find recorded the entry %s", p)
		}
		dirs++
	}
	t.Logf("find's lstat recorded %d directories", dirs)
}

// 5. The misses log holds names that exist nowhere; the spec does not.
func TestLearnMissesLog(t *testing.T) {
	requireFUSE(t)
	dir := learnDir(t)
	specFile := filepath.Join(dir, "m.spec")
	if r := runVzfs(t, "ldd", "-o", specFile, "/bin/sh"); r.code != 0 {
		t.Fatalf("vzfs ldd: exit %d\n%s", r.code, r.stderr)
	}
	misses := filepath.Join(dir, "misses.txt")
	v := learnMount(t, dir, specFile, "--learn-log", misses)
	nowhere := []string{"/etc/vzfs-no-such-file", "/usr/lib/vzfs-nope/libx.so", "/usr/share/vzfs missing"}
	for _, p := range nowhere {
		if _, err := os.Lstat(filepath.Join(v.dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("lstat %s: %v, want ENOENT", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(v.dir, "/etc/hostname")); err != nil {
		t.Fatal(err)
	}
	learnUmount(t, v)
	log, err := os.ReadFile(misses)
	if err != nil {
		t.Fatal(err)
	}
	ml, err := spec.Parse(strings.NewReader(string(log)))
	if err != nil {
		t.Fatalf("misses log: %v", err)
	}
	s := learnSpec(t, specFile)
	// The first missing component is the miss; below it nothing is
	// looked up.
	for _, p := range []string{"/etc/vzfs-no-such-file", "/usr/lib/vzfs-nope", "/usr/share/vzfs missing"} {
		if !ml.Has(spec.Entry{Path: p}) {
			t.Errorf("misses log lacks %s:\n%s", p, log)
		}
		if s.Covers(p) {
			t.Errorf("spec has the miss %s", p)
		}
	}
	if ml.Has(spec.Entry{Path: "/etc/hostname"}) || !s.Has(spec.Entry{Path: "/etc/hostname"}) {
		t.Error("/etc/hostname exists: it belongs in the spec, not the misses log")
	}
}

// 6. Disk full: a lookup that cannot be recorded fails, the daemon logs
// why, and the spec still parses.
func TestLearnDiskFull(t *testing.T) {
	requireFUSE(t)
	dir := learnDir(t)
	small := filepath.Join(dir, "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("vzfs-learn-full", small, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })
	specFile := filepath.Join(small, "full.spec")
	if r := runVzfs(t, "ldd", "-o", specFile, "/bin/sh"); r.code != 0 {
		t.Fatalf("vzfs ldd: exit %d\n%s", r.code, r.stderr)
	}
	files := learnHostFiles(t, "/usr/share", 2000, learnSpec(t, specFile))
	v := learnMount(t, dir, specFile)
	// Fill the tmpfs up.
	filler, err := os.Create(filepath.Join(small, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := filler.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	filler.Close()
	var answered []string
	var failure error
	for _, p := range files {
		_, err := os.Lstat(filepath.Join(v.dir, p))
		if err != nil {
			failure = err
			break
		}
		answered = append(answered, p)
	}
	if !errors.Is(failure, unix.EIO) && !errors.Is(failure, unix.ENOSPC) {
		t.Fatalf("lookups on a full disk: %d answered, then %v; want EIO or ENOSPC", len(answered), failure)
	}
	s := learnSpec(t, specFile)
	for _, p := range answered {
		if !s.Has(spec.Entry{Path: p}) {
			t.Fatalf("%s answered but not recorded", p)
		}
	}
	if s.Torn != 0 {
		t.Errorf("spec ends in a torn line %d", s.Torn)
	}
	learnUmount(t, v)
	log, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
	if !strings.Contains(string(log), "cannot record") || !strings.Contains(string(log), "no space left") {
		t.Errorf("the daemon log does not say why the lookup failed:\n%s", log)
	}
	learnSpec(t, specFile)
	t.Logf("%d lookups recorded before the disk filled up", len(answered))
}

// 7. Never recorded: the kernel's and scratch trees, and the mountpoint
// itself seen from inside the view.
func TestLearnNeverRecorded(t *testing.T) {
	requireFUSE(t)
	dir := learnDir(t)
	specFile := filepath.Join(dir, "n.spec")
	if r := runVzfs(t, "ldd", "-o", specFile, "/bin/sh"); r.code != 0 {
		t.Fatalf("vzfs ldd: exit %d\n%s", r.code, r.stderr)
	}
	hostTmp, err := os.CreateTemp("/tmp", "vzfs-learn-")
	if err != nil {
		t.Fatal(err)
	}
	hostTmp.Close()
	t.Cleanup(func() { os.Remove(hostTmp.Name()) })
	v := learnMount(t, dir, specFile)
	never := []string{"/proc/self/status", "/proc/1", "/sys/kernel", "/dev/null", "/run/vzfs", hostTmp.Name(), v.dir, v.dir + "/etc"}
	for _, p := range never {
		if _, err := os.Lstat(filepath.Join(v.dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lstat %s in the view: %v, want ENOENT", p, err)
		}
	}
	// The mountpoint's parent lists without it.
	ents, err := os.ReadDir(filepath.Join(v.dir, dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "mnt" {
			t.Error("the view lists its own mountpoint")
		}
	}
	learnUmount(t, v)
	for _, e := range learnSpec(t, specFile).Entries {
		for _, p := range append([]string{"/proc/", "/sys/", "/dev/", "/run/", "/tmp/"}, v.dir) {
			if strings.HasPrefix(e.Path, p) {
				t.Errorf("recorded %s", e.Path)
			}
		}
	}
	if !learnSpec(t, specFile).Has(spec.Entry{Path: dir}) {
		t.Errorf("the mountpoint's parent %s, looked up, was not recorded", dir)
	}
}

// vzfs run --writable --learn: what the command creates is a miss of the
// lower layer, never recorded, and neither is a bind's made-up mount point.
func TestLearnRunWritable(t *testing.T) {
	requireFUSE(t)
	dir := learnDir(t)
	specFile := filepath.Join(dir, "w.spec")
	if r := runVzfs(t, "ldd", "-o", specFile, "/bin/sh", "cat", "ls"); r.code != 0 {
		t.Fatalf("vzfs ldd: exit %d\n%s", r.code, r.stderr)
	}
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "inside"), "bound\n", 0o644)
	misses := filepath.Join(dir, "misses.txt")
	r := runSandbox(t, nil, "run", "--writable", "--learn", "--learn-log", misses, "--bind", src+":/opt/vzfs-learn-dst",
		specFile, "--", "/bin/sh", "-c", "echo new > /etc/vzfs-learn-new && cat /etc/vzfs-learn-new /etc/hostname /opt/vzfs-learn-dst/inside")
	if r.code != 0 || !strings.Contains(r.stdout, "new\n") || !strings.Contains(r.stdout, "bound\n") {
		t.Fatalf("learning writable run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Lstat("/etc/vzfs-learn-new"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the run wrote to the host: %v", err)
	}
	s := learnSpec(t, specFile)
	if !s.Has(spec.Entry{Path: "/etc/hostname"}) {
		t.Error("/etc/hostname, read from the host, was not learned")
	}
	for _, p := range []string{"/etc/vzfs-learn-new", "/opt/vzfs-learn-dst", src} {
		if s.Covers(p) {
			t.Errorf("recorded %s", p)
		}
	}
	log, err := os.ReadFile(misses)
	if err != nil || !strings.Contains(string(log), "/etc/vzfs-learn-new\n") {
		t.Errorf("misses log lacks the created file: %q, %v", log, err)
	}
}
