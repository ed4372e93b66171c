package fs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// TestScale measures a spec of VZFS_SCALE entries (say 100000 or 1000000):
// parse + tree + mount time to the first answered lookup, and resident
// memory per entry at rest and after every entry was looked up. It makes
// the entries as hard links (1000 per directory) under a temp dir, which
// takes a while, so it runs only when asked:
//
//	VZFS_SCALE=1000000 go test ./fs -run TestScale -v -timeout 30m
//
// VZFS_SCALE_SPEC=FILE measures an existing spec instead (its entries must
// exist); the walk then looks up every entry of the tree.
func TestScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("VZFS_SCALE"))
	specFile := os.Getenv("VZFS_SCALE_SPEC")
	if n <= 0 && specFile == "" {
		t.Skip("set VZFS_SCALE=N to measure an N-entry spec")
	}
	requireFUSE(t)
	if specFile == "" {
		specFile = makeScaleSpec(t, n)
	}
	settle := func() uint64 {
		runtime.GC()
		debug.FreeOSMemory()
		return rss(t)
	}
	before := settle()

	start := time.Now()
	s, err := spec.ParseFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	n = s.Len()
	parsed := time.Since(start)
	tr, err := NewTree(s, TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s = nil
	built := time.Since(start)
	mnt := t.TempDir()
	srv, err := Mount(mnt, tr, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Unmount(); err != nil {
			_ = Unmount(mnt, true)
		}
	}()
	var st unix.Stat_t
	must(t, unix.Stat(mnt, &st))
	first := time.Since(start)
	atRest := settle()

	// Look up every node through the mount.
	for i := 0; i < tr.Len(); i++ {
		p := filepath.Join(mnt, tr.Path(Node(i)))
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatalf("lookup %s: %v", p, err)
		}
	}
	walked := settle()
	per := func(b uint64) float64 { return float64(b) / float64(n) }
	t.Logf("%d entries: parse %v, +tree %v, +mount and first lookup %v (goal < 2s at 1M)", n, parsed, built, first)
	t.Logf("resident at rest: %.0f B/entry (goal <= 150); after looking up every entry: %.0f B/entry (goal <= 700)",
		per(atRest-before), per(walked-before))
	t.Logf("tree: %d nodes", tr.Len())
	runtime.KeepAlive(tr)
}

// makeScaleSpec makes n entries as hard links, 1000 per directory, and a
// spec listing them.
func makeScaleSpec(t *testing.T, n int) string {
	base := t.TempDir()
	var sb bytes.Buffer
	const perDir = 1000
	for d := 0; d*perDir < n; d++ {
		dir := filepath.Join(base, fmt.Sprintf("d%04d", d))
		must(t, os.Mkdir(dir, 0o755))
		src := filepath.Join(dir, "f0000")
		must(t, os.WriteFile(src, []byte("x"), 0o644))
		fmt.Fprintln(&sb, src)
		for i := 1; i < perDir && d*perDir+i < n; i++ {
			p := filepath.Join(dir, fmt.Sprintf("f%04d", i))
			must(t, unix.Link(src, p))
			fmt.Fprintln(&sb, p)
		}
	}
	specFile := filepath.Join(t.TempDir(), "big.spec")
	must(t, os.WriteFile(specFile, sb.Bytes(), 0o644))
	return specFile
}

// rss returns the process's resident set size in bytes.
func rss(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}
