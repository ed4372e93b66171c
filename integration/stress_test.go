package integration

// The fault and load suite (issue 7): the host changing under a mount, the
// daemon killed under load, a full disk, mount churn, a soak, scale and
// path round trips. Every case asserts that nothing is lost, nothing leaks
// and nothing hangs.
//
// `go test ./integration -run TestStress` (part of `make test`) runs each
// case briefly. VZFS_STRESS=long (`make stress`) runs them for longer and
// adds TestStressScale, the 1,000,000-entry spec.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	vfs "github.com/vzfs/vzfs/fs"
	"github.com/vzfs/vzfs/spec"
)

// stressLong reports whether the long variant was asked for (make stress).
func stressLong() bool { return os.Getenv("VZFS_STRESS") == "long" }

// stressDur picks the short or the long duration of a timed case.
func stressDur(short, long time.Duration) time.Duration {
	if stressLong() {
		return long
	}
	return short
}

// stressRSS returns the resident set size of pid in bytes.
func stressRSS(t testing.TB, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading daemon %d status: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}

// stressAlive reports whether pid runs and is not a zombie.
func stressAlive(pid int) bool { return !mountWaitExit(pid, 0) }

// stressReadNoFollow reads p without following a symlink in its last
// component, the way a chrooted program could never be redirected by a
// link that the view serves verbatim (the link would resolve inside the
// chroot). Following it here, outside any chroot, would read the host's
// target and prove nothing about vzfs.
func stressReadNoFollow(p string) ([]byte, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// stressContent is what the host-change test writes: only the bytes
// "VZFS-0123456789;", so any other byte a reader sees (a lowercase letter
// of /etc/shadow, a zero of a hole) is data that was never served.
func stressContent(gen int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("VZFS-%d;", gen)), 300)
}

func stressValidContent(b []byte) bool {
	for _, c := range b {
		if !strings.ContainsRune("VZFS-0123456789;", rune(c)) {
			return false
		}
	}
	return len(b) == 0 || bytes.HasPrefix(b, []byte("VZFS-"))
}

