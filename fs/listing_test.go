package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vzfs/vzfs/spec"
)

// TestMountLargeListing: directories take many READDIR requests to list
// (long names, thousands of entries), and with no OPENDIR the server
// serves each continuation by node. A "/**" directory and a tree
// directory both list whole and in order, twice (the second time from the
// kernel's cache), and from several readers at once.
func TestMountLargeListing(t *testing.T) {
	requireFUSE(t)
	d := t.TempDir()
	long := strings.Repeat("n", 150)
	var want []string
	s := spec.New()
	for _, sub := range []string{"whole", "listed"} {
		must(t, os.Mkdir(filepath.Join(d, sub), 0o755))
	}
	for i := 0; i < 2000; i++ {
		name := fmt.Sprintf("%s%05d", long, i)
		want = append(want, name)
		must(t, os.WriteFile(filepath.Join(d, "whole", name), nil, 0o644))
		p := filepath.Join(d, "listed", name)
		must(t, os.WriteFile(p, nil, 0o644))
		s.AddPath(p)
	}
	s.Add(spec.Entry{Path: filepath.Join(d, "whole"), Subtree: true})
	srv, _ := testMount(t, s, MountOptions{})

	list := func(dir string) error {
		f, err := os.Open(filepath.Join(srv.Mountpoint(), dir))
		if err != nil {
			return err
		}
		defer f.Close()
		// Small batches, so the reader resumes at many offsets.
		var got []string
		for {
			names, err := f.Readdirnames(7)
			got = append(got, names...)
			if err != nil || len(names) == 0 {
				break
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s lists %d names, want %d (first %q)", dir, len(got), len(want), got[:min(len(got), 1)])
		}
		return nil
	}
	for _, sub := range []string{"whole", "listed"} {
		dir := filepath.Join(d, sub)
		for round := 0; round < 2; round++ {
			if err := list(dir); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := list(dir); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}
