package resolver

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// BenchmarkResolveUsrBin resolves every ELF executable in /usr/bin in one
// call with a fresh Resolver, as `vzfs ldd` does; see bench/ldd.sh.
func BenchmarkResolveUsrBin(b *testing.B) {
	ents, err := os.ReadDir("/usr/bin")
	if err != nil {
		b.Skip(err)
	}
	var files []string
	for _, e := range ents {
		p := filepath.Join("/usr/bin", e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		var m [4]byte
		if _, err := f.ReadAt(m[:], 0); err == nil && string(m[:]) == "\x7fELF" {
			files = append(files, p)
		}
		f.Close()
	}
	extras, _ := ParseExtras("")
	// As cmd/vzfs's ldd does for its short, allocation-light run.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	b.ReportAllocs()
	for b.Loop() {
		r, err := New(Options{With: extras})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Resolve(files...); err != nil {
			b.Fatal(err)
		}
	}
}
