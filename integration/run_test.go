package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runTools are the programs every run test's spec holds.
var runTools = []string{"/bin/sh", "env", "cat", "ls", "id", "sleep", "touch", "mkdir", "rm", "pwd"}

// runSpecFor writes a spec of runTools (vzfs ldd) plus extra lines.
func runSpecFor(t *testing.T, extra ...string) string {
	t.Helper()
	return mountLdd(t, runTools, extra...)
}

// runHostDir makes a directory outside /tmp, which the sandbox covers with
// its own tmpfs, for files a spec must name; it is removed at the end.
func runHostDir(t *testing.T) string { return hostDir(t, "vzfs-run-test-") }

// runSandbox runs vzfs with args (and extra environment), at most a
// minute, and checks afterwards that it left nothing behind.
func runSandbox(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vzfsBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("vzfs %s: timed out\n%s", strings.Join(args, " "), r.stderr)
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("vzfs %s: %v", strings.Join(args, " "), err)
	}
	runNothingLeft(t, "")
	return r
}

// runMounts lists the host's mounts that a sandbox could have leaked: its
// scratch tmpfs, overlay, or a FUSE view (whose source is a spec path).
func runMounts(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, " /run/vzfs/run") || strings.Contains(l, "vzfs-run") || strings.Contains(l, "vzfs-overlay") ||
			strings.Contains(l, "run.spec") {
			out = append(out, l)
		}
	}
	return out
}

// runProcs lists live processes running the vzfs binary under test, or
// whose command line contains token.
func runProcs(token string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cmdline := strings.ReplaceAll(string(cl), "\x00", " ")
		if exe == vzfsBin || (token != "" && strings.Contains(cmdline, token)) {
			out = append(out, fmt.Sprintf("%d %s", pid, cmdline))
		}
	}
	return out
}

// runNothingLeft fails the test if a vzfs process, a process matching
// token, or a sandbox mount is still there after a grace period.
func runNothingLeft(t *testing.T, token string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		procs, mounts := runProcs(token), runMounts(t)
		if len(procs) == 0 && len(mounts) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind:\nprocesses: %q\nmounts: %q", procs, mounts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runWaitFile waits for a file a sandboxed program writes.
func runWaitFile(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(name); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func runHash(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// The sandbox has exactly the spec, a private /proc, a minimal /dev, and
// read-only everything but /tmp, /run and /dev/shm.
func TestRunSandboxLayout(t *testing.T) {
	requireFUSE(t)
	s := runSpecFor(t)
	r := runSandbox(t, nil, "run", s, "--", "sh", "-c", `
		ls /; echo ---; ls /dev; echo ---
		cat /proc/1/cmdline; echo
		echo hi > /dev/null && echo devnull-ok
		echo x > /tmp/f && echo tmp-ok; echo x > /run/f && echo run-ok; echo x > /dev/shm/f && echo shm-ok
		touch /etc/new 2>/dev/null || echo view-ro; touch /sys/x 2>/dev/null || echo sys-ro; touch /dev/x 2>/dev/null || echo dev-ro
		ls /proc/[0-9]* -d`)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	parts := strings.SplitN(r.stdout, "---\n", 3)
	if len(parts) != 3 {
		t.Fatalf("unexpected output:\n%s", r.stdout)
	}
	root := strings.Fields(parts[0])
	want := []string{"bin", "dev", "etc", "lib", "lib64", "proc", "run", "sys", "tmp", "usr"}
	sort.Strings(root)
	if strings.Join(root, " ") != strings.Join(want, " ") {
		t.Errorf("/ holds %q; want %q", root, want)
	}
	dev := strings.Fields(parts[1])
	if strings.Join(dev, " ") != "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero" {
		t.Errorf("/dev holds %q", dev)
	}
	for _, w := range []string{"devnull-ok", "tmp-ok", "run-ok", "shm-ok", "view-ro", "sys-ro", "dev-ro"} {
		if !strings.Contains(parts[2], w+"\n") {
			t.Errorf("missing %q in:\n%s", w, parts[2])
		}
	}
	// PID namespace: the init is PID 1, and /proc shows the sandbox's
	// few processes, not the host's; ls /proc/[0-9]* lists them.
	if !strings.Contains(parts[2], "sandbox-init") {
		t.Errorf("PID 1 is not the sandbox's init:\n%s", parts[2])
	}
	var pids int
	for _, l := range strings.Split(parts[2], "\n") {
		if strings.HasPrefix(l, "/proc/") {
			pids++
		}
	}
	if pids == 0 || pids > 5 {
		t.Errorf("sandbox /proc lists %d processes; want a handful:\n%s", pids, parts[2])
	}
}

// 3. --writable: writes land in a tmpfs overlay and vanish; the host and
// its mount table are unchanged.
func TestRunWritable(t *testing.T) {
	requireFUSE(t)
	for _, p := range []string{"/etc/foo", "/usr/bin/x"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists on the host; this test needs it absent", p)
		}
	}
	s := runSpecFor(t)
	before := runMounts(t)
	passwd := runHash(t, "/etc/passwd")
	r := runSandbox(t, nil, "run", "--writable", s, "--", "sh", "-c", `
		echo foo > /etc/foo && echo x > /usr/bin/x && echo root:x:0:0::/:/bin/sh > /etc/passwd &&
		mkdir -p /new/dir && cat /etc/foo /usr/bin/x /etc/passwd &&
		cat /proc/self/mountinfo`)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "foo\nx\nroot:x:0:0::/:/bin/sh\n") {
		t.Errorf("the program did not read back its writes:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, " / rw") || !strings.Contains(r.stdout, " - overlay ") {
		t.Errorf("root is not a writable overlay:\n%s", r.stdout)
	}
	for _, p := range []string{"/etc/foo", "/usr/bin/x", "/new"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s leaked to the host", p)
		}
	}
	if runHash(t, "/etc/passwd") != passwd {
		t.Errorf("/etc/passwd changed on the host")
	}
	if after := runMounts(t); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("mounts changed:\nbefore %q\nafter %q", before, after)
	}
	// Without --writable the same write fails.
	r = runSandbox(t, nil, "run", s, "--", "sh", "-c", "echo foo > /etc/foo")
	if r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("write to the strict view: exit %d, %q; want EROFS", r.code, r.stderr)
	}
}

