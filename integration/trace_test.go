package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vzfs/vzfs/spec"
)

// traceSpec runs `vzfs trace -o SPEC -- argv...` and returns the spec path,
// the parsed spec and vzfs's result.
func traceSpec(t *testing.T, extra []string, argv ...string) (string, *spec.Spec, result) {
	t.Helper()
	specFile := filepath.Join(t.TempDir(), "trace.spec")
	args := append([]string{"trace", "-o", specFile}, extra...)
	args = append(append(args, "--"), argv...)
	r := runVzfs(t, args...)
	s, err := spec.ParseFile(specFile)
	if err != nil {
		t.Fatalf("vzfs %s: exit %d, no spec: %v\nstderr:\n%s", strings.Join(args, " "), r.code, err, r.stderr)
	}
	return specFile, s, r
}

// traceWant fails the test unless the spec covers every path.
func traceWant(t *testing.T, s *spec.Spec, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if !s.Covers(p) {
			t.Errorf("spec lacks %s", p)
		}
	}
}

// traceWantGlob fails the test unless some spec entry matches pattern.
func traceWantGlob(t *testing.T, s *spec.Spec, pattern string) {
	t.Helper()
	for _, e := range s.Entries {
		if ok, _ := filepath.Match(pattern, e.Path); ok {
			return
		}
	}
	t.Errorf("spec has no entry matching %s", pattern)
}

// traceCompare runs argv on the host and, with chroot, in a copy of the
// spec's entries, and requires equal output and status.
func traceCompare(t *testing.T, specFile string, argv ...string) {
	t.Helper()
	root := t.TempDir()
	copySpec(t, specFile, root)
	// /dev is a mount point the view provides (the spec holds the empty
	// directory); perl, for one, opens /dev/null.
	bindMount(t, "/dev", filepath.Join(root, "dev"))
	host := runCmd(t, nil, argv[0], argv[1:]...)
	in := chrootRun(t, root, argv...)
	if in.stdout != host.stdout || in.code != host.code {
		t.Errorf("chroot run differs from host run\nhost (%d): %q\nchroot (%d): %q\nchroot stderr: %s",
			host.code, host.stdout, in.code, in.stdout, in.stderr)
	}
	if host.stdout == "" {
		t.Errorf("host run printed nothing; the comparison proves little")
	}
}

// traceWorkDir makes a directory outside the excluded prefixes (/tmp is
// one), so what the test builds there is traced and copied.
func traceWorkDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "vzfs-trace-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestTraceCdRelative(t *testing.T) {
	requireRoot(t)
	argv := []string{"/bin/sh", "-c", "cd /etc && cat hostname"}
	specFile, s, r := traceSpec(t, nil, argv...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	traceWant(t, s, "/etc/hostname", "/usr/bin/cat")
	traceCompare(t, specFile, argv...)
}