// TestStressHostChanges (issue 7.1): served files are deleted, replaced by
// rename, truncated and rewritten, and swapped for symlinks to /etc/shadow
// (absolute and ../../..) while readers run, outside and inside a chroot of
// the view. Readers get errors or old or new data, never the link's
// target; the daemon stays up and serves the final state.
func TestStressHostChanges(t *testing.T) {
	requireFUSE(t)
	shadow, err := os.ReadFile("/etc/shadow")
	if err != nil || len(bytes.TrimSpace(shadow)) == 0 {
		t.Fatalf("need a non-empty /etc/shadow to prove it is never served: %v", err)
	}
	shadowLine := bytes.SplitN(shadow, []byte("\n"), 2)[0]
	// The links below point at the host's real /etc/shadow: prove the test
	// itself never wrote through one.
	t.Cleanup(func() {
		if now, err := os.ReadFile("/etc/shadow"); err != nil || !bytes.Equal(now, shadow) {
			t.Errorf("/etc/shadow CHANGED during the test (%v): restore it from /etc/shadow-", err)
		}
	})

	dir := t.TempDir()
	const n = 8
	var explicit []string
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, "ex", fmt.Sprintf("f%d", i))
		writeFile(t, p, string(stressContent(0)), 0o644)
		explicit = append(explicit, p)
		writeFile(t, filepath.Join(dir, "sub", fmt.Sprintf("f%d", i)), string(stressContent(0)), 0o644)
	}
	sp := mountLdd(t, []string{"cat"}, append(explicit, filepath.Join(dir, "sub")+"/**")...)
	v := mountStart(t, sp, "--revalidate", "0")

	paths := func(root string) []string {
		var ps []string
		for i := 0; i < n; i++ {
			ps = append(ps, filepath.Join(root, dir, "ex", fmt.Sprintf("f%d", i)),
				filepath.Join(root, dir, "sub", fmt.Sprintf("f%d", i)))
		}
		return ps
	}
	hostPaths, viewPaths, chrootPaths := paths("/"), paths(v.dir), paths("/")

	d := stressDur(3*time.Second, 30*time.Second)
	stop := make(chan struct{})
	var reads, fails, bad atomic.Int64
	var badMu sync.Mutex
	var badSeen []string
	check := func(where string, b []byte) {
		reads.Add(1)
		if bytes.Contains(b, shadowLine) || !stressValidContent(b) {
			bad.Add(1)
			badMu.Lock()
			if len(badSeen) < 5 {
				// Show where it goes wrong: the first byte never written.
				i := bytes.IndexFunc(b, func(r rune) bool { return !strings.ContainsRune("VZFS-0123456789;", r) })
				lo := max(0, i-20)
				badSeen = append(badSeen, fmt.Sprintf("%s: %d bytes, first foreign byte at %d: %q", where, len(b), i, b[lo:min(len(b), lo+60)]))
			}
			badMu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := viewPaths[rnd.Intn(len(viewPaths))]
				b, err := stressReadNoFollow(p)
				if err != nil {
					fails.Add(1)
					continue
				}
				check(p, b)
			}
		}(w)
	}
	// Inside a chroot of the view, an absolute link target resolves in
	// the view, where /etc/shadow does not exist; cat follows links as
	// any program would.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rnd := rand.New(rand.NewSource(99))
		for {
			select {
			case <-stop:
				return
			default:
			}
			p := chrootPaths[rnd.Intn(len(chrootPaths))]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := exec.CommandContext(ctx, "chroot", v.dir, "/usr/bin/cat", p).Output()
			if ctx.Err() != nil {
				bad.Add(1)
				badMu.Lock()
				badSeen = append(badSeen, "chroot cat "+p+" hung")
				badMu.Unlock()
			}
			cancel()
			if err != nil {
				fails.Add(1)
				continue
			}
			check("chroot:"+p, out)
		}
	}()

	// The mutator cycles every file through each kind of change.
	rnd := rand.New(rand.NewSource(1))
	deadline := time.Now().Add(d)
	ops := map[string]int{}
	for gen := 1; time.Now().Before(deadline); gen++ {
		p := hostPaths[rnd.Intn(len(hostPaths))]
		_ = os.RemoveAll(p + ".tmp")
		// Every write goes through stressWriteNoFollow: p may be a
		// symlink to the real /etc/shadow at any moment.
		var err error
		switch op := gen % 6; op {
		case 0:
			ops["delete"]++
			err = os.Remove(p)
		case 1:
			ops["rename"]++
			if err = stressWriteNoFollow(p+".tmp", stressContent(gen)); err == nil {
				err = os.Rename(p+".tmp", p)
			}
		case 2:
			ops["truncate"]++
			err = stressWriteNoFollow(p, stressContent(gen)) // O_TRUNC, then the new data
		case 3:
			ops["symlink /etc/shadow"]++
			_ = os.Remove(p)
			err = os.Symlink("/etc/shadow", p)
		case 4:
			ops["symlink ../../.."]++
			_ = os.Remove(p)
			err = os.Symlink(strings.Repeat("../", 20)+"etc/shadow", p)
		case 5:
			ops["restore"]++
			if err = stressWriteNoFollow(p+".tmp", stressContent(gen)); err == nil {
				err = os.Rename(p+".tmp", p)
			}
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("mutating %s: %v", p, err)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("readers hung after the mutator stopped")
	}
	t.Logf("%v: %d reads returned data, %d errors; changes %v", d, reads.Load(), fails.Load(), ops)
	if bad.Load() > 0 {
		t.Fatalf("%d reads returned data the host never had at that path (or hung): %v", bad.Load(), badSeen)
	}
	if reads.Load() == 0 {
		t.Fatal("no read succeeded: the test proves nothing")
	}
	if !stressAlive(v.pid) {
		t.Fatal("the daemon died")
	}
	// The final state is served: every file restored is read as the host has it.
	for i, p := range hostPaths {
		want := stressContent(1000 + i)
		if err := stressWriteNoFollow(p, want); err != nil {
			t.Fatal(err)
		}
		got, err := stressReadNoFollow(viewPaths[i])
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("after the churn, %s = %d bytes, %v; want the host's %d bytes", viewPaths[i], len(got), err, len(want))
		}
	}
}

