package integration

// Hostile input (issue 7): hand-made malicious ELF files, hostile specs and
// --root trees whose symlinks point outside the root. Each must give a
// clear error naming the file, in bounded time and memory, and never read
// outside the root it was given.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostileELF describes a little-endian x86-64 ET_DYN file for hostileBuild.
// The file is mapped by one PT_LOAD at vaddr 0 covering it (loadSize, if
// set, claims more), so a virtual address is a file offset.
type hostileELF struct {
	interp   string   // PT_INTERP, if any
	needed   []string // DT_NEEDED names
	runpath  string   // DT_RUNPATH, if any
	dynSize  uint64   // PT_DYNAMIC p_filesz claim; 0 means the real size
	strtab   uint64   // DT_STRTAB override; 0 means the real address
	loadSize uint64   // PT_LOAD p_filesz/p_memsz claim; 0 means the file
	noNull   bool     // leave DT_NULL out of the dynamic section
}

// hostileBuild lays out the ELF header, three program headers, the
// interpreter string, the dynamic section and the string table.
func hostileBuild(e hostileELF) []byte {
	const ehsize, phentsize, phnum = 64, 56, 3
	le := binary.LittleEndian
	var strtab bytes.Buffer
	strtab.WriteByte(0)
	addStr := func(s string) uint64 {
		off := uint64(strtab.Len())
		strtab.WriteString(s)
		strtab.WriteByte(0)
		return off
	}
	type dynEnt struct{ tag, val uint64 }
	var dyn []dynEnt
	for _, n := range e.needed {
		dyn = append(dyn, dynEnt{1, addStr(n)}) // DT_NEEDED
	}
	if e.runpath != "" {
		dyn = append(dyn, dynEnt{29, addStr(e.runpath)}) // DT_RUNPATH
	}
	interpOff := uint64(ehsize + phentsize*phnum)
	interpLen := uint64(0)
	if e.interp != "" {
		interpLen = uint64(len(e.interp) + 1)
	}
	dynOff := (interpOff + interpLen + 7) &^ 7
	nDyn := uint64(len(dyn) + 2) // + DT_STRTAB, DT_STRSZ
	if !e.noNull {
		nDyn++
	}
	strOff := dynOff + nDyn*16
	size := strOff + uint64(strtab.Len())
	st := strOff
	if e.strtab != 0 {
		st = e.strtab
	}
	dyn = append(dyn, dynEnt{5, st}, dynEnt{10, uint64(strtab.Len())}) // DT_STRTAB, DT_STRSZ
	if !e.noNull {
		dyn = append(dyn, dynEnt{0, 0})
	}

	b := make([]byte, size)
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], 3)  // ET_DYN
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[32:], ehsize) // e_phoff
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phentsize)
	le.PutUint16(b[56:], phnum)
	ph := func(i int, typ uint32, off, filesz uint64) {
		p := b[ehsize+i*phentsize:]
		le.PutUint32(p, typ)
		le.PutUint32(p[4:], 4) // PF_R
		le.PutUint64(p[8:], off)
		le.PutUint64(p[16:], off) // vaddr
		le.PutUint64(p[24:], off) // paddr
		le.PutUint64(p[32:], filesz)
		le.PutUint64(p[40:], filesz)
		le.PutUint64(p[48:], 8)
	}
	load := size
	if e.loadSize != 0 {
		load = e.loadSize
	}
	ph(0, 1, 0, load) // PT_LOAD
	if e.interp != "" {
		ph(1, 3, interpOff, interpLen) // PT_INTERP
		copy(b[interpOff:], e.interp)
	} else {
		ph(1, 4, 0, 0) // PT_NOTE, empty
	}
	ds := uint64(len(dyn)) * 16
	if e.dynSize != 0 {
		ds = e.dynSize
	}
	ph(2, 2, dynOff, ds) // PT_DYNAMIC
	for i, d := range dyn {
		le.PutUint64(b[dynOff+uint64(i)*16:], d.tag)
		le.PutUint64(b[dynOff+uint64(i)*16+8:], d.val)
	}
	copy(b[strOff:], strtab.Bytes())
	return b
}

