package fs

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/vzfs/vzfs/spec"
)

// FuzzMountinfo feeds hostile mountinfo text (mountpoints are names users
// choose) to the parser: no panic, and a found mount names the point asked.
func FuzzMountinfo(f *testing.F) {
	f.Add("36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - fuse.vzfs /x.spec ro\n", "/mnt/a b")
	f.Add("1 0 0:1 / / rw - ext4 /dev/vda rw\n", "/")
	f.Add("x\n\\\\\\\n- - - -\n", "/")
	f.Fuzz(func(t *testing.T, text, point string) {
		m, ok := parseMountinfo(strings.NewReader(text), point)
		if ok && m.Point != point {
			t.Fatalf("found %+v for %q", m, point)
		}
		_ = unescapeMountinfo(text)
	})
}

// FuzzTree builds trees from fuzzed specs (missing entries skipped) and
// checks the model's invariants: children sorted and unique, every node's
// path looks up to the node, parents agree.
func FuzzTree(f *testing.F) {
	f.Add([]byte("/usr/bin/ls\n/etc/passwd\n/usr/lib/**\n"))
	f.Add([]byte("/proc/self\n/proc/self/exe\n/dev/null\n/\n/**\n"))
	f.Add([]byte("\"/tmp/a\\nb\"\n/nonexistent/x\n/etc\n/etc/hostname\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := spec.Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(s.Entries) > 200 {
			return
		}
		tr, err := NewTree(s, TreeOptions{SkipMissing: true, Jobs: 1})
		if err != nil {
			return
		}
		for i := 0; i < tr.Len(); i++ {
			n := Node(i)
			p := tr.Path(n)
			got, rest, ok := tr.Lookup(p)
			if !ok || got != n || rest != "" {
				t.Fatalf("Lookup(Path(%d)=%q) = %d %q %v", n, p, got, rest, ok)
			}
			kids := tr.Children(n)
			names := make([]string, len(kids))
			for j, k := range kids {
				names[j] = tr.Name(k)
				if tr.Parent(k) != n {
					t.Fatalf("child %d of %d has parent %d", k, n, tr.Parent(k))
				}
			}
			if !sort.StringsAreSorted(names) {
				t.Fatalf("children of %q not sorted: %q", p, names)
			}
			for j := 1; j < len(names); j++ {
				if names[j] == names[j-1] {
					t.Fatalf("duplicate child %q in %q", names[j], p)
				}
			}
		}
	})
}
