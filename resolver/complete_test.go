package resolver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vzfs/vzfs/spec"
)

func TestCompleteAddsClosureOnce(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "data")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := spec.New(spec.Entry{Path: "/usr/bin/true"}, spec.Entry{Path: sub, Subtree: true})
	added, res, err := r.Complete(s)
	if err != nil || res.Err() != nil {
		t.Fatalf("Complete: %v, %v", err, res.Err())
	}
	if len(added) == 0 {
		t.Fatal("nothing added for /usr/bin/true: its libc and interpreter are missing")
	}
	for _, e := range added {
		if !s.Has(e) {
			t.Errorf("added %v but it is not in the spec", e)
		}
		if e.Path == "/usr/bin/true" || e.Path == filepath.Join(sub, "x") {
			t.Errorf("reported %s as added though the spec covered it", e.Path)
		}
	}
	if !s.Has(spec.Entry{Path: sub, Subtree: true}) {
		t.Error("the subtree entry is gone")
	}
	// A second pass adds no file: the closure is complete. It may name
	// directories that were only ancestors before (the targets of /lib64
	// and /lib, once those links are inputs themselves), which the view
	// and freeze make anyway.
	again, _, err := r.Complete(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range again {
		if fi, err := os.Lstat(e.Path); err != nil || !fi.IsDir() {
			t.Errorf("second Complete added %s, not a directory", e.Path)
		}
	}
}