// stressWriteNoFollow replaces p's content with b without ever following a
// symlink: a link at p (to /etc/shadow, say) is removed and a new file made
// in its place, exclusively, so a racing symlink cannot redirect the write.
func stressWriteNoFollow(p string, b []byte) error {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		fd, err = unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	}
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), p)
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestStressDaemonKill (issue 7.2): kill -9 the daemon under load from 8
// readers. Every reader gets an error within a bounded time, none hangs;
// then `vzfs umount` clears the dead mount, and after a second kill
// `vzfs mount --force` serves again on the same mountpoint.
func TestStressDaemonKill(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	for i := 0; i < 64; i++ {
		writeFile(t, filepath.Join(dir, "d", fmt.Sprintf("f%02d", i)), strings.Repeat("x", 64<<10), 0o644)
	}
	sp := mountLdd(t, []string{"cat"}, filepath.Join(dir, "d")+"/**")

	underLoad := func(t *testing.T, v *mountView) {
		const readers = 8
		started := make(chan struct{}, readers)
		errs := make(chan error, readers)
		for w := 0; w < readers; w++ {
			go func(w int) {
				first := true
				for i := w; ; i++ {
					// Without caching the daemon sees every open.
					p := filepath.Join(v.dir, dir, "d", fmt.Sprintf("f%02d", i%64))
					b, err := stressReadNoFollow(p)
					if first {
						started <- struct{}{}
						first = false
					}
					if err != nil {
						errs <- err
						return
					}
					if len(b) != 64<<10 {
						errs <- fmt.Errorf("%s: short read %d", p, len(b))
						return
					}
				}
			}(w)
		}
		for w := 0; w < readers; w++ {
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("readers did not start")
			}
		}
		time.Sleep(200 * time.Millisecond)
		if err := unix.Kill(v.pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(10 * time.Second)
		for w := 0; w < readers; w++ {
			select {
			case err := <-errs:
				if !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.ECONNABORTED) {
					t.Errorf("reader error %v, want ENOTCONN or ECONNABORTED", err)
				}
			case <-timeout:
				t.Fatalf("%d of %d readers still blocked 10s after kill -9", readers-w, readers)
			}
		}
		if !mountWaitExit(v.pid, 5*time.Second) {
			t.Fatal("killed daemon still there")
		}
	}

	t.Run("umount recovers", func(t *testing.T) {
		v := mountStart(t, sp, "--revalidate", "0")
		underLoad(t, v)
		if r := runVzfs(t, "umount", v.dir); r.code != 0 {
			t.Fatalf("vzfs umount of the dead mount: exit %d %s", r.code, r.stderr)
		}
		if _, ok := vfs.FindMount(v.dir); ok {
			t.Fatal("dead mount still there after vzfs umount")
		}
	})
	t.Run("mount --force recovers", func(t *testing.T) {
		v := mountStart(t, sp, "--revalidate", "0")
		underLoad(t, v)
		r := runVzfs(t, "mount", "--force", sp, v.dir)
		if r.code != 0 {
			t.Fatalf("mount --force: exit %d %s", r.code, r.stderr)
		}
		m := mountPidRe.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("no pid in %q", r.stdout)
		}
		v.pid, _ = strconv.Atoi(m[1])
		b, err := stressReadNoFollow(filepath.Join(v.dir, dir, "d", "f00"))
		if err != nil || len(b) != 64<<10 {
			t.Fatalf("read after --force: %d bytes, %v", len(b), err)
		}
		if r := chrootRun(t, v.dir, "/usr/bin/cat", filepath.Join(dir, "d", "f01")); r.code != 0 || len(r.stdout) != 64<<10 {
			t.Fatalf("chroot cat after --force: exit %d, %d bytes, %s", r.code, len(r.stdout), r.stderr)
		}
	})
}

// TestStressFreezeDiskFull (issue 7.3, freeze half): a tree of many files
// that fills a 1 MiB tmpfs part way through fails with exit 1 and an error
// naming the disk, and leaves nothing on it, for a directory, a tar and an
// OCI archive. (TestFreezeDiskFull covers one big file.)
func TestStressFreezeDiskFull(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "small")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, nil, "mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=4096", "tmpfs", mnt); r.code != 0 {
		t.Fatalf("mount tmpfs: %s", r.stderr)
	}
	t.Cleanup(func() {
		if exec.Command("umount", mnt).Run() != nil {
			_ = exec.Command("umount", "-l", mnt).Run()
		}
	})
	// Random data, so that the gzip of an OCI layer cannot shrink it below
	// the disk's size.
	src := filepath.Join(dir, "src")
	rnd := rand.New(rand.NewSource(7))
	data := make([]byte, 16<<10)
	for i := 0; i < 300; i++ {
		rnd.Read(data)
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%03d", i)), string(data), 0o644)
	}
	sp := filepath.Join(dir, "many.spec")
	writeFile(t, sp, src+"/**\n", 0o644)
	for _, args := range [][]string{
		{sp, filepath.Join(mnt, "out")},
		{"--tar", filepath.Join(mnt, "out.tar"), sp},
		{"--oci", filepath.Join(mnt, "out-oci.tar"), sp},
		{"--oci", filepath.Join(mnt, "layout"), sp},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, vzfsBin, append([]string{"freeze", "--no-resolve"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		hung := ctx.Err() == context.DeadlineExceeded
		cancel()
		if hung {
			t.Fatalf("freeze %v onto a full disk hung", args)
		}
		code := cmd.ProcessState.ExitCode()
		if err == nil || code != 1 || !strings.Contains(stderr.String(), "disk full") || !strings.Contains(stderr.String(), mnt) {
			t.Errorf("freeze %v onto a full disk: exit %d, stderr %q; want exit 1 naming %s and 'disk full'", args, code, stderr.String(), mnt)
		}
		if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("freeze %v left %v on the full disk", args, names)
			for _, e := range ents {
				_ = os.RemoveAll(filepath.Join(mnt, e.Name()))
			}
		}
	}
}

