package resolver

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vzfs/vzfs/spec"
)

// ccSrc compiles C source into out with gcc and extra flags.
func ccSrc(t *testing.T, out, src string, flags ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(t.TempDir(), "src.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-o", out, c}, flags...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// ccLib builds a shared library with the given soname, calling the
// functions it names so that each DT_NEEDED is kept.
func ccLib(t *testing.T, out, fn string, flags ...string) {
	t.Helper()
	ccSrc(t, out, "int "+fn+"(void){return 0;}\n", append([]string{"-shared", "-fPIC", "-Wl,--no-as-needed", "-Wl,-soname," + filepath.Base(out)}, flags...)...)
}

const mainSrc = "int main(void){return 0;}\n"

func newResolver(t *testing.T, o Options) *Resolver {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func resolve(t *testing.T, r *Resolver, in ...string) *Result {
	t.Helper()
	res, err := r.Resolve(in...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func has(res *Result, p string) bool { return res.Spec.Has(spec.Entry{Path: p}) }

func missingNames(res *Result) []string {
	var out []string
	for _, m := range res.Missing {
		out = append(out, m.Name)
	}
	return out
}

// runs reports whether the program starts under the real ld.so, the
// ground truth every synthetic case is checked against too.
func runs(t *testing.T, exe string) bool {
	t.Helper()
	err := exec.Command(exe).Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %s: %v", exe, err)
	}
	return err == nil
}

// twoLevels builds bin/exe -> liba.so -> libb.so with libraries in lib/
// and the executable's search path $ORIGIN/../lib, as RPATH or RUNPATH.
func twoLevels(t *testing.T, newDtags bool) (dir, exe string) {
	dir = t.TempDir()
	lib := filepath.Join(dir, "lib")
	ccLib(t, filepath.Join(lib, "libb.so"), "b")
	ccLib(t, filepath.Join(lib, "liba.so"), "a", "-L"+lib, "-lb")
	exe = filepath.Join(dir, "bin", "exe")
	tags := "-Wl,--disable-new-dtags"
	if newDtags {
		tags = "-Wl,--enable-new-dtags"
	}
	ccSrc(t, exe, mainSrc, "-Wl,--no-as-needed", "-L"+lib, "-la", tags, "-Wl,-rpath,$ORIGIN/../lib")
	return dir, exe
}

func TestRpathTwoLevels(t *testing.T) {
	dir, exe := twoLevels(t, false)
	res := resolve(t, newResolver(t, Options{}), exe)
	for _, l := range []string{"lib/liba.so", "lib/libb.so"} {
		if !has(res, filepath.Join(dir, l)) {
			t.Errorf("RPATH is inherited: want %s in the closure, got %v", l, res.Spec.Paths())
		}
	}
	if len(res.Missing) != 0 || res.Err() != nil {
		t.Errorf("unexpected missing: %v", res.Err())
	}
	if !runs(t, exe) {
		t.Error("ld.so disagrees: the program does not start")
	}
	if got := res.Why(filepath.Join(dir, "lib/libb.so")); !slices.Equal(got, []string{"libb.so", "liba.so", exe}) {
		t.Errorf("Why(libb.so) = %v", got)
	}
}

func TestRunpathNotInherited(t *testing.T) {
	dir, exe := twoLevels(t, true)
	res := resolve(t, newResolver(t, Options{}), exe)
	if !has(res, filepath.Join(dir, "lib/liba.so")) {
		t.Errorf("RUNPATH applies to the executable's own needs: want liba.so, got %v", res.Spec.Paths())
	}
	if !slices.Equal(missingNames(res), []string{"libb.so"}) {
		t.Errorf("RUNPATH is not inherited: want libb.so missing, got %v", res.Missing)
	}
	if m := res.Missing[0]; m.NeededBy != filepath.Join(dir, "lib/liba.so") || !slices.Contains(m.Searched, "/usr/lib/x86_64-linux-gnu") {
		t.Errorf("Missing should name the needing object and the searched dirs: %+v", m)
	}
	if err := res.Err(); err == nil || !strings.Contains(err.Error(), "libb.so needed by") {
		t.Errorf("Err() = %v", err)
	}
	if runs(t, exe) {
		t.Error("ld.so disagrees: the program starts")
	}
}

// patchELF copies src to dst and lets edit change its bytes.
func patchELF(t *testing.T, src, dst string, edit func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	edit(b)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// earlyCandidate builds exe needing libb.so, with RPATH first/:good/,
// and a real libb.so in good/; first/libb.so is made by makeBad.
func earlyCandidate(t *testing.T, makeBad func(good, bad string)) (dir, exe string) {
	dir = t.TempDir()
	good := filepath.Join(dir, "good", "libb.so")
	ccLib(t, good, "b")
	makeBad(good, filepath.Join(dir, "first", "libb.so"))
	exe = filepath.Join(dir, "exe")
	ccSrc(t, exe, mainSrc, "-Wl,--no-as-needed", "-L"+filepath.Dir(good), "-lb", "-Wl,--disable-new-dtags",
		"-Wl,-rpath,"+filepath.Join(dir, "first")+":"+filepath.Join(dir, "good"))
	return dir, exe
}

func TestWrongClassAndMachineSkipped(t *testing.T) {
	for name, edit := range map[string]func(b []byte){
		"class":   func(b []byte) { b[4] = elfClass32 },
		"machine": func(b []byte) { binary.LittleEndian.PutUint16(b[18:], 183) },
	} {
		t.Run(name, func(t *testing.T) {
			dir, exe := earlyCandidate(t, func(good, bad string) { patchELF(t, good, bad, edit) })
			res := resolve(t, newResolver(t, Options{}), exe)
			if !has(res, filepath.Join(dir, "good/libb.so")) || has(res, filepath.Join(dir, "first/libb.so")) {
				t.Errorf("wrong %s must be skipped: %v", name, res.Spec.Paths())
			}
			if res.Err() != nil {
				t.Error(res.Err())
			}
			if !runs(t, exe) {
				t.Error("ld.so disagrees")
			}
		})
	}
}

func TestGarbageLibraryIsError(t *testing.T) {
	dir, exe := earlyCandidate(t, func(good, bad string) {
		if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bad, []byte("this is not an ELF file, but long enough to have a header ......................"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	res := resolve(t, newResolver(t, Options{}), exe)
	if len(res.Missing) != 1 || !strings.Contains(res.Missing[0].Reason, "invalid ELF header") || !strings.Contains(res.Missing[0].Reason, filepath.Join(dir, "first/libb.so")) {
		t.Fatalf("garbage earlier in the path must stop the search with an error naming it: %+v", res.Missing)
	}
	if has(res, filepath.Join(dir, "good/libb.so")) {
		t.Error("the search must not go past the garbage file")
	}
	if runs(t, exe) {
		t.Error("ld.so disagrees: it loaded the program")
	}
}

func TestMissingAndCycle(t *testing.T) {
	dir := t.TempDir()
	// liba needs libb and libb needs liba: build liba twice so that both
	// exist when linking.
	ccLib(t, filepath.Join(dir, "liba.so"), "a")
	ccLib(t, filepath.Join(dir, "libb.so"), "b", "-L"+dir, "-la")
	ccLib(t, filepath.Join(dir, "liba.so"), "a", "-L"+dir, "-lb")
	ccLib(t, filepath.Join(dir, "libgone.so"), "g")
	exe := filepath.Join(dir, "exe")
	ccSrc(t, exe, mainSrc, "-Wl,--no-as-needed", "-L"+dir, "-la", "-lgone", "-Wl,--disable-new-dtags", "-Wl,-rpath,"+dir)
	if err := os.Remove(filepath.Join(dir, "libgone.so")); err != nil {
		t.Fatal(err)
	}
	res := resolve(t, newResolver(t, Options{}), exe)
	if !has(res, filepath.Join(dir, "liba.so")) || !has(res, filepath.Join(dir, "libb.so")) {
		t.Errorf("cycle: %v", res.Spec.Paths())
	}
	if !slices.Equal(missingNames(res), []string{"libgone.so"}) || res.Missing[0].Searched[0] != dir {
		t.Errorf("missing: %+v", res.Missing)
	}
	if runs(t, exe) {
		t.Error("ld.so disagrees")
	}
}

func TestNeededWithSlashAndTokens(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "abs", "libabs.so")
	// No soname: the linker records the path it was given as DT_NEEDED.
	ccSrc(t, abs, "int x(void){return 0;}\n", "-shared", "-fPIC")
	ccLib(t, filepath.Join(dir, "lib/x86_64-linux-gnu/liblib.so"), "l")
	ccLib(t, filepath.Join(dir, "plat/x86_64/libplat.so"), "p")
	exe := filepath.Join(dir, "exe")
	ccSrc(t, exe, mainSrc, "-Wl,--no-as-needed", abs,
		"-L"+filepath.Join(dir, "lib/x86_64-linux-gnu"), "-llib", "-L"+filepath.Join(dir, "plat/x86_64"), "-lplat",
		"-Wl,-rpath,$ORIGIN/$LIB:${ORIGIN}/plat/${PLATFORM}")
	res := resolve(t, newResolver(t, Options{}), exe)
	for _, p := range []string{abs, filepath.Join(dir, "lib/x86_64-linux-gnu/liblib.so"), filepath.Join(dir, "plat/x86_64/libplat.so")} {
		if !has(res, p) {
			t.Errorf("want %s in %v", p, res.Spec.Paths())
		}
	}
	if res.Err() != nil {
		t.Error(res.Err())
	}
	if !runs(t, exe) {
		t.Error("ld.so disagrees")
	}
}

func TestNodefaultlib(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "exe")
	ccSrc(t, exe, mainSrc, "-Wl,-z,nodefaultlib")
	res := resolve(t, newResolver(t, Options{}), exe)
	if !slices.Equal(missingNames(res), []string{"libc.so.6"}) {
		t.Errorf("DF_1_NODEFLIB refuses the cache's and default dirs' libc: %+v", res.Missing)
	}
	if runs(t, exe) {
		t.Error("ld.so disagrees")
	}
	// With a search path of its own, the library is found there.
	res = resolve(t, newResolver(t, Options{LibraryPath: []string{"/usr/lib/x86_64-linux-gnu"}}), exe)
	if res.Err() != nil || !has(res, "/usr/lib/x86_64-linux-gnu/libc.so.6") {
		t.Errorf("--library-path: %v %v", res.Err(), res.Spec.Paths())
	}
}

func TestStaticNeedsNothing(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []string{"-static", "-static-pie"} {
		exe := filepath.Join(dir, "exe"+mode)
		ccSrc(t, exe, mainSrc, mode)
		res := resolve(t, newResolver(t, Options{}), exe)
		if got := res.Spec.Paths(); !slices.Equal(got, []string{exe}) || res.Err() != nil {
			t.Errorf("%s: want only the program, got %v, %v", mode, got, res.Err())
		}
		if !runs(t, exe) {
			t.Errorf("%s does not run", mode)
		}
	}
}

func TestSectionHeadersStripped(t *testing.T) {
	dir, exe := twoLevels(t, false)
	stripped := filepath.Join(dir, "bin", "stripped")
	patchELF(t, exe, stripped, func(b []byte) {
		binary.LittleEndian.PutUint64(b[40:], 0) // e_shoff
		binary.LittleEndian.PutUint16(b[60:], 0) // e_shnum
		binary.LittleEndian.PutUint16(b[62:], 0) // e_shstrndx
	})
	r := newResolver(t, Options{})
	want := resolve(t, r, exe).Spec.Paths()
	got := resolve(t, r, stripped).Spec.Paths()
	want[slices.Index(want, exe)] = stripped
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("stripped section headers:\n got %v\nwant %v", got, want)
	}
	if !runs(t, stripped) {
		t.Error("stripped copy does not run")
	}
}

// copyFile copies a host file into the test root.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// foreignRoot builds a lib64-layout root: /lib64 -> usr/lib64, an
// interpreter and libc there, /usr/lib64/libfoo.so -> /usr/lib64/libfoo.so.1
// (absolute), /opt/lib/libopt.so found only through the root's own cache,
// and /usr/bin/app needing both.
func foreignRoot(t *testing.T) (root string) {
	root = t.TempDir()
	symlink(t, "usr/lib64", filepath.Join(root, "lib64"))
	copyFile(t, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(root, "usr/lib64/ld-2.36.so"))
	symlink(t, "/usr/lib64/ld-2.36.so", filepath.Join(root, "usr/lib64/ld-linux-x86-64.so.2"))
	copyFile(t, "/usr/lib/x86_64-linux-gnu/libc.so.6", filepath.Join(root, "usr/lib64/libc.so.6"))
	ccLib(t, filepath.Join(root, "usr/lib64/libfoo.so.1.0"), "foo", "-Wl,-soname,libfoo.so.1")
	symlink(t, "/usr/lib64/libfoo.so.1.0", filepath.Join(root, "usr/lib64/libfoo.so.1"))
	ccLib(t, filepath.Join(root, "opt/lib/libopt.so"), "opt")
	ccSrc(t, filepath.Join(root, "usr/bin/app"), mainSrc, "-Wl,--no-as-needed",
		filepath.Join(root, "usr/lib64/libfoo.so.1.0"), "-L"+filepath.Join(root, "opt/lib"), "-lopt")
	return root
}

func TestForeignRoot(t *testing.T) {
	root := foreignRoot(t)
	// No cache: /opt/lib is unknown to the default dirs.
	res := resolve(t, newResolver(t, Options{Root: root, With: []Extra{ExtraBase}}), "/usr/bin/app")
	for _, p := range []string{"/usr/bin/app", "/lib64", "/usr/lib64/ld-linux-x86-64.so.2", "/usr/lib64/ld-2.36.so", "/usr/lib64/libc.so.6", "/usr/lib64/libfoo.so.1", "/usr/lib64/libfoo.so.1.0"} {
		if !has(res, p) {
			t.Errorf("want %s in %v", p, res.Spec.Paths())
		}
	}
	for _, p := range res.Spec.Paths() {
		if strings.HasPrefix(p, root) {
			t.Errorf("paths must be as seen inside the root: %s", p)
		}
	}
	if !slices.Equal(missingNames(res), []string{"libopt.so"}) || !slices.Equal(res.Missing[0].Searched, []string{"/lib64", "/usr/lib64"}) {
		t.Errorf("without a cache, lib64 defaults only: %+v", res.Missing)
	}

	// With the root's own cache, /opt/lib is found through it.
	if err := os.WriteFile(filepath.Join(root, "etc/ld.so.conf"), []byte("/opt/lib\n"), 0o644); err != nil {
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc/ld.so.conf"), []byte("/opt/lib\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := exec.Command("ldconfig", "-r", root).CombinedOutput(); err != nil {
		t.Fatalf("ldconfig -r: %v\n%s", err, b)
	}
	res = resolve(t, newResolver(t, Options{Root: root, With: []Extra{ExtraBase}}), "/usr/bin/app")
	if res.Err() != nil || !has(res, "/opt/lib/libopt.so") || !has(res, "/etc/ld.so.cache") {
		t.Errorf("with the root's cache: %v %v", res.Err(), res.Spec.Paths())
	}
	if !has(res, "/usr/lib64/libfoo.so.1.0") {
		t.Errorf("absolute symlinks are re-rooted: %v", res.Spec.Paths())
	}
}

func TestRootEscape(t *testing.T) {
	root := t.TempDir()
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Each link would reach the host file if followed outside the root.
	rel, _ := filepath.Rel(filepath.Join(root, "a/b"), filepath.Join(host, "secret"))
	symlink(t, rel, filepath.Join(root, "a/b/up"))
	symlink(t, filepath.Join(host, "secret"), filepath.Join(root, "a/b/abs"))
	symlink(t, "loop2", filepath.Join(root, "a/loop1"))
	symlink(t, "loop1", filepath.Join(root, "a/loop2"))
	res := resolve(t, newResolver(t, Options{Root: root}), "/a/b/up", "/a/b/abs", "/a/loop1", "/nonexistent")
	for _, p := range res.Spec.Paths() {
		if strings.Contains(p, "secret") {
			t.Errorf("resolution left the root: %s", p)
		}
	}
	if len(res.Problems) != 4 {
		t.Fatalf("want 4 problems (2 dangling, 1 loop, 1 missing input), got %v", res.Problems)
	}
	joined := res.Err().Error()
	for _, want := range []string{"/a/b/up: dangling symlink", "/a/b/abs: dangling symlink", "/a/loop1: too many levels", "/nonexistent"} {
		if !strings.Contains(joined, want) {
			t.Errorf("Err() should mention %q:\n%s", want, joined)
		}
	}
	var le *LinkError
	if !errors.As(res.Problems[0], &le) {
		t.Errorf("dangling link error is %T", res.Problems[0])
	}
	if !errors.Is(res.Problems[3], fs.ErrNotExist) {
		t.Errorf("missing input: %v", res.Problems[3])
	}
}

func TestMusl(t *testing.T) {
	root := t.TempDir()
	const interp = "/lib/ld-musl-x86_64.so.1"
	ccLib(t, filepath.Join(root, interp), "musl")
	ccLib(t, filepath.Join(root, "opt/lib/libfoo.so"), "foo")
	ccLib(t, filepath.Join(root, "lib/libfoo.so"), "foo") // later in the path
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/ld-musl-x86_64.path"), []byte("/opt/lib\n/lib:/usr/lib\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(root, "bin/app")
	// Linked against glibc's libc.so.6 and libm: musl answers both with itself.
	ccSrc(t, exe, mainSrc, "-Wl,--no-as-needed", "-lm", "-L"+filepath.Join(root, "opt/lib"), "-lfoo", "-Wl,--dynamic-linker="+interp)
	res := resolve(t, newResolver(t, Options{Root: root, With: []Extra{ExtraBase, ExtraNSS}}), "/bin/app")
	want := []string{"/bin/app", "/etc/ld-musl-x86_64.path", "/lib/ld-musl-x86_64.so.1", "/opt/lib/libfoo.so"}
	if got := res.Spec.Paths(); !slices.Equal(got, want) || res.Err() != nil {
		t.Errorf("musl:\n got %v\nwant %v\n%v", got, want, res.Err())
	}
}

func TestScripts(t *testing.T) {
	dir := t.TempDir()
	sh := filepath.Join(dir, "s.sh")
	py := filepath.Join(dir, "s.py")
	deep := filepath.Join(dir, "deep")
	if err := os.WriteFile(sh, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(py, []byte("#!/usr/bin/env -S PYTHONDONTWRITEBYTECODE=1 python3 -u\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A chain of five scripts: one level more than the kernel allows.
	prev := sh
	for i := range 5 {
		next := filepath.Join(dir, "deep"+string(rune('0'+i)))
		if err := os.WriteFile(next, []byte("#!"+prev+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		prev = next
	}
	if err := os.Rename(prev, deep); err != nil {
		t.Fatal(err)
	}
	r := newResolver(t, Options{Path: "/usr/bin:/bin"})
	res := resolve(t, r, sh, py)
	for _, p := range []string{"/bin", "/usr/bin/sh", "/usr/bin/dash", "/usr/bin/env", "/usr/bin/python3", "/usr/lib/x86_64-linux-gnu/libc.so.6"} {
		if !has(res, p) {
			t.Errorf("want %s in %v", p, res.Spec.Paths())
		}
	}
	if res.Err() != nil {
		t.Error(res.Err())
	}
	res = resolve(t, r, deep)
	if res.Err() == nil || !strings.Contains(res.Err().Error(), "levels of #! interpreters") {
		t.Errorf("deep nesting: %v", res.Err())
	}
}

func TestEnvProgram(t *testing.T) {
	for arg, want := range map[string]string{
		"python3":                "python3",
		"-S python3 -u":          "python3",
		"-Spython3 -u":           "python3",
		"-i FOO=1 perl":          "perl",
		"-u HOME -C /tmp node":   "node",
		"--split-string=ruby -w": "ruby",
		"-- bash":                "bash",
		"":                       "",
	} {
		if got := envProgram(arg); got != want {
			t.Errorf("envProgram(%q) = %q, want %q", arg, got, want)
		}
	}
}

func TestInputs(t *testing.T) {
	dir := t.TempDir()
	txt := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(txt, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newResolver(t, Options{})
	res := resolve(t, r, dir, txt, "/usr/lib/python3/**")
	want := []spec.Entry{{Path: dir}, {Path: txt}, {Path: "/usr/lib/python3", Subtree: true}}
	if !slices.Equal(res.Spec.Entries, want) || res.Err() != nil {
		t.Errorf("got %v, want %v (%v)", res.Spec.Entries, want, res.Err())
	}
	if _, err := r.Resolve("relative/path"); err == nil {
		t.Error("a relative path with a slash must be rejected")
	}
	res = resolve(t, r, "ls")
	if !has(res, "/usr/bin/ls") && !has(res, "/bin") {
		t.Errorf("bare name: %v", res.Spec.Paths())
	}
}

func TestParseExtras(t *testing.T) {
	if got, _ := ParseExtras(""); !slices.Equal(got, []Extra{ExtraNSS, ExtraBase}) {
		t.Errorf("default: %v", got)
	}
	if got, err := ParseExtras("none"); err != nil || len(got) != 0 {
		t.Errorf("none: %v %v", got, err)
	}
	if got, _ := ParseExtras("certs,tzdata,certs"); !slices.Equal(got, []Extra{ExtraCerts, ExtraTZData}) {
		t.Errorf("list: %v", got)
	}
	for _, bad := range []string{"bogus", "nss,none", "nss,,base"} {
		if _, err := ParseExtras(bad); err == nil {
			t.Errorf("ParseExtras(%q) should fail", bad)
		}
	}
}

func TestNSSModules(t *testing.T) {
	conf := "# comment\npasswd: files systemd\nhosts: files [NOTFOUND=return] dns mdns4_minimal\nnetgroup: nis\n"
	want := []string{"files", "systemd", "dns", "mdns4_minimal", "nis"}
	if got := nssModules(conf); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
