package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vzfs/vzfs/resolver"
)

// lddCandidates lists the oracle's inputs: ELF executables in /usr/bin and
// /usr/sbin and shared objects directly in the multiarch lib directory,
// one per real file.
func lddCandidates(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	add := func(p string, wantExec bool) {
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			return
		}
		fi, err := os.Stat(real)
		if err != nil || !fi.Mode().IsRegular() || (wantExec && fi.Mode()&0o111 == 0) {
			return
		}
		f, err := os.Open(real)
		if err != nil {
			return
		}
		var magic [4]byte
		_, err = f.ReadAt(magic[:], 0)
		f.Close()
		if err != nil || string(magic[:]) != "\x7fELF" {
			return
		}
		seen[real] = true
		out = append(out, p)
	}
	for _, d := range []string{"/usr/bin", "/usr/sbin"} {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			add(filepath.Join(d, e.Name()), true)
		}
	}
	libdir := "/usr/lib/x86_64-linux-gnu"
	ents, err := os.ReadDir(libdir)
	if err != nil {
		t.Fatal(err)
	}
	so := regexp.MustCompile(`\.so(\.[0-9.]+)?$`)
	for _, e := range ents {
		if so.MatchString(e.Name()) {
			add(filepath.Join(libdir, e.Name()), false)
		}
	}
	return out
}

var lddLine = regexp.MustCompile(`^\s*(?:(\S+) => )?(\S+|not found)(?: \(0x[0-9a-f]+\))?$`)

// lddOracle runs the system ldd on p and returns the real files it lists
// (vDSO dropped) and the names it did not find; ok is false when ldd
// fails or refuses the file.
func lddOracle(p string) (files, missing []string, ok bool) {
	// ldd expands $ORIGIN of the program from the path it is given, the
	// kernel and ld.so from the real file; give ldd the real file.
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	out, err := exec.Command("ldd", p).Output()
	if err != nil {
		return nil, nil, false
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "statically linked") {
			return nil, nil, true
		}
		m := lddLine.FindStringSubmatch(line)
		if m == nil {
			return nil, nil, false
		}
		name, target := m[1], m[2]
		if strings.HasPrefix(name, "linux-vdso") || strings.HasPrefix(target, "linux-vdso") {
			continue
		}
		if strings.HasSuffix(line, "=> not found") {
			missing = append(missing, name)
			continue
		}
		real, err := filepath.EvalSymlinks(target)
		if err != nil {
			return nil, nil, false
		}
		files = append(files, real)
	}
	return lddSorted(files), lddSorted(missing), true
}

func lddSorted(s []string) []string {
	sort.Strings(s)
	return slices.Compact(s)
}

// TestLddOracle compares vzfs's library closure with the system ldd's for
// every ELF executable and shared object on this machine.
func TestLddOracle(t *testing.T) {
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Fatal("ldd is needed for the oracle test: ", err)
	}
	files := lddCandidates(t)
	if len(files) < 100 {
		t.Fatalf("only %d ELF files found; the oracle needs a real system", len(files))
	}
	r, err := resolver.New(resolver.Options{With: []resolver.Extra{}})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		files, missing []string
		ok             bool
	}
	wants := make([]want, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f, m, ok := lddOracle(files[i])
				wants[i] = want{f, m, ok}
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()

	compared, skipped, mismatches := 0, 0, 0
	for i, p := range files {
		w := wants[i]
		if !w.ok {
			skipped++
			continue
		}
		compared++
		res, err := r.Resolve(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			mismatches++
			continue
		}
		self, _ := filepath.EvalSymlinks(p)
		var got []string
		for _, e := range res.Spec.Entries {
			real, err := filepath.EvalSymlinks(e.Path)
			if err != nil {
				t.Errorf("%s: entry %s: %v", p, e.Path, err)
				continue
			}
			if fi, err := os.Stat(real); err == nil && fi.Mode().IsRegular() && real != self {
				got = append(got, real)
			}
		}
		got = lddSorted(got)
		var gotMissing []string
		for _, m := range res.Missing {
			gotMissing = append(gotMissing, m.Name)
		}
		gotMissing = lddSorted(gotMissing)
		if !slices.Equal(got, w.files) || !slices.Equal(gotMissing, w.missing) {
			mismatches++
			if mismatches <= 20 {
				t.Errorf("%s:\n vzfs: %v missing %v\n ldd:  %v missing %v", p, got, gotMissing, w.files, w.missing)
			}
		}
	}
	t.Logf("ldd oracle: %d objects compared, %d skipped (ldd failed), %d mismatches", compared, skipped, mismatches)
	if mismatches != 0 {
		t.Fatalf("%d mismatches against ldd", mismatches)
	}
	if compared < 100 {
		t.Fatalf("only %d objects compared", compared)
	}
}

// lddSpec runs vzfs ldd -o into a temp file and returns its path.
func lddSpec(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.spec")
	r := runCmd(t, env, vzfsBin, append([]string{"ldd", "-o", out}, args...)...)
	if r.code != 0 {
		t.Fatalf("vzfs ldd %v: exit %d\n%s", args, r.code, r.stderr)
	}
	return out
}