// stressFDs counts this process's open file descriptors.
func stressFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// stressVzfsMounts counts vzfs mounts in this mount namespace.
func stressVzfsMounts(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), " fuse."+vfs.FSType+" ")
}

// stressSettle waits for the count f returns to fall to at most want, and
// returns the last count: goroutines and fds of a finished server go away
// shortly after Unmount returns, not at once.
func stressSettle(want int, f func() int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := f()
		if got <= want || time.Now().After(deadline) {
			return got
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
}

// stressChurnSpec makes a small fixture of its own and its spec: a few
// files, a "/**" subtree and a symlink.
func stressChurnSpec(t *testing.T, tag string) (*spec.Spec, string) {
	dir := filepath.Join(t.TempDir(), tag)
	writeFile(t, filepath.Join(dir, "file"), "churn "+tag+"\n", 0o644)
	for i := 0; i < 10; i++ {
		writeFile(t, filepath.Join(dir, "tree", fmt.Sprintf("s%d", i)), tag, 0o644)
	}
	if err := os.Symlink("file", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return spec.New(
		spec.Entry{Path: filepath.Join(dir, "file")},
		spec.Entry{Path: filepath.Join(dir, "link")},
		spec.Entry{Path: filepath.Join(dir, "tree"), Subtree: true},
	), dir
}

// stressCycle mounts s in-process, reads through it and unmounts.
func stressCycle(t *testing.T, s *spec.Spec, dir, tag, mnt string) error {
	tr, err := vfs.NewTree(s, vfs.TreeOptions{})
	if err != nil {
		return err
	}
	srv, err := vfs.Mount(mnt, tr, vfs.MountOptions{})
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	b, rerr := os.ReadFile(filepath.Join(mnt, dir, "link"))
	if rerr == nil && string(b) != "churn "+tag+"\n" {
		rerr = fmt.Errorf("read %q", b)
	}
	if rerr == nil {
		var ents []os.DirEntry
		if ents, rerr = os.ReadDir(filepath.Join(mnt, dir, "tree")); rerr == nil && len(ents) != 10 {
			rerr = fmt.Errorf("readdir: %d entries", len(ents))
		}
	}
	if err := srv.Unmount(); err != nil {
		_ = vfs.Unmount(mnt, true)
		return fmt.Errorf("unmount: %w", err)
	}
	return rerr
}

// TestStressChurn (issue 7.4): 500 cycles of mount, read and unmount in
// this process, then 4 goroutines mounting and unmounting different specs
// at once: file descriptors, goroutines and mounts all return to baseline.
func TestStressChurn(t *testing.T) {
	requireFUSE(t)
	s, dir := stressChurnSpec(t, "serial")
	mnt := t.TempDir()
	// One cycle first, so that lazily started runtime and library
	// goroutines are part of the baseline.
	if err := stressCycle(t, s, dir, "serial", mnt); err != nil {
		t.Fatal(err)
	}
	baseFDs, baseG, baseM := stressFDs(t), runtime.NumGoroutine(), stressVzfsMounts(t)

	const cycles = 500
	start := time.Now()
	for i := 0; i < cycles; i++ {
		if err := stressCycle(t, s, dir, "serial", mnt); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	serial := time.Since(start)

	const workers, each = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		tag := fmt.Sprintf("w%d", w)
		s, dir := stressChurnSpec(t, tag)
		m := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := stressCycle(t, s, dir, tag, m); err != nil {
					errs <- fmt.Errorf("%s cycle %d: %w", tag, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	fds := stressSettle(baseFDs, func() int { return stressFDs(t) })
	gs := stressSettle(baseG, runtime.NumGoroutine)
	ms := stressSettle(baseM, func() int { return stressVzfsMounts(t) })
	t.Logf("%d serial cycles in %v (%v each), then %dx%d concurrent; fds %d->%d, goroutines %d->%d, mounts %d->%d",
		cycles, serial, serial/cycles, workers, each, baseFDs, fds, baseG, gs, baseM, ms)
	if fds > baseFDs {
		t.Errorf("file descriptors: %d before, %d after", baseFDs, fds)
	}
	if gs > baseG {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", baseG, gs, buf[:runtime.Stack(buf, true)])
	}
	if ms > baseM {
		t.Errorf("vzfs mounts: %d before, %d after", baseM, ms)
	}
}

// TestStressSoak (issue 7.5): 8 workers do random lookups, reads (checked
// against the host), readdirs (checked against the host) and execs in a
// chroot on a /usr/** view for a fixed time: zero errors, and the daemon's
// resident memory flat after a warm-up that touched every path once.
func TestStressSoak(t *testing.T) {
	requireFUSE(t)
	sp := mountLdd(t, []string{"true", "ls", "cat"}, "/usr/**")
	v := mountStart(t, sp)

	// The working set: up to 20,000 paths of /usr, all touched once in the
	// warm-up so the daemon has seen each before memory is measured.
	var files, dirs, all []string
	_ = filepath.WalkDir("/usr", func(p string, de os.DirEntry, err error) error {
		if err != nil || len(all) >= 20000 {
			return filepath.SkipDir
		}
		all = append(all, p)
		switch {
		case de.IsDir():
			dirs = append(dirs, p)
		case de.Type().IsRegular():
			if fi, err := de.Info(); err == nil && fi.Size() <= 256<<10 && fi.Mode().Perm()&0o004 != 0 {
				files = append(files, p)
			}
		}
		return nil
	})
	if len(files) < 100 || len(dirs) < 10 {
		t.Fatalf("only %d files and %d dirs under /usr", len(files), len(dirs))
	}
	for _, p := range all {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(v.dir, p), &st); err != nil {
			t.Fatalf("warm-up lookup %s: %v", p, err)
		}
	}
	for _, d := range dirs {
		if _, err := os.ReadDir(filepath.Join(v.dir, d)); err != nil {
			t.Fatalf("warm-up readdir %s: %v", d, err)
		}
	}
	warm := stressRSS(t, v.pid)

	d := stressDur(5*time.Second, 60*time.Second)
	deadline := time.Now().Add(d)
	var ops [4]atomic.Int64
	var errMu sync.Mutex
	var errs []string
	fail := func(format string, a ...any) {
		errMu.Lock()
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, a...))
		}
		errMu.Unlock()
	}
	var peak atomic.Uint64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(w)))
			for time.Now().Before(deadline) {
				switch k := rnd.Intn(20); {
				case k < 8: // lookup
					ops[0].Add(1)
					p := all[rnd.Intn(len(all))]
					var hs, vs unix.Stat_t
					if err := unix.Lstat(filepath.Join(v.dir, p), &vs); err != nil {
						fail("lstat %s: %v", p, err)
					} else if unix.Lstat(p, &hs) == nil && (hs.Ino != vs.Ino || hs.Size != vs.Size || hs.Mode != vs.Mode) {
						fail("lstat %s: view ino %d size %d mode %o, host %d %d %o", p, vs.Ino, vs.Size, vs.Mode, hs.Ino, hs.Size, hs.Mode)
					}
				case k < 15: // read
					ops[1].Add(1)
					p := files[rnd.Intn(len(files))]
					got, err := os.ReadFile(filepath.Join(v.dir, p))
					want, herr := os.ReadFile(p)
					if err != nil || herr != nil || !bytes.Equal(got, want) {
						fail("read %s: %d bytes, %v; host %d bytes, %v", p, len(got), err, len(want), herr)
					}
				case k < 19: // readdir
					ops[2].Add(1)
					p := dirs[rnd.Intn(len(dirs))]
					got, err := os.ReadDir(filepath.Join(v.dir, p))
					want, herr := os.ReadDir(p)
					if err != nil || herr != nil || len(got) != len(want) {
						fail("readdir %s: %d entries, %v; host %d, %v", p, len(got), err, len(want), herr)
					}
				default: // exec
					ops[3].Add(1)
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					out, err := exec.CommandContext(ctx, "chroot", v.dir, "/usr/bin/ls", "/usr/bin/true").CombinedOutput()
					cancel()
					if err != nil || strings.TrimSpace(string(out)) != "/usr/bin/true" {
						fail("exec ls in the view: %v %q", err, out)
					}
				}
				if w == 0 && rnd.Intn(50) == 0 {
					if r := stressRSS(t, v.pid); r > peak.Load() {
						peak.Store(r)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	end := stressRSS(t, v.pid)
	t.Logf("%v soak: %d lookups, %d reads, %d readdirs, %d execs; daemon RSS %.1f MiB after warm-up, peak %.1f MiB, %.1f MiB at the end",
		d, ops[0].Load(), ops[1].Load(), ops[2].Load(), ops[3].Load(),
		float64(warm)/(1<<20), float64(peak.Load())/(1<<20), float64(end)/(1<<20))
	if len(errs) > 0 {
		t.Fatalf("soak errors (want none): %s", strings.Join(errs, "\n"))
	}
	// Flat: within 25% or 8 MiB of the warmed-up size, whichever is more;
	// the Go heap may grow once to its steady-state goal, a leak keeps going.
	limit := warm + max(warm/4, 8<<20)
	if end > limit || peak.Load() > limit {
		t.Fatalf("daemon RSS grew after warm-up: %d -> peak %d, end %d bytes (limit %d)", warm, peak.Load(), end, limit)
	}
	if !stressAlive(v.pid) {
		t.Fatal("daemon died")
	}
}

// stressOpenAt opens p (absolute, possibly longer than PATH_MAX once
// prefixed by root) below root one component at a time, following no
// symlink.
func stressOpenAt(root, p string, flags int) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	comps := strings.Split(strings.Trim(p, "/"), "/")
	for i, c := range comps {
		fl := unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(comps)-1 {
			fl = flags | unix.O_NOFOLLOW | unix.O_CLOEXEC
		}
		nfd, err := unix.Openat(fd, c, fl, 0)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("%s: component %q: %w", p, c, err)
		}
		fd = nfd
	}
	return fd, nil
}