// 4. Exit status: the command's, or 128+N for signal N.
func TestRunExitStatus(t *testing.T) {
	requireFUSE(t)
	s := runSpecFor(t)
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"kill -TERM $$", 143},
		{"kill -KILL $$", 137},
	} {
		if r := runSandbox(t, nil, "run", s, "--", "sh", "-c", tc.script); r.code != tc.want {
			t.Errorf("%q: exit %d, want %d\n%s", tc.script, r.code, tc.want, r.stderr)
		}
	}
}

// 4. A signal sent to vzfs reaches the program; what the program left
// running is killed when it ends, and nothing remains.
func TestRunSignals(t *testing.T) {
	requireFUSE(t)
	s := runSpecFor(t)
	dir := t.TempDir()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		name := map[syscall.Signal]string{syscall.SIGTERM: "TERM", syscall.SIGINT: "INT", syscall.SIGHUP: "HUP"}[sig]
		marker, ready := filepath.Join(dir, name+".marker"), filepath.Join(dir, name+".ready")
		// A background sleep with a unique argument stands for what a
		// program leaves running.
		token := strconv.FormatInt(1000000+time.Now().UnixNano()%1000000, 10)
		script := fmt.Sprintf(`sleep %s & trap 'echo got-%s > %s; exit 42' %s; touch %s; while :; do sleep 0.05; done`,
			token, name, marker, name, ready)
		cmd := exec.Command(vzfsBin, "run", "--bind", dir, s, "--", "sh", "-c", script)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		runWaitFile(t, ready)
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 42 {
			t.Errorf("SIG%s: vzfs ended with %v, want exit 42 from the trap\n%s", name, err, errb.String())
		}
		if b, err := os.ReadFile(marker); err != nil || string(b) != "got-"+name+"\n" {
			t.Errorf("SIG%s: marker %q, %v: the program did not get the signal", name, b, err)
		}
		runNothingLeft(t, token)
	}
}