func lddReadSpec(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLddScripts checks that #!/bin/sh and #!/usr/bin/env python3 scripts
// bring their interpreters, through the /bin -> usr/bin style links.
func TestLddScripts(t *testing.T) {
	dir := t.TempDir()
	sh := filepath.Join(dir, "a.sh")
	py := filepath.Join(dir, "a.py")
	writeFile(t, sh, "#!/bin/sh\necho ok\n", 0o755)
	writeFile(t, py, "#!/usr/bin/env python3\nprint(1)\n", 0o755)
	// PATH as a chroot would have it; the host's may hold pyenv shims.
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	got := lddReadSpec(t, lddSpec(t, env, "--with", "none", sh, py))
	real := func(p string) string {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, want := range []string{sh, py, "/bin", "/usr/bin/env", real("/bin/sh"), real("/usr/bin/python3"), "/lib64", "/usr/lib/x86_64-linux-gnu/libc.so.6"} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("spec lacks %s:\n%s", want, got)
		}
	}
}

// TestLddExitCodes checks usage errors (2), unresolved libraries (1) and
// --allow-missing (0), and that a failed run writes no -o file.
func TestLddExitCodes(t *testing.T) {
	if r := runVzfs(t, "ldd"); r.code != 2 {
		t.Errorf("no FILE: exit %d, want 2", r.code)
	}
	if r := runVzfs(t, "ldd", "--with", "bogus", "/usr/bin/ls"); r.code != 2 || !strings.Contains(r.stderr, "bogus") {
		t.Errorf("bad --with: exit %d %s", r.code, r.stderr)
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "exe")
	src := filepath.Join(dir, "m.c")
	writeFile(t, src, "int main(void){return 0;}\n", 0o644)
	if b, err := exec.Command("gcc", "-o", exe, src, "-Wl,-z,nodefaultlib").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	out := filepath.Join(dir, "x.spec")
	if r := runVzfs(t, "ldd", "-o", out, exe); r.code != 1 || !strings.Contains(r.stderr, "libc.so.6 needed by "+exe) {
		t.Errorf("unresolved: exit %d\n%s", r.code, r.stderr)
	}
	if r := runVzfs(t, "ldd", "--allow-missing", "--with", "none", exe); r.code != 0 || !strings.Contains(r.stdout, exe+"\n") {
		t.Errorf("--allow-missing: exit %d\n%s", r.code, r.stderr)
	}
	if r := runVzfs(t, "ldd", "--explain", "--with", "none", "ls"); r.code != 0 || !strings.Contains(r.stderr, "libpcre2-8.so.0 <- libselinux.so.1 <- /usr/bin/ls") {
		t.Errorf("--explain: exit %d\n%s", r.code, r.stderr)
	}
	// --append merges into an existing spec.
	writeFile(t, out, "/etc/hostname\n", 0o644)
	if r := runVzfs(t, "ldd", "-o", out, "--append", "--with", "none", "/usr/bin/true"); r.code != 0 {
		t.Fatalf("--append: exit %d\n%s", r.code, r.stderr)
	}
	if got := lddReadSpec(t, out); !strings.Contains(got, "/etc/hostname\n") || !strings.Contains(got, "/usr/bin/true\n") {
		t.Errorf("--append lost entries:\n%s", got)
	}
}

// TestLddChroot copies exactly the spec's entries into a directory and
// runs programs there with chroot; their output must equal the host's.
func TestLddChroot(t *testing.T) {
	requireRoot(t)
	perlLib := lddPerlDirs(t)
	args := []string{"/usr/bin/ls", "/bin/sh", "/usr/bin/python3", "/usr/lib/python3.11/**", "/usr/bin/perl"}
	for _, d := range perlLib {
		args = append(args, d+"/**")
	}
	specFile := lddSpec(t, []string{"PATH=/usr/bin:/bin"}, args...)
	root := t.TempDir()
	copySpec(t, specFile, root)
	// /dev is a mount point that a view or run provides (the spec holds the
	// empty directory); perl -e opens /dev/null.
	bindMount(t, "/dev", filepath.Join(root, "dev"))

	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var top []string
	for _, e := range ents {
		top = append(top, e.Name())
	}
	cases := []struct {
		argv []string
		want string
	}{
		{[]string{"/usr/bin/ls", "/"}, strings.Join(top, "\n") + "\n"},
		{[]string{"/bin/sh", "-c", "echo ok"}, "ok\n"},
		{[]string{"/usr/bin/python3", "-c", "import json; print(1)"}, "1\n"},
		{[]string{"/usr/bin/perl", "-e", "print 1"}, "1"},
	}
	for _, c := range cases {
		host := runCmd(t, nil, c.argv[0], c.argv[1:]...)
		r := chrootRun(t, root, c.argv...)
		if r.code != 0 || r.stdout != c.want {
			t.Errorf("chroot %v: exit %d, stdout %q, want %q\n%s", c.argv, r.code, r.stdout, c.want, r.stderr)
		}
		if c.argv[0] != "/usr/bin/ls" && host.stdout != r.stdout {
			t.Errorf("%v: host says %q, chroot %q", c.argv, host.stdout, r.stdout)
		}
	}
}

// lddPerlDirs returns perl's module directories that exist.
func lddPerlDirs(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("perl", "-e", "print join qq(\n), @INC").Output()
	if err != nil {
		t.Fatalf("perl: %v", err)
	}
	var dirs []string
	for _, d := range strings.Split(string(out), "\n") {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && strings.HasPrefix(d, "/") {
			if real, err := filepath.EvalSymlinks(d); err == nil && real == d {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}
