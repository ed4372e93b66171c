package tracer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary logs to the parser: it must not panic, must
// return only clean absolute paths, and must keep its lists sorted.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"handmade.log", "thread.log"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, log string) {
		tr, err := Parse(strings.NewReader(log), ParseOptions{Cwd: "/w"})
		if err != nil {
			t.Fatal(err)
		}
		for _, list := range [][]string{tr.Paths, tr.Misses, tr.Execs, tr.Created} {
			for i, p := range list {
				if p == "" || p[0] != '/' || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") ||
					strings.Contains(p, "//") || strings.IndexByte(p, 0) >= 0 {
					t.Fatalf("bad path %q", p)
				}
				if i > 0 && list[i-1] >= p {
					t.Fatalf("not sorted and unique: %q then %q", list[i-1], p)
				}
			}
		}
	})
}
