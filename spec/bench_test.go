package spec

import (
	"bytes"
	"fmt"
	"testing"
)

// benchSpec is a sorted spec of n paths shaped like a real tree.
func benchSpec(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "/usr/share/vzfs-bench/d%04d/file-%07d.txt\n", i/1000, i)
	}
	return b.Bytes()
}

func BenchmarkParse1M(b *testing.B) {
	data := benchSpec(1_000_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := Parse(bytes.NewReader(data))
		if err != nil || s.Len() != 1_000_000 {
			b.Fatal(err, s.Len())
		}
	}
}