// hostileRun is one bounded run of the vzfs binary under /usr/bin/time.
type hostileRun struct {
	result
	maxRSS  uint64 // bytes
	elapsed time.Duration
}

var hostileMaxRSSRe = regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`)

// hostileVzfs runs vzfs with args under `/usr/bin/time -v` and a timeout;
// a run that outlives the timeout fails the test (it would be a hang).
func hostileVzfs(t *testing.T, timeout time.Duration, args ...string) hostileRun {
	t.Helper()
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		t.Fatal("/usr/bin/time is missing (apt-get install time)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tf := filepath.Join(t.TempDir(), "time.out")
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-v", "-o", tf, vzfsBin}, args...)...)
	// On timeout, kill the whole group: time(1), vzfs and a daemon vzfs
	// forked, which would otherwise hold the output pipes open forever.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	_ = cmd.Run()
	r := hostileRun{result: result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}, elapsed: time.Since(start)}
	if ctx.Err() == context.DeadlineExceeded {
		t.Fatalf("vzfs %s: still running after %v", strings.Join(args, " "), timeout)
	}
	tb, _ := os.ReadFile(tf)
	if m := hostileMaxRSSRe.FindSubmatch(tb); m != nil {
		kb, _ := strconv.ParseUint(string(m[1]), 10, 64)
		r.maxRSS = kb << 10
	}
	// time(1) reports the child's death by a signal in its exit status.
	if bytes.Contains(tb, []byte("Command terminated by signal")) {
		r.code = -1
	}
	return r
}

// hostileNoCrash fails on a panic or a death by signal.
func hostileNoCrash(t *testing.T, what string, r hostileRun) {
	t.Helper()
	if r.code < 0 || r.code > 2 || strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Errorf("%s crashed: exit %d\n%s", what, r.code, r.stderr)
	}
}

// TestHostileELF: malicious ELF files, each in bounded time (10 s) and
// memory (64 MiB of RSS for the whole vzfs process), never a crash:
//
//   - as a library another program needs, a malformed file stops the
//     resolution with an error (exit 1) naming the file and the problem, as
//     it stops ld.so;
//   - given directly as a FILE, a file that is not a loadable ELF is
//     included as itself (vzfs ldd's documented rule for plain files) with
//     a warning naming it and the bad byte;
//   - a PT_DYNAMIC claiming 4 GiB is read only as far as the file goes
//     (ld.so ignores p_filesz and stops at DT_NULL too), and
//     self-referencing or cyclic interpreters and libraries end with each
//     object once: the kernel never loads an interpreter's interpreter.
func TestHostileELF(t *testing.T) {
	dir := t.TempDir()
	self := func(name string) string { return filepath.Join(dir, name) }
	loop := make([]string, 10000)
	for i := range loop {
		loop[i] = "libhostile.so"
	}
	malformed := []struct {
		name string
		elf  hostileELF
		want string // the problem, as the error must say it
	}{
		{"needed-loop", hostileELF{needed: loop}, "more than 4096 DT_NEEDED entries"},
		{"strtab-unmapped", hostileELF{needed: []string{"libc.so.6"}, strtab: 0x7fff_0000_0000}, "DT_STRTAB address 0x7fff00000000 is in no PT_LOAD segment"},
		{"strtab-past-eof", hostileELF{needed: []string{"libc.so.6"}, strtab: 256 << 20, loadSize: 1 << 30}, "outside the file"},
	}
	base := hostileVzfs(t, 10*time.Second, "ldd", "/usr/bin/true")
	if base.code != 0 {
		t.Fatalf("vzfs ldd /usr/bin/true: exit %d %s", base.code, base.stderr)
	}
	const memLimit = 64 << 20
	bounded := func(t *testing.T, what string, r hostileRun) {
		t.Helper()
		t.Logf("%s: exit %d in %v, max RSS %d KiB (ldd /usr/bin/true: %d KiB)",
			what, r.code, r.elapsed.Round(time.Millisecond), r.maxRSS>>10, base.maxRSS>>10)
		hostileNoCrash(t, what, r)
		if r.maxRSS == 0 || r.maxRSS > memLimit {
			t.Errorf("%s: max RSS %d bytes, want (0, %d]", what, r.maxRSS, memLimit)
		}
	}
	for _, c := range malformed {
		t.Run(c.name, func(t *testing.T) {
			// As a library: libhostile.so, found through $ORIGIN.
			lib := filepath.Join(dir, c.name, "libhostile.so")
			writeFile(t, lib, string(hostileBuild(c.elf)), 0o755)
			prog := filepath.Join(dir, c.name, "prog")
			writeFile(t, prog, string(hostileBuild(hostileELF{needed: []string{"libhostile.so"}, runpath: "$ORIGIN"})), 0o755)
			r := hostileVzfs(t, 10*time.Second, "ldd", prog)
			bounded(t, "as a library", r)
			if r.code != 1 || !strings.Contains(r.stderr, lib) || !strings.Contains(r.stderr, c.want) {
				t.Errorf("as a library: exit %d, want 1 with an error naming %s and %q:\n%s", r.code, lib, c.want, r.stderr)
			}
			// As the program itself.
			r = hostileVzfs(t, 10*time.Second, "ldd", lib)
			bounded(t, "as FILE", r)
			if !strings.Contains(r.stderr, lib) || !strings.Contains(r.stderr, c.want) {
				t.Errorf("as FILE: exit %d, stderr does not name %s and %q:\n%s", r.code, lib, c.want, r.stderr)
			}
			if r.code == 0 && !strings.Contains(r.stdout, lib+"\n") {
				t.Errorf("as FILE: exit 0 but the spec lacks the file itself:\n%s", r.stdout)
			}
		})
	}

	t.Run("dyn-4g", func(t *testing.T) {
		p := self("dyn-4g")
		writeFile(t, p, string(hostileBuild(hostileELF{needed: []string{"libc.so.6"}, dynSize: 4 << 30, noNull: true})), 0o755)
		r := hostileVzfs(t, 10*time.Second, "ldd", p)
		bounded(t, "dyn-4g", r)
		if r.code != 0 || !strings.Contains(r.stdout, "/libc.so.6\n") || !strings.Contains(r.stdout, p+"\n") {
			t.Errorf("dyn-4g: exit %d, want the file and libc:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})

	// Interpreter and library cycles: both objects, once each.
	writeFile(t, self("interp-self"), string(hostileBuild(hostileELF{interp: self("interp-self")})), 0o755)
	writeFile(t, self("interp-a"), string(hostileBuild(hostileELF{interp: self("interp-b")})), 0o755)
	writeFile(t, self("interp-b"), string(hostileBuild(hostileELF{interp: self("interp-a")})), 0o755)
	writeFile(t, self("libcyc-a.so"), string(hostileBuild(hostileELF{needed: []string{"libcyc-b.so"}, runpath: "$ORIGIN"})), 0o755)
	writeFile(t, self("libcyc-b.so"), string(hostileBuild(hostileELF{needed: []string{"libcyc-a.so"}, runpath: "$ORIGIN"})), 0o755)
	for _, c := range []struct {
		name, start string
		want        []string
	}{
		{"interp-self", "interp-self", []string{"interp-self"}},
		{"interp-cycle", "interp-a", []string{"interp-a", "interp-b"}},
		{"library-cycle", "libcyc-a.so", []string{"libcyc-a.so", "libcyc-b.so"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := hostileVzfs(t, 10*time.Second, "ldd", self(c.start))
			bounded(t, c.name, r)
			if r.code != 0 {
				t.Errorf("exit %d: %s", r.code, r.stderr)
			}
			for _, w := range c.want {
				if n := strings.Count(r.stdout, self(w)+"\n"); n != 1 {
					t.Errorf("%s listed %d times, want once:\n%s", w, n, r.stdout)
				}
			}
		})
	}
}

// TestHostileSpecs: hostile spec files give a clear error naming the file
// and line (exit 2), never a hang, for each command that reads a spec.
// A spec on a FIFO is TestHostileSpecFIFO, symlink loops are
// TestHostileSymlinkLoops.
func TestHostileSpecs(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mk := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content, 0o644)
		return p
	}
	elf, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, spec string
		want       []string // in stderr besides the spec's name
		wantLine   bool     // the error gives the spec's file:line
	}{
		{"10 MB line", mk("long.spec", "/usr/bin/true\n/"+strings.Repeat("a", 10<<20)+"\n"), []string{"longer than"}, true},
		{"10 MB line, no newline", mk("long-nonl.spec", "/"+strings.Repeat("a", 10<<20)), []string{"longer than"}, true},
		{"binary file", mk("binary.spec", string(elf)), nil, true},
		{"NUL bytes", mk("nul.spec", "/usr/bin/true\n/usr/\x00bin\n"), nil, true},
		{".. escape", mk("dotdot.spec", "/usr/bin/true\n/usr/../etc/shadow\n"), []string{".."}, true},
		{"relative .. escape", mk("rel.spec", "../../etc/shadow\n"), nil, true},
		{"quoted .. escape", mk("quoted.spec", "\"/usr/../etc/shadow\"\n"), []string{".."}, true},
	}
	mnt := t.TempDir()
	for _, c := range cases {
		for _, cmd := range [][]string{
			{"mount", c.spec, mnt},
			{"freeze", "--no-resolve", c.spec, filepath.Join(dir, "out")},
			{"freeze", "--tar", filepath.Join(dir, "out.tar"), c.spec},
		} {
			what := c.name + ": vzfs " + cmd[0]
			r := hostileVzfs(t, 30*time.Second, cmd...)
			hostileNoCrash(t, what, r)
			if r.code == 0 {
				t.Errorf("%s succeeded, want an error", what)
				if cmd[0] == "mount" {
					_ = unix.Unmount(mnt, unix.MNT_DETACH)
				}
				continue
			}
			want := append([]string{c.spec}, c.want...)
			if c.wantLine {
				want[0] = c.spec + ":"
			}
			for _, w := range want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("%s: stderr lacks %q:\n%.500s", what, w, r.stderr)
				}
			}
			if n := strings.Count(r.stderr, "vzfs: error:"); n != 1 {
				t.Errorf("%s: %d error lines, want 1:\n%.500s", what, n, r.stderr)
			}
			if len(r.stderr) > 64<<10 {
				t.Errorf("%s: %d bytes of stderr: the bad line is echoed whole", what, len(r.stderr))
			}
			for _, out := range []string{filepath.Join(dir, "out"), filepath.Join(dir, "out.tar")} {
				if _, err := os.Lstat(out); err == nil {
					t.Errorf("%s left %s", what, out)
					_ = os.RemoveAll(out)
				}
			}
		}
	}
}

// TestHostileSpecFIFO: a spec on a FIFO is refused at once, never a hang: exit 2
// for mount and freeze (exit 1 for ldd --append -o, an output error), the
// error naming the file and saying it is not a regular file. open(2) of a
// FIFO blocks until a writer comes, unless O_NONBLOCK: the test catches a
// reader of specs that forgets it.
func TestHostileSpecFIFO(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "spec.fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// A command stuck in open(2) on the FIFO (the mount daemon is in its
	// own session, out of reach of the timeout's kill) is released by a
	// writer that opens and closes the FIFO: it then reads EOF.
	t.Cleanup(func() {
		for i := 0; i < 10; i++ {
			fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK, 0)
			if err != nil {
				return // ENXIO: no reader left
			}
			unix.Close(fd)
			time.Sleep(100 * time.Millisecond)
		}
	})
	for _, cmd := range [][]string{
		{"mount", fifo, t.TempDir()},
		{"freeze", "--no-resolve", fifo, filepath.Join(dir, "out")},
		{"freeze", "--tar", filepath.Join(dir, "out.tar"), fifo},
		{"ldd", "--append", "-o", fifo, "/usr/bin/true"},
	} {
		// hostileVzfs fails the test if the command outlives 10 s.
		r := hostileVzfs(t, 10*time.Second, cmd...)
		hostileNoCrash(t, "vzfs "+cmd[0], r)
		// ldd -o names an output, and exits 1 when it cannot write it.
		if r.code == 0 || cmd[0] != "ldd" && r.code != 2 || !strings.Contains(r.stderr, fifo) || !strings.Contains(r.stderr, "not a regular file") {
			t.Errorf("vzfs %v on a FIFO: exit %d, want 2 naming the file:\n%s", cmd, r.code, r.stderr)
		}
	}
}

// TestHostileSymlinkLoops: spec entries through a host symlink loop and a
// "/**" entry whose root is a looping symlink are valid specs (the host has
// those links), so they are not errors. The view and freeze must serve the
// loop as the host has it: the links verbatim, ELOOP to whoever follows
// them, in bounded time; the entry below the link is named in a warning.
func TestHostileSymlinkLoops(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	loops := filepath.Join(dir, "loops")
	if err := os.MkdirAll(loops, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"a", "b"}, {"b", "a"}, {"self", "self"}} {
		if err := os.Symlink(l[1], filepath.Join(loops, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	through := filepath.Join(loops, "a", "x")
	sp := filepath.Join(dir, "loops.spec")
	writeFile(t, sp, through+"\n"+filepath.Join(loops, "b")+"\n"+filepath.Join(loops, "self")+"/**\n", 0o644)

	logf := filepath.Join(dir, "mount.log")
	r := hostileVzfs(t, 30*time.Second, "mount", "--log-file", logf, sp, filepath.Join(dir, "mnt-missing"))
	if r.code != 2 {
		t.Fatalf("mount on a missing mountpoint: exit %d", r.code)
	}
	v := mountStart(t, sp, "--log-file", logf)
	for _, name := range []string{"a", "b", "self"} {
		p := filepath.Join(v.dir, loops, name)
		got, err := os.Readlink(p)
		want, _ := os.Readlink(filepath.Join(loops, name))
		if err != nil || got != want {
			t.Errorf("view: readlink %s = %q, %v; want %q", name, got, err, want)
		}
		if _, err := os.Stat(p); !errors.Is(err, unix.ELOOP) {
			t.Errorf("view: stat through %s: %v, want ELOOP", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(v.dir, through)); !errors.Is(err, unix.ELOOP) {
		t.Errorf("view: stat %s: %v, want ELOOP", through, err)
	}
	if b, _ := os.ReadFile(logf); !bytes.Contains(b, []byte(through)) {
		t.Errorf("mount log does not name %s:\n%s", through, b)
	}

	out := filepath.Join(dir, "out")
	r = hostileVzfs(t, 30*time.Second, "freeze", "--no-resolve", sp, out)
	hostileNoCrash(t, "freeze", r)
	if r.code != 0 || !strings.Contains(r.stderr, through) {
		t.Fatalf("freeze: exit %d, want 0 with a warning naming %s:\n%s", r.code, through, r.stderr)
	}
	for _, name := range []string{"a", "b", "self"} {
		got, err := os.Readlink(filepath.Join(out, loops, name))
		want, _ := os.Readlink(filepath.Join(loops, name))
		if err != nil || got != want {
			t.Errorf("freeze: readlink %s = %q, %v; want %q", name, got, err, want)
		}
	}
}

// hostileRootTree makes a --root tree whose symlinks all point outside it
// (../../.. chains and absolute targets naming host paths), beside a host
// directory "outside" whose files would be found if the root were escaped.
func hostileRootTree(t *testing.T) (root, outside string) {
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	// The program: a real dynamic binary, whose libraries the root only
	// reaches through links that climb out of it.
	for _, d := range []string{"usr/bin", "usr/lib", "etc", "lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "usr/bin/true"), string(bin), 0o755)
	writeFile(t, filepath.Join(outside, "libc.so.6"), "not a library", 0o644)
	links := map[string]string{
		"lib64":                 "../../../../../../../../lib64", // climbs out, relatively
		"usr/lib/libc.so.6":     "../../../../../../../../" + strings.TrimPrefix(outside, "/") + "/libc.so.6",
		"lib/x86_64-linux-gnu":  "/usr/lib/x86_64-linux-gnu",          // absolute host path
		"etc/ld.so.cache":       "/etc/ld.so.cache",                   // absolute, the host's cache
		"usr/bin/sh":            "/bin/sh",                            // absolute
		"usr/bin/escape":        filepath.Join(outside, "libc.so.6"),  // absolute to outside
		"usr/lib/dotdot-escape": "../../../" + filepath.Base(outside), // one level past the root
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	// A script whose interpreter climbs out too.
	writeFile(t, filepath.Join(root, "usr/bin/script"), "#!/../../../../usr/bin/python3\n", 0o755)
	return root, outside
}

// hostilePathRe pulls the quoted path arguments out of an strace line.
var hostilePathRe = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// TestHostileRootEscape: `vzfs ldd --root` on a tree whose symlinks point
// outside the root reads nothing outside it. strace -f records every file
// system call of vzfs; each path it names must be inside the root, relative
// to a descriptor opened inside it, or on a short allowlist of what any Go
// binary touches at start-up and exit.
func TestHostileRootEscape(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatal("strace is missing (apt-get install strace)")
	}
	root, outside := hostileRootTree(t)
	log := filepath.Join(t.TempDir(), "strace.log")
	args := []string{"-f", "-qq", "-e", "trace=%file,%desc", "-e", "signal=none", "-s", "4096", "-o", log,
		vzfsBin, "ldd", "--allow-missing", "--root", root,
		"/usr/bin/true", "/usr/bin/escape", "/usr/bin/sh", "/usr/bin/script", "/usr/lib/dotdot-escape/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	r := runCmd(t, nil, "strace", args...)
	t.Logf("vzfs ldd --root: exit %d\nspec:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	if r.code < 0 || r.code > 2 || strings.Contains(r.stderr, "panic") {
		t.Fatalf("vzfs ldd --root crashed: %d", r.code)
	}
	// Every spec path is as seen inside the root: none of the host's own.
	if strings.Contains(r.stdout, outside) || strings.Contains(r.stdout, root) {
		t.Errorf("spec names host paths:\n%s", r.stdout)
	}

	// Allowed outside the root, and why:
	allow := []*regexp.Regexp{
		// The Go runtime and standard library, before and beside any
		// resolving: the binary itself; /proc/self (cgroup, maps, exe);
		// the transparent huge page settings (runtime, at start); the
		// cgroup CPU quota (runtime, for GOMAXPROCS since Go 1.25);
		// /proc/sys/fs/pipe-max-size (os, sizing splice pipes);
		// /etc/localtime (time, for the logger's timestamps).
		regexp.MustCompile(`^` + regexp.QuoteMeta(vzfsBin) + `$`),
		regexp.MustCompile(`^/proc/self/`),
		regexp.MustCompile(`^/sys/kernel/mm/transparent_hugepage/`),
		regexp.MustCompile(`^/sys/fs/cgroup/`),
		regexp.MustCompile(`^/proc/sys/fs/pipe-max-size$`),
		regexp.MustCompile(`^/etc/localtime$`),
		// The dynamic loader of vzfs itself, if it was linked
		// dynamically (go build with cgo): ld.so.cache and libc.
		regexp.MustCompile(`^/etc/ld\.so\.(cache|preload)$`),
		regexp.MustCompile(`^/(usr/)?lib(64|/x86_64-linux-gnu)?/(ld-linux-x86-64\.so\.2|libc\.so\.6|libpthread\.so\.0|libresolv\.so\.2)$`),
		// Standard streams and the terminal, for the logger.
		regexp.MustCompile(`^/dev/(null|tty|pts/\d+)$`),
	}
	// Calls whose path arguments are not read: exec of vzfs, and the
	// *at calls are resolved below relative to their descriptor.
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var seen, inside int
	var bad []string
	for sc.Scan() {
		line := sc.Text()
		// pid name(args) = ret
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			continue
		}
		call := strings.TrimSpace(line[i+1:]) // strace pads short pids
		// A resumed call's quoted strings are its results (a link's
		// target, read data); its path was on the unfinished line.
		if strings.HasPrefix(call, "<...") {
			continue
		}
		name := call
		if j := strings.IndexByte(call, '('); j > 0 {
			name = call[:j]
		}
		if !hostileFileCalls[name] || (name == "execve" && strings.Contains(call, vzfsBin)) {
			continue
		}
		// The path is the first quoted argument; later ones are results
		// (readlinkat's buffer) or not paths.
		m := hostilePathRe.FindStringSubmatch(call)
		if m == nil {
			continue
		}
		p := m[1]
		if !strings.HasPrefix(p, "/") {
			// Relative to a descriptor (openat(fd, "name")): checked
			// through the descriptor by hostileRootEscapeFDs. Relative
			// to the cwd would be outside the root.
			if strings.Contains(call, "AT_FDCWD") || !strings.HasSuffix(name, "at") && !strings.HasSuffix(name, "at2") && name != "statx" {
				bad = append(bad, "relative to the cwd: "+line)
			}
			continue
		}
		seen++
		if p == root || strings.HasPrefix(p, root+"/") {
			inside++
			continue
		}
		ok := false
		for _, a := range allow {
			if a.MatchString(p) {
				ok = true
				break
			}
		}
		if !ok {
			bad = append(bad, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d absolute paths in file system calls, %d inside the root", seen, inside)
	if inside == 0 {
		t.Fatal("no access inside the root was traced: the trace proves nothing")
	}
	if len(bad) > 0 {
		if len(bad) > 30 {
			bad = bad[:30]
		}
		t.Fatalf("vzfs ldd --root touched paths outside the root:\n%s", strings.Join(bad, "\n"))
	}
	// Descriptors opened relative to others: the strace of a resolver that
	// walks with openat shows "openat(3</root/...>" only with -y; do that
	// pass too, so a relative open's directory is known.
	hostileRootEscapeFDs(t, root, allow, args)
}

// hostileFileCalls are the system calls whose first quoted argument is a
// path that is looked up.
var hostileFileCalls = map[string]bool{
	"open": true, "openat": true, "openat2": true, "creat": true,
	"stat": true, "lstat": true, "newfstatat": true, "fstatat64": true, "statx": true,
	"access": true, "faccessat": true, "faccessat2": true,
	"readlink": true, "readlinkat": true, "execve": true, "execveat": true,
	"chdir": true, "chroot": true, "statfs": true, "getxattr": true, "lgetxattr": true,
	"listxattr": true, "llistxattr": true, "truncate": true, "mkdir": true, "mkdirat": true,
	"unlink": true, "unlinkat": true, "rename": true, "renameat": true, "renameat2": true,
	"link": true, "linkat": true, "symlinkat": false, "mknodat": true, "utimensat": true,
	"fchmodat": true, "fchownat": true, "inotify_add_watch": true,
}

// hostileRootEscapeFDs reruns the trace with -y, which prints each
// descriptor argument with the path it names, and checks that every *at
// call's directory descriptor lies inside the root (or on the allowlist).
func hostileRootEscapeFDs(t *testing.T, root string, allow []*regexp.Regexp, args []string) {
	log := filepath.Join(t.TempDir(), "strace-y.log")
	a := append([]string{"-y"}, args...)
	for i := range a {
		if a[i] == "-o" {
			a[i+1] = log
		}
	}
	runCmd(t, nil, "strace", a...)
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	fdRe := regexp.MustCompile(`^[a-z0-9_]+at2?\((\d+)<([^>]*)>, "([^"]*)"`)
	var bad []string
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			continue
		}
		m := fdRe.FindStringSubmatch(strings.TrimSpace(line[i+1:]))
		if m == nil {
			continue
		}
		n++
		dir := m[2]
		if dir == root || strings.HasPrefix(dir, root+"/") {
			continue
		}
		// fstat of the descriptor itself (AT_EMPTY_PATH) reads no name;
		// /proc/PID is /proc/self as -y prints it.
		if m[3] == "" && strings.Contains(line, "AT_EMPTY_PATH") || regexp.MustCompile(`^/proc/\d+/`).MatchString(dir) {
			continue
		}
		ok := false
		for _, re := range allow {
			if re.MatchString(dir) {
				ok = true
			}
		}
		if !ok {
			bad = append(bad, line)
		}
	}
	t.Logf("%d *at calls relative to a descriptor", n)
	if len(bad) > 0 {
		t.Fatalf("*at calls relative to a directory outside the root:\n%s", strings.Join(bad[:min(len(bad), 30)], "\n"))
	}
}

