package fs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

func writeSpec(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.spec")
	must(t, os.WriteFile(p, []byte(body), 0o640))
	return p
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}

func TestSpecLearnerAppendsThenRewrites(t *testing.T) {
	// The final line has no newline: the first learned path must not
	// be glued to it.
	p := writeSpec(t, "/b\n/a")
	l, err := NewSpecLearner(p, "")
	must(t, err)
	for _, q := range []string{"/c/d", "/c/d", "/a", "/with space "} {
		must(t, l.Learn(q))
	}
	if got, want := readString(t, p), "/b\n/a\n/c/d\n/a\n\"/with space \"\n"; got != want {
		t.Fatalf("appended spec = %q, want %q", got, want)
	}
	if _, err := os.Stat(p + ".lock"); err != nil {
		t.Fatalf("lock file while learning: %v", err)
	}
	must(t, l.Close())
	if got, want := readString(t, p), "/a\n/b\n/c/d\n\"/with space \"\n"; got != want {
		t.Fatalf("rewritten spec = %q, want %q", got, want)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("rewritten spec mode: %v, %v", fi.Mode(), err)
	}
	if _, err := os.Stat(p + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file after Close: %v", err)
	}
	if err := l.Learn("/e"); err == nil {
		t.Fatal("Learn after Close succeeded")
	}
}

func TestSpecLearnerLock(t *testing.T) {
	p := writeSpec(t, "/a\n")
	l, err := NewSpecLearner(p, "")
	must(t, err)
	_, err = NewSpecLearner(p, "")
	var le *LockedError
	if !errors.As(err, &le) || le.Pid != os.Getpid() || le.Spec != p {
		t.Fatalf("second learner: %v (%+v), want LockedError naming pid %d", err, le, os.Getpid())
	}
	if !strings.Contains(err.Error(), p) {
		t.Fatalf("error does not name the spec: %v", err)
	}
	l.Release()
	if got := readString(t, p); got != "/a\n" {
		t.Fatalf("Release changed the spec: %q", got)
	}
	l2, err := NewSpecLearner(p, "")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l2.Release()
}

// A stale lock file left by a killed learner (no flock on it) does not
// block the next one.
func TestSpecLearnerStaleLockFile(t *testing.T) {
	p := writeSpec(t, "/a\n")
	must(t, os.WriteFile(p+".lock", []byte("99999999\n"), 0o644))
	l, err := NewSpecLearner(p, "")
	if err != nil {
		t.Fatalf("stale lock file refused: %v", err)
	}
	l.Release()
}

func TestSpecLearnerMissingSpec(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.spec")
	if _, err := NewSpecLearner(p, ""); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("missing spec: %v", err)
	}
	if _, err := os.Stat(p + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file left after a failed start: %v", err)
	}
}

func TestSpecLearnerMissesAndReport(t *testing.T) {
	p := writeSpec(t, "")
	miss := filepath.Join(t.TempDir(), "misses")
	l, err := NewSpecLearner(p, miss)
	must(t, err)
	l.Miss("/nope")
	l.Miss("/nope")
	l.Miss("/usr/lib/gone")
	for _, q := range []string{"/usr/lib/a", "/usr/lib/b", "/usr/lib/c", "/etc/x", "/etc/y", "/opt/z"} {
		must(t, l.Learn(q))
	}
	r := l.Report(2)
	want := LearnReport{Learned: 6, Misses: 2, TopDirs: []DirCount{{"/usr/lib", 3}, {"/etc", 2}}}
	if fmt.Sprint(r) != fmt.Sprint(want) {
		t.Fatalf("report = %+v, want %+v", r, want)
	}
	l.LogReport(zaptest.NewLogger(t))
	must(t, l.Close())
	if got := readString(t, miss); got != "/nope\n/usr/lib/gone\n" {
		t.Fatalf("misses log = %q", got)
	}
	s, err := spec.ParseFile(p)
	must(t, err)
	if got := strings.Join(s.Paths(), " "); got != "/etc/x /etc/y /opt/z /usr/lib/a /usr/lib/b /usr/lib/c" {
		t.Fatalf("spec = %s", got)
	}
}