// stressReadAt reads p below root through stressOpenAt.
func stressReadAt(root, p string) ([]byte, error) {
	fd, err := stressOpenAt(root, p, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return io.ReadAll(f)
}

// stressOddNames makes the round-trip fixture: names with a newline, a
// backslash, a quote, invalid UTF-8, unicode, and a file at PATH_MAX (4095
// bytes, the longest path open(2) takes), each holding its own name.
func stressOddNames(t *testing.T) (dir string, files []string) {
	dir = t.TempDir()
	for _, name := range []string{
		"new\nline", "back\\slash", "quote\"d", " lead and trail ", "bad\xff\xfeutf8",
		"ünïcødé-日本語-🙂", "tab\there", "ctrl\x01\x7f",
	} {
		p := filepath.Join(dir, "odd", name)
		writeFile(t, p, p, 0o644)
		files = append(files, p)
	}
	// Components of at most 255 bytes (NAME_MAX) up to a 4095-byte path.
	long := filepath.Join(dir, "long")
	for {
		rest := 4095 - len(long) - 1
		if rest <= 255 {
			long += "/" + strings.Repeat("f", rest)
			break
		}
		long += "/" + strings.Repeat("d", min(255, rest-2))
	}
	if len(long) != 4095 {
		t.Fatalf("long path is %d bytes, want 4095", len(long))
	}
	writeFile(t, long, "PATH_MAX", 0o644)
	return dir, append(files, long)
}

// TestStressPathRoundTrip (issue 7.6): paths at PATH_MAX, names with
// newlines, invalid UTF-8 and unicode round-trip through the spec, the
// view, freeze and tar.
func TestStressPathRoundTrip(t *testing.T) {
	requireFUSE(t)
	dir, files := stressOddNames(t)
	want := map[string]string{}
	s := spec.New()
	for _, f := range files {
		c := f
		if strings.HasSuffix(f, "fff") {
			c = "PATH_MAX"
		}
		want[f] = c
		s.AddPath(f)
	}
	// An odd-named "/**" entry too: its files come from the host walk.
	oddDir := filepath.Join(dir, "sub\nwith ünï\xff")
	writeFile(t, filepath.Join(oddDir, "in\nside"), "inside", 0o644)
	want[filepath.Join(oddDir, "in\nside")] = "inside"
	s.Add(spec.Entry{Path: oddDir, Subtree: true})

	// The spec.
	sp := filepath.Join(t.TempDir(), "odd.spec")
	if err := s.WriteFile(sp); err != nil {
		t.Fatal(err)
	}
	back, err := spec.ParseFile(sp)
	if err != nil {
		t.Fatalf("parsing the written spec: %v", err)
	}
	if fmt.Sprint(back.Entries) != fmt.Sprint(s.Entries) {
		t.Fatalf("spec round trip:\n got %q\nwant %q", back.Entries, s.Entries)
	}
	raw, _ := os.ReadFile(sp)
	if got := bytes.Count(raw, []byte("\n")); got != len(s.Entries) {
		t.Fatalf("spec has %d lines for %d entries: a name's newline leaked", got, len(s.Entries))
	}

	check := func(where, root string) {
		t.Helper()
		for p, c := range want {
			got, err := stressReadAt(root, p)
			if err != nil || string(got) != c {
				t.Errorf("%s: %q = %q, %v; want %q", where, p, got, err, c)
			}
		}
		// Listing the odd directory gives exactly the odd names.
		fd, err := stressOpenAt(root, filepath.Join(dir, "odd"), unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			t.Errorf("%s: opening odd/: %v", where, err)
			return
		}
		f := os.NewFile(uintptr(fd), "odd")
		names, err := f.Readdirnames(-1)
		f.Close()
		sort.Strings(names)
		var wantNames []string
		for _, p := range files[:len(files)-1] {
			wantNames = append(wantNames, filepath.Base(p))
		}
		sort.Strings(wantNames)
		if err != nil || fmt.Sprint(names) != fmt.Sprint(wantNames) {
			t.Errorf("%s: odd/ lists %q, %v; want %q", where, names, err, wantNames)
		}
	}

	// The view.
	v := mountStart(t, sp)
	check("view", v.dir)

	// Freeze to a directory.
	out := filepath.Join(t.TempDir(), "frozen")
	if r := runVzfs(t, "freeze", "--no-resolve", sp, out); r.code != 0 {
		t.Fatalf("freeze: exit %d %s", r.code, r.stderr)
	}
	check("freeze", out)

	// Freeze to tar: every name comes back byte for byte.
	tf := filepath.Join(t.TempDir(), "odd.tar")
	if r := runVzfs(t, "freeze", "--no-resolve", "--tar", tf, sp); r.code != 0 {
		t.Fatalf("freeze --tar: exit %d %s", r.code, r.stderr)
	}
	fh, err := os.Open(tf)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	got := map[string]string{}
	tr := tar.NewReader(bufio.NewReader(fh))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the tar: %v", err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			got["/"+strings.TrimPrefix(h.Name, "./")] = string(b)
		}
	}
	for p, c := range want {
		if got[p] != c {
			t.Errorf("tar: %q = %q, want %q", p, got[p], c)
		}
	}
}