// TestHostileMountDefaults: a view is mounted read-only, nosuid and nodev,
// with default_permissions, unless asked otherwise; a device node the spec
// lists cannot be opened through it (nodev), and --dev lifts that.
func TestHostileMountDefaults(t *testing.T) {
	requireFUSE(t)
	sp := filepath.Join(t.TempDir(), "dev.spec")
	writeFile(t, sp, "/dev/null\n/dev/zero\n", 0o644)
	opts := func(dir string) (mnt, super string) {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 10 && f[4] == dir {
				return f[5], f[len(f)-1]
			}
		}
		t.Fatalf("%s not in mountinfo", dir)
		return "", ""
	}
	v := mountStart(t, sp)
	mo, so := opts(v.dir)
	for _, o := range []string{"ro", "nosuid", "nodev"} {
		if !strings.Contains(","+mo+",", ","+o+",") {
			t.Errorf("mount options %q lack %s", mo, o)
		}
	}
	if !strings.Contains(so, "default_permissions") {
		t.Errorf("super options %q lack default_permissions", so)
	}
	if _, err := os.Open(filepath.Join(v.dir, "dev/null")); !errors.Is(err, unix.EACCES) {
		t.Errorf("opening /dev/null in a nodev view: %v, want EACCES", err)
	}

	v = mountStart(t, sp, "--dev")
	if mo, _ := opts(v.dir); strings.Contains(","+mo+",", ",nodev,") {
		t.Errorf("--dev: mount options %q still have nodev", mo)
	}
	f, err := os.Open(filepath.Join(v.dir, "dev/zero"))
	if err != nil {
		t.Fatalf("opening /dev/zero with --dev: %v", err)
	}
	b := make([]byte, 8)
	if n, err := f.Read(b); err != nil || n != 8 || !bytes.Equal(b, make([]byte, 8)) {
		t.Errorf("reading /dev/zero with --dev: %d %v %q", n, err, b)
	}
	f.Close()
}