// Concurrent learners of many paths: every line whole, every path there.
func TestSpecLearnerConcurrent(t *testing.T) {
	p := writeSpec(t, "")
	l, err := NewSpecLearner(p, "")
	must(t, err)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if err := l.Learn(fmt.Sprintf("/w%d/x%s/%d", w, strings.Repeat("x", i), i)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s, err := spec.ParseFile(p)
	must(t, err)
	if s.Len() != 1600 || s.Torn != 0 {
		t.Fatalf("appended spec has %d entries (torn %d), want 1600", s.Len(), s.Torn)
	}
	l.Release()
}

// requireRootTmpfs mounts a tiny tmpfs, which needs root.
func requireRootTmpfs(t *testing.T, size string) string {
	t.Helper()
	requireFUSE(t) // root, and in CI no skipping
	d := t.TempDir()
	must(t, unix.Mount("vzfs-learn-test", d, "tmpfs", 0, "size="+size))
	t.Cleanup(func() { _ = unix.Unmount(d, unix.MNT_DETACH) })
	return d
}

// A full disk fails Learn, and leaves the spec ending in a whole line:
// the partial line is cut back off.
func TestSpecLearnerDiskFull(t *testing.T) {
	d := requireRootTmpfs(t, "8k")
	p := filepath.Join(d, "x.spec")
	must(t, os.WriteFile(p, []byte("/a\n"), 0o644))
	l, err := NewSpecLearner(p, "")
	must(t, err)
	defer l.Release()
	var failed error
	learned := 0
	for i := 0; i < 10000 && failed == nil; i++ {
		if failed = l.Learn(fmt.Sprintf("/%s/%05d", strings.Repeat("d", 200), i)); failed == nil {
			learned++
		}
	}
	if failed == nil || !errors.Is(failed, unix.ENOSPC) || !strings.Contains(failed.Error(), p) {
		t.Fatalf("Learn on a full disk: %v", failed)
	}
	s, err := spec.ParseFile(p)
	must(t, err)
	if s.Torn != 0 || s.Len() != learned+1 {
		t.Fatalf("spec after ENOSPC: %d entries, torn %d; want %d whole ones", s.Len(), s.Torn, learned+1)
	}
	if b := readString(t, p); !strings.HasSuffix(b, "\n") {
		t.Fatalf("spec ends in a partial line: ...%q", b[max(0, len(b)-40):])
	}
}

// learnFixture is a host tree outside /tmp, which learn mode never
// serves.
func learnFixture(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "vzfs-fs-learn-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(d) })
	must(t, os.Chmod(d, 0o755))
	for _, f := range []string{"in/spec", "in/other", "dir/sub/file", "big/a", "big/b", "big/c", "fail/me", "sub/tree/x", "sub/tree/y/z"} {
		p := filepath.Join(d, f)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(f), 0o644))
	}
	must(t, os.Symlink("in/other", filepath.Join(d, "link")))
	return d
}

// fakeLearner records calls and fails paths below fail/.
type fakeLearner struct {
	mu      sync.Mutex
	learned []string
	misses  []string
}

