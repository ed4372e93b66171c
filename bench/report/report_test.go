package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleTSV = "# title: mount: the view\n# baseline: native\n# note: one run\n" +
	"python\tnative\t0.040\ts\t\t\n" +
	"python\tvzfs\t0.050\ts\t<= 1.15x native\tmissed\n" +
	"python\tbindfs\t0.080\ts\t\t\n" +
	"read | pipe\tnative\t0.5\ts\n" +
	"read | pipe\tvzfs\t0.25\ts\t>= 95%\tmet\n"

func TestReport(t *testing.T) {
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "mount.tsv"), []byte(sampleTSV), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "trace.md"), []byte("## trace\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	md, svg := filepath.Join(out, "B.md"), filepath.Join(out, "r.svg")
	if err := run(out, md, svg, []string{"trace", "mount"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(md)
	got := string(b)
	for _, want := range []string{
		"cores",
		"## trace\n\n| a | b |", // verbatim, its heading replaced
		"## mount: the view\n\none run",
		"| row | native | vzfs | bindfs | vzfs / native | bindfs / native | goal |",
		"| python | 40.0 ms | 50.0 ms | 80.0 ms | 1.25x | 2.00x | vzfs <= 1.15x native: **missed** |",
		"| read \\| pipe | 500.0 ms | 250.0 ms |  | 0.50x |  | vzfs >= 95%: met |",
		"![ratios to the baseline, log scale](r.svg)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "## trace") > strings.Index(got, "## mount") {
		t.Error("areas not in the asked order")
	}
	// The chart is well-formed XML with one bar per non-baseline ratio.
	s, _ := os.ReadFile(svg)
	d := xml.NewDecoder(bytes.NewReader(s))
	rects := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("svg: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects != 1+3 { // the background and vzfs, bindfs, vzfs
		t.Errorf("svg has %d rects, want 4", rects)
	}
	if !bytes.Contains(s, []byte("#d1495b")) || !bytes.Contains(s, []byte("#2a9d4b")) {
		t.Error("svg lacks a missed (red) or met (green) bar")
	}
}

func TestParseTSVErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"row\tcmd\n", "f.tsv:1: want ROW, COMMAND, VALUE"},
		{"# x\nrow\tcmd\tfast\n", "f.tsv:2: value \"fast\" is not a number"},
		{"row\tcmd\tNaN\n", "f.tsv:1: value \"NaN\""},
		{"# only comments\n", "f.tsv: no measurements"},
		{strings.Repeat("x", 70<<10), "f.tsv: bufio.Scanner: token too long"},
	} {
		a := &area{byRow: map[string][]measure{}}
		err := parseTSV(strings.NewReader(c.in), "f.tsv", a)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseTSV(%.20q) = %v, want %q", c.in, err, c.want)
		}
	}
}

func TestRunNothing(t *testing.T) {
	out := t.TempDir()
	if err := run(out, filepath.Join(out, "B.md"), filepath.Join(out, "r.svg"), []string{"mount"}); err == nil || !strings.Contains(err.Error(), "no results in") {
		t.Fatalf("run on an empty dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "B.md")); err == nil {
		t.Fatal("a failed run wrote the report")
	}
}

// FuzzParseTSV: any input parses or fails with an error naming the file;
// what parses renders to a table and a well-formed chart without panicking.
func FuzzParseTSV(f *testing.F) {
	f.Add([]byte(sampleTSV))
	f.Add([]byte("a\tb\t1e308\tB\tg\tmet\na\tc\t-1\n"))
	f.Add([]byte("# baseline:\nr\t\t0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a := &area{name: "f", byRow: map[string][]measure{}}
		if err := parseTSV(bytes.NewReader(b), "f.tsv", a); err != nil {
			if !strings.HasPrefix(err.Error(), "f.tsv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		var md, svg bytes.Buffer
		if err := writeMarkdown(&md, []*area{a}, "B.md", "r.svg"); err != nil {
			t.Fatal(err)
		}
		if err := writeSVG(&svg, []*area{a}); err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(&svg)
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("svg not well-formed: %v", err)
			}
		}
	})
}