func TestTracePython(t *testing.T) {
	requireRoot(t)
	argv := []string{"/usr/bin/python3", "-c", "import json, sqlite3, ssl, hashlib; print(ssl.OPENSSL_VERSION)"}
	specFile, s, r := traceSpec(t, nil, argv...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	// dlopen'd extension modules and what they link: only the trace sees them.
	traceWantGlob(t, s, "/usr/lib/python3*/lib-dynload/_ssl.*.so")
	traceWantGlob(t, s, "/usr/lib/python3*/lib-dynload/_sqlite3.*.so")
	traceWantGlob(t, s, "/usr/lib/x86_64-linux-gnu/libssl.so.*")
	traceWantGlob(t, s, "/usr/lib/python3*/json/__init__.py")
	traceCompare(t, specFile, argv...)
}

func TestTracePerl(t *testing.T) {
	requireRoot(t)
	argv := []string{"/usr/bin/perl", "-MPOSIX", "-MJSON::PP", "-e", `print encode_json([strftime("%Y",gmtime(0))])`}
	specFile, s, r := traceSpec(t, nil, argv...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	traceWantGlob(t, s, "/usr/lib/x86_64-linux-gnu/perl*/auto/POSIX/POSIX.so")
	traceWantGlob(t, s, "/usr/share/perl*/*/JSON/PP.pm")
	traceCompare(t, specFile, argv...)
}

func TestTraceMake(t *testing.T) {
	requireRoot(t)
	proj := t.TempDir()
	writeFile(t, filepath.Join(proj, "hello.c"), "#include <stdio.h>\n#include \"msg.h\"\nint main(void) { puts(MSG); return 0; }\n", 0o644)
	writeFile(t, filepath.Join(proj, "msg.h"), "#define MSG \"hello from make\"\n", 0o644)
	writeFile(t, filepath.Join(proj, "Makefile"), "hello: hello.o\n\tgcc -o hello hello.o\nhello.o: hello.c msg.h\n\tgcc -c -o hello.o hello.c\n", 0o644)
	argv := []string{"/usr/bin/make", "-C", proj, "-B"}
	specFile, s, r := traceSpec(t, nil, argv...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	traceWant(t, s, "/usr/bin/make", "/usr/bin/gcc", "/usr/bin/as", "/usr/bin/ld")
	traceWantGlob(t, s, "/usr/lib/gcc/x86_64-linux-gnu/*/cc1")
	traceWantGlob(t, s, "/usr/lib/gcc/x86_64-linux-gnu/*/collect2")
	// Debian's gcc links PIE by default: Scrt1.o and crtbeginS.o.
	traceWantGlob(t, s, "/usr/lib/x86_64-linux-gnu/*crt1.o")
	traceWant(t, s, "/usr/lib/x86_64-linux-gnu/crti.o")
	traceWantGlob(t, s, "/usr/lib/gcc/x86_64-linux-gnu/*/crtbegin*.o")
	// libc.so is a linker script; the files it names come from the trace.
	traceWant(t, s, "/usr/lib/x86_64-linux-gnu/libc.so", "/usr/lib/x86_64-linux-gnu/libc_nonshared.a")
	traceWant(t, s, "/usr/include/stdio.h")

	root := t.TempDir()
	copySpec(t, specFile, root)
	// The project is bind-mounted writable at its own path, as a view would
	// be run with a work directory.
	target := filepath.Join(root, proj)
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	bindMount(t, proj, target)
	// A view mounts /dev; gcc and make want /dev/null.
	bindMount(t, "/dev", filepath.Join(root, "dev"))
	if err := os.Remove(filepath.Join(proj, "hello")); err != nil {
		t.Fatal(err)
	}
	in := chrootRun(t, root, argv...)
	if in.code != 0 {
		t.Fatalf("rebuild in chroot: exit %d\n%s%s", in.code, in.stdout, in.stderr)
	}
	out := runCmd(t, nil, filepath.Join(proj, "hello"))
	if out.stdout != "hello from make\n" {
		t.Errorf("rebuilt program printed %q", out.stdout)
	}
}

func TestTraceThreads(t *testing.T) {
	requireRoot(t)
	dir := traceWorkDir(t)
	src := filepath.Join(dir, "thr.c")
	writeFile(t, src, `#include <pthread.h>
#include <stdio.h>
static void *run(void *arg) {
	(void)arg;
	FILE *f = fopen("/usr/share/common-licenses/GPL-3", "r");
	char line[128] = "";
	if (f && fgets(line, sizeof line, f)) fputs(line, stdout);
	return 0;
}
int main(void) {
	pthread_t t;
	if (pthread_create(&t, 0, run, 0)) return 1;
	pthread_join(t, 0);
	return 0;
}
`, 0o644)
	bin := filepath.Join(dir, "thr")
	if out, err := exec.Command("gcc", "-O", "-pthread", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	specFile, s, r := traceSpec(t, nil, bin)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	traceWant(t, s, bin, "/usr/share/common-licenses/GPL-3")
	traceCompare(t, specFile, bin)
}

func TestTraceExitStatus(t *testing.T) {
	requireRoot(t)
	specFile, s, r := traceSpec(t, nil, "/bin/sh", "-c", "cat /etc/hostname; exit 3")
	if r.code != 3 {
		t.Errorf("vzfs exited %d, want the command's 3; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "failed") {
		t.Errorf("no warning about the failed command in stderr:\n%s", r.stderr)
	}
	traceWant(t, s, "/etc/hostname", "/usr/bin/cat")
	traceCompare(t, specFile, "/bin/sh", "-c", "cat /etc/hostname")
}

func TestTraceNoStrace(t *testing.T) {
	// A PATH that has sh and cat but no strace.
	bin := t.TempDir()
	for _, p := range []string{"/bin/sh", "/bin/cat"} {
		if err := os.Symlink(p, filepath.Join(bin, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	specFile := filepath.Join(t.TempDir(), "x.spec")
	r := runCmd(t, []string{"PATH=" + bin}, vzfsBin, "trace", "-o", specFile, "--", "cat", "/etc/hostname")
	if r.code == 0 {
		t.Errorf("exit 0 without strace")
	}
	if !strings.Contains(r.stderr, "strace not found") || !strings.Contains(r.stderr, "apt-get install strace") {
		t.Errorf("stderr does not say what is wrong and what to do:\n%s", r.stderr)
	}
	if _, err := os.Stat(specFile); err == nil {
		t.Errorf("a spec was written without a trace")
	}
}

// TestTraceOutputs checks --misses, --keep-log, --append and that vzfs's
// own outputs and files the command created stay out of the spec.
func TestTraceOutputs(t *testing.T) {
	requireRoot(t)
	dir := traceWorkDir(t)
	specFile := filepath.Join(dir, "out.spec")
	misses := filepath.Join(dir, "out.misses")
	log := filepath.Join(dir, "out.strace")
	existing := filepath.Join(dir, "existing.txt")
	writeFile(t, existing, "old\n", 0o644)
	created := filepath.Join(dir, "created.txt")
	script := "cat /etc/hostname >/dev/null; echo more >> " + existing + "; echo new > " + created +
		"; cat " + created + " >/dev/null; ls " + filepath.Join(dir, "nope") + " 2>/dev/null; true"
	r := runVzfs(t, "trace", "-o", specFile, "--misses", misses, "--keep-log", log, "--", "/bin/sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	s, err := spec.ParseFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	traceWant(t, s, "/etc/hostname", existing)
	for _, p := range []string{created, specFile, misses, log} {
		if s.Covers(p) {
			t.Errorf("spec holds %s", p)
		}
	}
	m, err := os.ReadFile(misses)
	if err != nil || !strings.Contains(string(m), filepath.Join(dir, "nope")+"\n") {
		t.Errorf("misses file lacks %s: %v\n%s", filepath.Join(dir, "nope"), err, m)
	}
	l, err := os.ReadFile(log)
	if err != nil || !strings.Contains(string(l), `execve("/bin/sh"`) {
		t.Errorf("kept log lacks the execve: %v", err)
	}

	r = runVzfs(t, "trace", "-o", specFile, "--append", "--", "/bin/cat", "/etc/os-release")
	if r.code != 0 {
		t.Fatalf("append: exit %d: %s", r.code, r.stderr)
	}
	s, err = spec.ParseFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	traceWant(t, s, "/etc/hostname", existing, "/etc/os-release")
}