// stressScaleSpec makes n entries as hard links of one file, 1000 per
// directory, and a spec listing them.
func stressScaleSpec(t *testing.T, n int) string {
	base := t.TempDir()
	var sb bytes.Buffer
	const perDir = 1000
	for d := 0; d*perDir < n; d++ {
		dir := filepath.Join(base, fmt.Sprintf("d%04d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(dir, "f0000")
		if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&sb, src)
		for i := 1; i < perDir && d*perDir+i < n; i++ {
			p := filepath.Join(dir, fmt.Sprintf("f%04d", i))
			if err := unix.Link(src, p); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&sb, p)
		}
	}
	sp := filepath.Join(t.TempDir(), "scale.spec")
	if err := os.WriteFile(sp, sb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestStressScale (issue 7.6): a spec of 1,000,000 entries (VZFS_SCALE
// overrides) parses, mounts and serves every entry. It reports the time
// from `vzfs mount` to the first answered lookup, with an in-process
// breakdown (parse, tree, mount, first lookup), and the daemon's resident
// memory per entry at rest (after mount and one lookup) and after every
// entry was looked up, against the daemon of a one-entry spec. The goals
// (< 2 s; <= 150 and <= 700 B/entry) are reported as met or missed, not
// asserted: they are the fs package's optimisation targets. With
// VZFS_STRESS_OUT=DIR the numbers also go to DIR/scale.tsv for
// BENCHMARKS.md. Only in `make stress` (VZFS_STRESS=long): making a
// million hard links takes a while.
func TestStressScale(t *testing.T) {
	requireFUSE(t)
	// make test runs the same path at 50,000 entries: every entry must
	// parse, mount and answer; make stress measures at a million.
	n := 50_000
	if stressLong() {
		n = 1_000_000
	}
	if v, err := strconv.Atoi(os.Getenv("VZFS_SCALE")); err == nil && v > 0 {
		n = v
	}
	made := time.Now()
	sp := stressScaleSpec(t, n)
	t.Logf("made %d entries in %v", n, time.Since(made))

	// The breakdown, in this process.
	start := time.Now()
	s, err := spec.ParseFile(sp)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != n {
		t.Fatalf("parsed %d entries, want %d", s.Len(), n)
	}
	tParse := time.Since(start)
	tr, err := vfs.NewTree(s, vfs.TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s = nil
	tTree := time.Since(start)
	mnt := t.TempDir()
	srv, err := vfs.Mount(mnt, tr, vfs.MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tMount := time.Since(start)
	var st unix.Stat_t
	deep := filepath.Join(mnt, tr.Path(vfs.Node(tr.Len()-1)))
	if err := unix.Lstat(deep, &st); err != nil {
		t.Fatal(err)
	}
	tFirst := time.Since(start)
	if err := srv.Unmount(); err != nil {
		_ = vfs.Unmount(mnt, true)
		t.Fatal(err)
	}
	tr = nil
	runtime.GC()

	// The binary: a one-entry daemon for the baseline, then the big one.
	tiny := filepath.Join(t.TempDir(), "tiny.spec")
	writeFile(t, tiny, "/usr/bin/true\n", 0o644)
	tv := mountStart(t, tiny)
	if err := unix.Lstat(filepath.Join(tv.dir, "usr/bin/true"), &st); err != nil {
		t.Fatal(err)
	}
	base := stressRSS(t, tv.pid)

	start = time.Now()
	v := mountStart(t, sp)
	if err := unix.Lstat(filepath.Join(v.dir, strings.TrimPrefix(deep, mnt)), &st); err != nil {
		t.Fatalf("first lookup: %v", err)
	}
	tBinary := time.Since(start)
	time.Sleep(500 * time.Millisecond) // let the daemon's post-mount GC settle
	atRest := stressRSS(t, v.pid)

	// Every entry, through the mount.
	f, err := os.Open(sp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	walkStart := time.Now()
	sc := bufio.NewScanner(f)
	looked := 0
	for sc.Scan() {
		if err := unix.Lstat(filepath.Join(v.dir, sc.Text()), &st); err != nil {
			t.Fatalf("lookup %s: %v", sc.Text(), err)
		}
		looked++
	}
	tWalk := time.Since(walkStart)
	walked := stressRSS(t, v.pid)
	if looked != n {
		t.Fatalf("looked up %d of %d", looked, n)
	}

	per := func(b uint64) float64 { return float64(int64(b)-int64(base)) / float64(n) }
	mark := func(ok bool) string {
		if n < 1_000_000 {
			// Fixed heap overhead dominates small specs: the goals are
			// for a million entries.
			return "goal is for 1,000,000 entries: make stress"
		}
		if ok {
			return "met"
		}
		return "MISSED"
	}
	t.Logf("%d entries, in-process: parse %v, +tree %v (%v), +mount %v (%v), +first lookup %v (%v)",
		n, tParse, tTree, tTree-tParse, tMount, tMount-tTree, tFirst, tFirst-tMount)
	t.Logf("vzfs mount to first answered lookup: %v (goal < 2s: %s)", tBinary, mark(tBinary < 2*time.Second))
	t.Logf("daemon RSS: one-entry baseline %.1f MiB; at rest %.1f MiB = %.0f B/entry (goal <= 150: %s); after %d lookups in %v %.1f MiB = %.0f B/entry (goal <= 700: %s)",
		float64(base)/(1<<20), float64(atRest)/(1<<20), per(atRest), mark(per(atRest) <= 150),
		n, tWalk, float64(walked)/(1<<20), per(walked), mark(per(walked) <= 700))
	if dir := os.Getenv("VZFS_STRESS_OUT"); dir != "" {
		var b strings.Builder
		fmt.Fprintf(&b, "# title: scale: a %d-entry spec (issue 7, make stress)\n# baseline: go-fuse loopback\n", n)
		fmt.Fprintf(&b, "# note: TestStressScale. Parse, tree, mount and first lookup are in-process; the first row is the vzfs binary. RSS is the daemon's, less a one-entry daemon's; the loopback figure was measured walking 150,000 entries of /usr.\n")
		row := func(name, cmd string, v float64, unit, goal string, ok bool) {
			met := ""
			if goal != "" {
				met = strings.ToLower(mark(ok))
			}
			fmt.Fprintf(&b, "%s\t%s\t%g\t%s\t%s\t%s\n", name, cmd, v, unit, goal, met)
		}
		row("mount to first lookup", "vzfs", tBinary.Seconds(), "s", "< 2 s", tBinary < 2*time.Second)
		row("parse", "vzfs", tParse.Seconds(), "s", "", true)
		row("tree", "vzfs", (tTree - tParse).Seconds(), "s", "", true)
		row("mount", "vzfs", (tMount - tTree).Seconds(), "s", "", true)
		row("first lookup", "vzfs", (tFirst - tMount).Seconds(), "s", "", true)
		row("RSS per entry at rest", "vzfs", per(atRest), "B", "<= 150 B", per(atRest) <= 150)
		row("RSS per entry, all looked up", "vzfs", per(walked), "B", "<= 700 B", per(walked) <= 700)
		row("RSS per entry, all looked up", "go-fuse loopback", 864, "B", "", true)
		if err := os.WriteFile(filepath.Join(dir, "scale.tsv"), []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