func (f *fakeLearner) Learn(p string) error {
	if strings.Contains(p, "/fail/") {
		return fmt.Errorf("recording %s: %w", p, unix.ENOSPC)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.learned = append(f.learned, p)
	return nil
}

func (f *fakeLearner) Miss(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.misses = append(f.misses, p)
}

func (f *fakeLearner) get() (learned, misses []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	learned = append([]string(nil), f.learned...)
	misses = append([]string(nil), f.misses...)
	sort.Strings(learned)
	sort.Strings(misses)
	return learned, misses
}

func TestLearnMount(t *testing.T) {
	d := learnFixture(t)
	s := spec.New()
	s.AddPath(filepath.Join(d, "in/spec"))
	s.AddPath(filepath.Join(d, "fail"))
	s.Add(spec.Entry{Path: filepath.Join(d, "sub/tree"), Subtree: true})
	fl := &fakeLearner{}
	// Mounted inside the fixture, outside /tmp: the mountpoint is then
	// a name in a learned directory of the view.
	tr, err := NewTree(s, TreeOptions{})
	must(t, err)
	m := filepath.Join(d, "mnt")
	must(t, os.Mkdir(m, 0o755))
	srv, err := Mount(m, tr, MountOptions{Learn: fl, Logger: zaptest.NewLogger(t)})
	must(t, err)
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			_ = Unmount(m, true)
			srv.Wait()
		}
	})
	v := func(p string) string { return filepath.Join(m, d, p) }

	// A file the spec lacks is served, and learned.
	if b, err := os.ReadFile(v("in/other")); err != nil || string(b) != "in/other" {
		t.Fatalf("read learned file: %q, %v", b, err)
	}
	// A learned directory serves the host below it, learning each name.
	if b, err := os.ReadFile(v("dir/sub/file")); err != nil || string(b) != "dir/sub/file" {
		t.Fatalf("read below learned dirs: %q, %v", b, err)
	}
	// A symlink is learned; its target through its own lookup.
	if b, err := os.ReadFile(v("link")); err != nil || string(b) != "in/other" {
		t.Fatalf("read through learned link: %q, %v", b, err)
	}
	// Listing records nothing, and shows the host's entries with types.
	ents, err := os.ReadDir(v("big"))
	if err != nil || len(ents) != 3 || !ents[0].Type().IsRegular() {
		t.Fatalf("readdir of a learned dir: %v, %v", ents, err)
	}
	ents, err = os.ReadDir(v("in"))
	if err != nil || len(ents) != 2 {
		t.Fatalf("readdir of a tree dir lists the host's: %v, %v", ents, err)
	}
	// Names below a "/**" entry are the spec's already: not learned.
	if _, err := os.Stat(v("sub/tree/y/z")); err != nil {
		t.Fatal(err)
	}
	// Absent everywhere: ENOENT and a miss, twice (no negative cache).
	for range 2 {
		if _, err := os.Stat(v("dir/nope")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stat of a missing name: %v", err)
		}
	}
	// Absent below "/**": ENOENT, not a miss of learning.
	if _, err := os.Stat(v("sub/tree/nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing name below /**: %v", err)
	}
	// A failed record fails the lookup.
	if _, err := os.Stat(v("fail/me")); !errors.Is(err, unix.EIO) {
		t.Fatalf("stat of an unrecordable name: %v, want EIO", err)
	}
	// Never served: the mountpoint inside the view, /proc, /tmp.
	for _, p := range []string{m, "/proc/self", "/tmp", "/run/x"} {
		if _, err := os.Lstat(filepath.Join(m, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lstat %s in the view: %v, want ENOENT", p, err)
		}
	}
	learned, misses := fl.get()
	var want []string
	for _, p := range []string{"big", "dir", "dir/sub", "dir/sub/file", "in/other", "link"} {
		want = append(want, filepath.Join(d, p))
	}
	// Ancestors of the fixture below /var/tmp are not in the spec either.
	var got []string
	for _, p := range learned {
		if strings.HasPrefix(p, d+"/") {
			got = append(got, p)
		} else if !strings.HasPrefix(d, p) {
			t.Errorf("learned %s, outside the fixture", p)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("learned\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantMiss := filepath.Join(d, "dir/nope")
	n := 0
	for _, p := range misses {
		if p == wantMiss {
			n++
		} else if strings.HasPrefix(p, d) {
			t.Errorf("unexpected miss %s", p)
		}
	}
	if n != 2 {
		t.Fatalf("misses %q: want %s twice (no negative cache)", misses, wantMiss)
	}
}

// FuzzLearnAppend learns fuzzed paths: every valid one reads back from the
// spec exactly, however it had to be quoted.
func FuzzLearnAppend(f *testing.F) {
	f.Add("/usr/lib/x", "/a b\n/c")
	f.Add("/\"q\"", "/\\x")
	f.Add("/ä/\x00", " /lead")
	f.Fuzz(func(t *testing.T, a, b string) {
		p := filepath.Join(t.TempDir(), "f.spec")
		must(t, os.WriteFile(p, nil, 0o644))
		l, err := NewSpecLearner(p, "")
		must(t, err)
		defer l.Release()
		want := map[string]bool{}
		for _, q := range []string{a, b} {
			if spec.Validate(q) != nil {
				continue
			}
			must(t, l.Learn(q))
			want[q] = true
		}
		s, err := spec.ParseFile(p)
		if err != nil {
			t.Fatalf("appended spec does not parse: %v", err)
		}
		if s.Len() != len(want) {
			t.Fatalf("spec has %d entries, want %d", s.Len(), len(want))
		}
		for q := range want {
			if !s.Has(spec.Entry{Path: q}) {
				t.Fatalf("%q lost", q)
			}
		}
	})
}

// TestSpecLearnerPlantedLinks: whoever can write to the spec's directory
// must not make a root learner overwrite another file through a symlink
// or hard link planted as the lock file or the misses log.
func TestSpecLearnerPlantedLinks(t *testing.T) {
	p := writeSpec(t, "/usr/bin/true\n")
	victim := filepath.Join(t.TempDir(), "victim")
	must(t, os.WriteFile(victim, []byte("SECRET\n"), 0o600))
	check := func(what string) {
		t.Helper()
		if b, _ := os.ReadFile(victim); string(b) != "SECRET\n" {
			t.Fatalf("%s: victim overwritten: %q", what, b)
		}
	}

	must(t, os.Symlink(victim, p+".lock"))
	if l, err := NewSpecLearner(p, ""); err == nil {
		l.Close()
		t.Fatal("a symlinked lock file was accepted")
	}
	check("symlinked lock")
	must(t, os.Remove(p+".lock"))

	must(t, os.Link(victim, p+".lock"))
	if l, err := NewSpecLearner(p, ""); err == nil {
		l.Close()
		t.Fatal("a hard-linked lock file was accepted")
	}
	check("hard-linked lock")
	must(t, os.Remove(p+".lock"))

	misses := filepath.Join(filepath.Dir(p), "misses")
	must(t, os.Symlink(victim, misses))
	if l, err := NewSpecLearner(p, misses); err == nil {
		l.Miss("/nope")
		l.Close()
		t.Fatal("a symlinked misses log was accepted")
	}
	check("symlinked misses log")
}

// TestSpecLearnerRefusesStarStar: a host file named "**" would be written
// as a subtree line and bring a whole directory into the spec.
func TestSpecLearnerRefusesStarStar(t *testing.T) {
	p := writeSpec(t, "/usr/bin/true\n")
	l, err := NewSpecLearner(p, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Learn("/opt/**"); err == nil {
		t.Error("learned a file named **")
	}
	if err := l.Learn("/opt/a\nb"); err != nil {
		t.Errorf("a name with a newline is quotable: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := spec.ParseFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Has(spec.Entry{Path: "/opt", Subtree: true}) || !s.Has(spec.Entry{Path: "/opt/a\nb"}) {
		t.Fatalf("spec after learning: %q", s.Entries)
	}
}