// 4. SIGKILL to vzfs takes the whole sandbox down with it.
func TestRunKilled(t *testing.T) {
	requireFUSE(t)
	s := runSpecFor(t)
	dir := t.TempDir()
	token := strconv.FormatInt(2000000+time.Now().UnixNano()%1000000, 10)
	cmd := exec.Command(vzfsBin, "run", "--bind", dir, s, "--", "sh", "-c",
		fmt.Sprintf("sleep %s & touch %s/ready; wait", token, dir))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	runWaitFile(t, filepath.Join(dir, "ready"))
	if len(runProcs(token)) == 0 {
		t.Fatal("the sandboxed sleep is not running; the test would prove nothing")
	}
	// The sandbox's mounts live in its own namespace: the host never
	// sees them, even while it runs.
	if m := runMounts(t); len(m) != 0 {
		t.Errorf("the host sees the sandbox's mounts: %q", m)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	runNothingLeft(t, token)
}

// 5. --user: the kernel applies host permissions to the user; root reads
// what the user cannot.
func TestRunUser(t *testing.T) {
	requireFUSE(t)
	dir := runHostDir(t)
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "top secret\n", 0o600)
	s := runSpecFor(t, secret)

	r := runSandbox(t, nil, "run", s, "--", "cat", secret)
	if r.code != 0 || r.stdout != "top secret\n" {
		t.Errorf("as root: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	r = runSandbox(t, nil, "run", "--user", "65534", s, "--", "cat", secret)
	if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("as 65534: exit %d, %q, %q; want permission denied", r.code, r.stdout, r.stderr)
	}
	r = runSandbox(t, nil, "run", "--user", "65534", s, "--", "id", "-u")
	if r.code != 0 || r.stdout != "65534\n" {
		t.Errorf("id -u as 65534: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	// No supplementary groups leak from root.
	r = runSandbox(t, nil, "run", "--user", "1234:4321", s, "--", "id", "-G")
	if r.code != 0 || r.stdout != "4321\n" {
		t.Errorf("id -G as 1234:4321: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
}

// --bind: read-write by default, :ro refused, destinations the spec lacks
// appear, files bind too; --workdir starts there.
func TestRunBinds(t *testing.T) {
	requireFUSE(t)
	s := runSpecFor(t)
	rw, ro := t.TempDir(), runHostDir(t)
	writeFile(t, filepath.Join(ro, "data"), "keep\n", 0o644)
	file := filepath.Join(t.TempDir(), "one")
	writeFile(t, file, "one file\n", 0o644)
	r := runSandbox(t, nil, "run", "--bind", rw, "--bind", ro+":/data:ro", "--bind", file+":/tmp/one",
		"--workdir", "/data", s, "--", "sh", "-c", fmt.Sprintf(`
			pwd; cat data /tmp/one
			echo written > %s/out && echo rw-ok
			echo lost > data 2>/dev/null || echo ro-refused
			touch new 2>/dev/null || echo ro-create-refused`, rw))
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := "/data\nkeep\none file\nrw-ok\nro-refused\nro-create-refused\n"
	if r.stdout != want {
		t.Errorf("got\n%s\nwant\n%s", r.stdout, want)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "out")); err != nil || string(b) != "written\n" {
		t.Errorf("rw bind: host sees %q, %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(ro, "data")); string(b) != "keep\n" {
		t.Errorf("ro bind: host file changed to %q", b)
	}
	if _, err := os.Stat(filepath.Join(ro, "new")); err == nil {
		t.Errorf("ro bind: a file was created on the host")
	}
	// A relative command runs from the workdir.
	writeFile(t, filepath.Join(rw, "hello.sh"), "#!/bin/sh\necho hello from $(pwd)\n", 0o755)
	r = runSandbox(t, nil, "run", "--bind", rw, "--workdir", rw, s, "--", "./hello.sh")
	if r.code != 0 || r.stdout != "hello from "+rw+"\n" {
		t.Errorf("./hello.sh in --workdir: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
}

// The environment is clean unless --keep-env; --env adds to it.
func TestRunEnv(t *testing.T) {
	requireFUSE(t)
	s := runSpecFor(t)
	host := []string{"TERM=vt100", "LANG=C.UTF-8", "VZFS_SECRET=leak", "HOSTVAR=from-host"}
	r := runSandbox(t, host, "run", "--env", "FOO=bar", "--env", "HOSTVAR", "--env", "UNSET_VZFS_VAR", s, "--", "env")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	got := strings.Split(strings.TrimSpace(r.stdout), "\n")
	sort.Strings(got)
	want := []string{"FOO=bar", "HOME=/root", "HOSTVAR=from-host", "LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=vt100"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("env:\n%q\nwant\n%q", got, want)
	}
	r = runSandbox(t, host, "run", "--keep-env", "--env", "FOO=bar", s, "--", "env")
	if r.code != 0 || !strings.Contains(r.stdout, "VZFS_SECRET=leak\n") || !strings.Contains(r.stdout, "FOO=bar\n") {
		t.Errorf("--keep-env: exit %d\n%s", r.code, r.stdout)
	}
}

// Errors: exit 2 (or 127 for a missing command) with one error line,
// nothing run, nothing left.
func TestRunErrors(t *testing.T) {
	requireFUSE(t)
	s := runSpecFor(t)
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.spec")
	writeFile(t, broken, "/bin/sh\nrelative/path\n", 0o644)
	missing := filepath.Join(dir, "missing.spec")
	writeFile(t, missing, "/bin/sh\n/nonexistent/vzfs-run-test\n", 0o644)
	marker := filepath.Join(dir, "ran")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"missing spec", []string{"run", filepath.Join(dir, "none.spec"), "--", "touch", marker}, 2, "none.spec: no such file or directory"},
		{"missing bind source", []string{"run", "--bind", filepath.Join(dir, "gone"), s, "--", "touch", marker}, 2, "bind source " + filepath.Join(dir, "gone")},
		{"bad bind", []string{"run", "--bind", "/x:/proc/x", s, "--", "touch", marker}, 2, "--bind"},
		{"bad user", []string{"run", "--user", "nobody", s, "--", "touch", marker}, 2, "--user"},
		{"spec syntax", []string{"run", broken, "--", "touch", marker}, 2, "broken.spec:2"},
		{"spec entry missing on host", []string{"run", missing, "--", "touch", marker}, 2, "/nonexistent/vzfs-run-test"},
		{"workdir not in sandbox", []string{"run", "--workdir", "/nowhere", s, "--", "touch", marker}, 2, "--workdir /nowhere"},
		{"no command", []string{"run", s, "--"}, 2, "no COMMAND"},
		{"command not in spec", []string{"run", s, "--", "python3"}, 127, "python3: not found"},
	} {
		r := runSandbox(t, nil, tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != tc.code || !strings.HasPrefix(lines[0], "vzfs: error: ") || !strings.Contains(lines[0], tc.msg) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.name, r.code, r.stderr, tc.code, tc.msg)
		}
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "vzfs: hint: ") {
				t.Errorf("%s: extra stderr line %q", tc.name, l)
			}
		}
		if r.stdout != "" {
			t.Errorf("%s: stdout %q", tc.name, r.stdout)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s: the command ran", tc.name)
		}
	}
}

// As non-root, vzfs run refuses at once with a hint to use sudo.
func TestRunNotRoot(t *testing.T) {
	requireRoot(t)
	dir := runHostDir(t)
	bin := filepath.Join(dir, "vzfs")
	in, err := os.Open(vzfsBin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(out, in)
	in.Close()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	s := filepath.Join(dir, "x.spec")
	writeFile(t, s, "/bin/sh\n", 0o644)
	cmd := exec.Command(bin, "run", s, "--", "sh", "-c", "true")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(errb.String(), "needs root") || !strings.Contains(errb.String(), "sudo") {
		t.Errorf("as 65534: %v\n%s", err, errb.String())
	}
}

// runSpecTools writes a spec of runTools plus tools (vzfs ldd).
func runSpecTools(t *testing.T, tools ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run.spec")
	r := runVzfs(t, append(append([]string{"ldd", "-o", out}, runTools...), tools...)...)
	if r.code != 0 {
		t.Fatalf("vzfs ldd: exit %d\n%s", r.code, r.stderr)
	}
	return out
}

// runEuidProgram builds a static program that prints its effective uid,
// setuid root, in dir.
func runEuidProgram(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "euid.c")
	writeFile(t, src, "#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf(\"%d\\n\", (int)geteuid()); return 0; }\n", 0o644)
	bin := filepath.Join(dir, "euid")
	if r := runCmd(t, nil, "gcc", "-static", "-O", "-o", bin, src); r.code != 0 {
		t.Fatalf("gcc -static (libc6-dev): exit %d\n%s", r.code, r.stderr)
	}
	if err := os.Chown(bin, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(bin, 0o4755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// --bind mounts are nosuid and nodev like the view, read-write or
// read-only, unless --suid (or --dev) lifts that.
func TestRunBindNosuid(t *testing.T) {
	requireFUSE(t)
	dir := runHostDir(t)
	bin := runEuidProgram(t, dir)
	// The control: on the host the program does run as root, so the
	// sandbox's 65534 below is the sandbox's doing.
	cmd := exec.Command(bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	if out, err := cmd.Output(); err != nil || string(out) != "0\n" {
		t.Fatalf("setuid program on the host as 65534: %q, %v; want euid 0", out, err)
	}
	s := runSpecFor(t)
	args := []string{"--user", "65534", "--bind", dir + ":/opt/rw", "--bind", dir + ":/opt/ro:ro", s, "--", "sh", "-c", "/opt/rw/euid; /opt/ro/euid"}
	r := runSandbox(t, nil, append([]string{"run"}, args...)...)
	if r.code != 0 || r.stdout != "65534\n65534\n" {
		t.Errorf("setuid root binary in rw and ro binds, as 65534: exit %d, %q, %q; want euid 65534 twice", r.code, r.stdout, r.stderr)
	}
	r = runSandbox(t, nil, append([]string{"run", "--suid"}, args...)...)
	if r.code != 0 || r.stdout != "0\n0\n" {
		t.Errorf("with --suid: exit %d, %q, %q; want euid 0 twice", r.code, r.stdout, r.stderr)
	}
	// nodev too: a device node in a bind does not open.
	if err := syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, int(1<<8|3)); err != nil {
		t.Fatal(err)
	}
	r = runSandbox(t, nil, "run", "--bind", dir+":/opt/rw", s, "--", "sh", "-c", "echo x > /opt/rw/null && echo opened")
	if r.code == 0 || strings.Contains(r.stdout, "opened") || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("device node in a bind: exit %d, %q, %q; want permission denied", r.code, r.stdout, r.stderr)
	}
	r = runSandbox(t, nil, "run", "--dev", "--bind", dir+":/opt/rw", s, "--", "sh", "-c", "echo x > /opt/rw/null && echo opened")
	if r.code != 0 || r.stdout != "opened\n" {
		t.Errorf("device node in a bind with --dev: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
}

// runDroppedCaps are the bits of the capabilities vzfs run must drop by default.
const runDroppedCaps = 1<<18 | 1<<21 | 1<<19 | 1<<16 | 1<<17 | 1<<2 | 1<<27 | 1<<22 // SYS_CHROOT, SYS_ADMIN, SYS_PTRACE, SYS_MODULE, SYS_RAWIO, DAC_READ_SEARCH, MKNOD, SYS_BOOT

// runCaps parses the Cap* lines of a /proc/PID/status.
func runCaps(t *testing.T, status string) map[string]uint64 {
	t.Helper()
	caps := map[string]uint64{}
	for _, l := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(l, ":\t")
		if !ok || !strings.HasPrefix(k, "Cap") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		caps[k] = n
	}
	if len(caps) < 4 {
		t.Fatalf("no capability lines in:\n%s", status)
	}
	return caps
}

// Root inside the sandbox cannot reach the host: the double-chroot escape
// and /proc/1/root (the init's root is the host's) both fail, since the
// command has its own mount namespace rooted at the view (pivot_root), has
// lost CAP_SYS_CHROOT, CAP_SYS_PTRACE, CAP_SYS_ADMIN and others, and the
// init is not dumpable. Root still reads what DAC_OVERRIDE allows.
func TestRunEscape(t *testing.T) {
	requireFUSE(t)
	host := runHostDir(t)
	marker := filepath.Join(host, "HOSTONLY")
	if err := os.Mkdir(marker, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(marker, "secret"), "host secret\n", 0o644)
	// A file only DAC_OVERRIDE lets root read: owned by someone else, 0600.
	other := filepath.Join(host, "other")
	writeFile(t, other, "theirs\n", 0o600)
	if err := os.Chown(other, 1234, 1234); err != nil {
		t.Fatal(err)
	}
	s := runSpecTools(t, "perl")
	f, err := os.OpenFile(s, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, other)
	f.Close()

	chroot := fmt.Sprintf(`mkdir "/tmp/x"; chroot "/tmp/x" or die "chroot: $!\n"; chdir ".." for 1..30; chroot "." or die "chroot2: $!\n"; opendir D, %q or die "opendir: $!\n"; print "ESCAPED: ", join(" ", readdir D), "\n"`, marker)
	proc := "cat /proc/1/root" + marker + "/secret"
	for _, keep := range []bool{false, true} {
		args := []string{"run"}
		if keep {
			args = append(args, "--keep-caps")
		}
		args = append(args, s, "--")
		r := runSandbox(t, nil, append(args, "perl", "-e", chroot)...)
		if r.code == 0 || strings.Contains(r.stdout, "ESCAPED") {
			t.Errorf("keep-caps=%v: double chroot reached the host: exit %d, %q, %q", keep, r.code, r.stdout, r.stderr)
		}
		r = runSandbox(t, nil, append(args, "sh", "-c", proc)...)
		if keep {
			// The control: with all capabilities root can ptrace the
			// init, and the test above would see the host this way.
			if r.code != 0 || r.stdout != "host secret\n" {
				t.Errorf("--keep-caps: %s: exit %d, %q, %q; want the host's file (CAP_SYS_PTRACE kept)", proc, r.code, r.stdout, r.stderr)
			}
		} else if r.code == 0 || strings.Contains(r.stdout, "host secret") {
			t.Errorf("%s reached the host: exit %d, %q, %q", proc, r.code, r.stdout, r.stderr)
		}
		r = runSandbox(t, nil, append(args, "sh", "-c", "cat "+other+"; cat /proc/self/status")...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "theirs\n") {
			t.Fatalf("keep-caps=%v: root cannot read a 0600 file of uid 1234: exit %d, %q, %q", keep, r.code, r.stdout, r.stderr)
		}
		caps := runCaps(t, r.stdout)
		for _, k := range []string{"CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"} {
			if keep {
				if k == "CapBnd" && caps[k]&runDroppedCaps != runDroppedCaps {
					t.Errorf("--keep-caps: %s %x lacks some of %x", k, caps[k], runDroppedCaps)
				}
				continue
			}
			if caps[k]&runDroppedCaps != 0 {
				t.Errorf("%s %x keeps %x", k, caps[k], caps[k]&runDroppedCaps)
			}
		}
	}
	// --user still works, with no capabilities at all.
	r := runSandbox(t, nil, "run", "--user", "65534", s, "--", "sh", "-c", "id -u; cat /proc/self/status")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "65534\n") {
		t.Fatalf("--user 65534: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if caps := runCaps(t, r.stdout); caps["CapEff"] != 0 || caps["CapPrm"] != 0 || caps["CapBnd"]&runDroppedCaps != 0 {
		t.Errorf("--user 65534: capabilities %x", caps)
	}
}

// Spec entries below the sandbox's own /tmp, /run, /dev, /proc and /sys
// are covered by its fresh mounts; vzfs run says so, naming them.
func TestRunHiddenWarning(t *testing.T) {
	requireFUSE(t)
	hidden := filepath.Join(t.TempDir(), "hidden-entry")
	if !strings.HasPrefix(hidden, "/tmp/") {
		t.Fatalf("%s is not below /tmp; the test needs it there", hidden)
	}
	writeFile(t, hidden, "covered\n", 0o644)
	s := runSpecFor(t, hidden)
	r := runSandbox(t, nil, "run", s, "--", "sh", "-c", "cat "+hidden+" 2>/dev/null || echo invisible")
	if r.code != 0 || r.stdout != "invisible\n" {
		t.Errorf("exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "WARN") || !strings.Contains(r.stderr, hidden) || !strings.Contains(r.stderr, "hidden") {
		t.Errorf("no warning naming %s:\n%s", hidden, r.stderr)
	}
	// An entry elsewhere draws no such warning.
	r = runSandbox(t, nil, "run", runSpecFor(t), "--", "sh", "-c", "true")
	if r.code != 0 || strings.Contains(r.stderr, "hidden") {
		t.Errorf("spec without a hidden entry: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = runVzfs(t, "run", "--help")
	if !strings.Contains(r.stdout, "mounts hide whatever the spec lists") {
		t.Errorf("run --help does not say what the sandbox's mounts hide:\n%s", r.stdout)
	}
}
