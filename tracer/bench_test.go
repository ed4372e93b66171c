package tracer

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkParse parses the recorded logs in testdata, as Run does while
// the command runs; allocations per line are what it watches.
func BenchmarkParse(b *testing.B) {
	names, err := filepath.Glob(filepath.Join("testdata", "*.log"))
	if err != nil || len(names) == 0 {
		b.Fatalf("no logs in testdata: %v", err)
	}
	var logs [][]byte
	size := 0
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			b.Fatal(err)
		}
		logs = append(logs, data)
		size += len(data)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		for _, data := range logs {
			if _, err := Parse(bytes.NewReader(data), ParseOptions{Cwd: "/w"}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
