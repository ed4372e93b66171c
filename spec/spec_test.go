package spec

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	in := `# a comment
/usr/bin/ls

  /etc/passwd  
/usr/lib/python3.11/**
/usr/bin/ls
"/tmp/with\nnewline"
"/odd/ lead"
"/quoted/sub/**"
/**
/
`
	s, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Path: "/"},
		{Path: "/", Subtree: true},
		{Path: "/etc/passwd"},
		{Path: "/odd/ lead"},
		{Path: "/quoted/sub", Subtree: true},
		{Path: "/tmp/with\nnewline"},
		{Path: "/usr/bin/ls"},
		{Path: "/usr/lib/python3.11", Subtree: true},
	}
	if len(s.Entries) != len(want) {
		t.Fatalf("got %d entries %q, want %d", len(s.Entries), s.Entries, len(want))
	}
	for i := range want {
		if s.Entries[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, s.Entries[i], want[i])
		}
	}
	if s.Torn != 0 {
		t.Errorf("Torn = %d, want 0", s.Torn)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		line int
		msg  string
	}{
		{"/ok\nrelative/path\n", 2, "relative"},
		{"/a/./b\n", 1, `"." component`},
		{"/a/../b\n", 1, `".." component`},
		{"/a//b\n", 1, "empty component"},
		{"/a/b/\n", 1, "trailing slash"},
		{"/a\x00b\n", 1, "NUL"},
		{"\"\"\n", 1, "empty quoted"},
		{"\"/unterminated\n", 1, "bad quoted"},
		{"# c\n\n\"rel\"\n", 3, "relative"},
		{"/" + strings.Repeat("x", MaxLineLen+10) + "\n", 1, "longer than"},
	} {
		_, err := Parse(strings.NewReader(tc.in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%.40q) error = %v, want *ParseError", tc.in, err)
			continue
		}
		if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("Parse(%.40q) = line %d %q, want line %d containing %q", tc.in, pe.Line, pe.Msg, tc.line, tc.msg)
		}
	}
}

func TestParseFileNamesFileAndLine(t *testing.T) {
	name := filepath.Join(t.TempDir(), "app.spec")
	if err := os.WriteFile(name, []byte("/ok\n/also/ok\nbad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(name)
	if err == nil || !strings.HasPrefix(err.Error(), name+":3: ") {
		t.Fatalf("error = %v, want prefix %q", err, name+":3: ")
	}
}

func TestParseFileRejectsFIFO(t *testing.T) {
	name := filepath.Join(t.TempDir(), "fifo.spec")
	if err := syscall.Mkfifo(name, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	// No writer ever comes: a plain open would block forever.
	done := make(chan error, 1)
	go func() { _, err := ParseFile(name); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("error = %v, want 'not a regular file'", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ParseFile hangs on a FIFO")
	}
}

func TestStarStarFileIsRefused(t *testing.T) {
	// A plain entry for a file named "**" would be written as a subtree
	// line; Write refuses it, and Parse never makes one.
	var buf bytes.Buffer
	if err := New(Entry{Path: "/etc/**"}).Write(&buf); err == nil {
		t.Fatalf("Write accepted a file named **: %q", buf.String())
	}
	if err := Validate("/a/**/b"); err != nil {
		t.Errorf("a middle ** component is a plain name: %v", err)
	}
	s, err := Parse(strings.NewReader("/etc/**\n"))
	if err != nil || !s.Has(Entry{Path: "/etc", Subtree: true}) {
		t.Fatalf("'/etc/**' = %+v, %v; want the subtree of /etc", s, err)
	}
	if _, err := Parse(strings.NewReader("/etc/**/**\n")); err == nil {
		t.Fatal("'/etc/**/**' accepted: it names a subtree below a file named **")
	}
}

func TestTornFinalLine(t *testing.T) {
	// A valid unterminated last line is kept: hand-written files often
	// lack the final newline.
	s, err := Parse(strings.NewReader("/a\n/b"))
	if err != nil || s.Len() != 2 || s.Torn != 0 {
		t.Fatalf("got %v %+v, want 2 entries and no torn line", err, s)
	}
	// An invalid unterminated last line is a write cut short: dropped and
	// reported, not an error.
	s, err = Parse(strings.NewReader("/a\n/b\n\"/c\\"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.Torn != 3 {
		t.Fatalf("got %d entries, Torn=%d; want 2 entries, Torn=3", s.Len(), s.Torn)
	}
	// The same bad line with a newline is a real error.
	if _, err := Parse(strings.NewReader("/a\n\"/c\\\n")); err == nil {
		t.Fatal("terminated bad line accepted")
	}
}

func TestRoundTrip(t *testing.T) {
	paths := []string{
		"/plain", "/with space inside", "/ lead", "/trail ", "/new\nline", "/back\\slash",
		"/tab\there", "/unicode/été/日本", "/bad\xffutf8", "/hash#mark", "/\"quote",
		"/" + strings.Repeat("p", 4000),
	}
	s := &Spec{}
	for _, p := range paths {
		s.AddPath(p)
		s.Add(Entry{Path: p, Subtree: true})
	}
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := Parse(&buf)
	if err != nil {
		t.Fatalf("parse of written spec: %v\n%s", err, buf.String())
	}
	if len(got.Entries) != len(s.Entries) {
		t.Fatalf("round trip: %d entries, want %d", len(got.Entries), len(s.Entries))
	}
	for i := range s.Entries {
		if got.Entries[i] != s.Entries[i] {
			t.Errorf("entry %d: got %q, want %q", i, got.Entries[i], s.Entries[i])
		}
	}
}

func TestWriteIsSortedAndQuotesOnlyWhenNeeded(t *testing.T) {
	s := New(Entry{Path: "/b"}, Entry{Path: "/a/**"[:2], Subtree: true}, Entry{Path: "/a"}, Entry{Path: "/b"}, Entry{Path: "/c d"}, Entry{Path: "/x\ny"})
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	want := "/a\n/a/**\n/b\n/c d\n\"/x\\ny\"\n"
	if buf.String() != want {
		t.Fatalf("Write = %q, want %q", buf.String(), want)
	}
}

func TestCovers(t *testing.T) {
	s := New(Entry{Path: "/usr/lib/python3", Subtree: true}, Entry{Path: "/etc/passwd"})
	for p, want := range map[string]bool{
		"/usr/lib/python3":         true,
		"/usr/lib/python3/json/x":  true,
		"/usr/lib/python30":        false,
		"/usr/lib":                 false,
		"/etc/passwd":              true,
		"/etc/passwd/x":            false,
		"/etc":                     false,
		"/usr/lib/python3/../../x": true, // lexical only: callers pass clean paths
	} {
		if got := s.Covers(p); got != want {
			t.Errorf("Covers(%q) = %v, want %v", p, got, want)
		}
	}
	if !New(Entry{Path: "/", Subtree: true}).Covers("/anything/at/all") {
		t.Error("/** does not cover everything")
	}
}

func TestMergeAndAdd(t *testing.T) {
	a := New(Entry{Path: "/z"}, Entry{Path: "/a"})
	b := New(Entry{Path: "/m"}, Entry{Path: "/a"})
	a.Merge(b)
	a.AddPath("/b")
	a.AddPath("/b")
	if got := strings.Join(a.Paths(), ","); got != "/a,/b,/m,/z" {
		t.Fatalf("Paths = %s", got)
	}
}

func TestWriteFileAtomicKeepsModeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "x.spec")
	if err := os.WriteFile(name, []byte("/old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New(Entry{Path: "/new"}).WriteFile(name); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(name)
	if string(data) != "/new\n" {
		t.Fatalf("content %q", data)
	}
	fi, _ := os.Stat(name)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d files, want 1 (temp file left?)", len(ents))
	}
	// A failing writer leaves the old file and no temp file.
	err := WriteFileAtomic(name, func(w io.Writer) error { return errors.New("boom") })
	if err == nil {
		t.Fatal("error not returned")
	}
	data, _ = os.ReadFile(name)
	ents, _ = os.ReadDir(dir)
	if string(data) != "/new\n" || len(ents) != 1 {
		t.Fatalf("after failed write: content %q, %d files", data, len(ents))
	}
}

func TestAppenderRepairsTornLine(t *testing.T) {
	name := filepath.Join(t.TempDir(), "learn.spec")
	if err := os.WriteFile(name, []byte("/a\n/tor"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := OpenAppender(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/b", "/new\nline"} {
		if err := a.Append(Entry{Path: p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := ParseFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Paths(), ","); got != "/a,/b,/new\nline,/tor" {
		t.Fatalf("Paths = %q", got)
	}
}

func TestMergeFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "m.spec")
	// A missing file is created.
	if err := MergeFile(name, New(Entry{Path: "/b"})); err != nil {
		t.Fatal(err)
	}
	if err := MergeFile(name, New(Entry{Path: "/a"}, Entry{Path: "/b"})); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(name)
	if string(data) != "/a\n/b\n" {
		t.Fatalf("merged file %q", data)
	}
	// A broken file is an error naming it, and is left alone.
	if err := os.WriteFile(name, []byte("/a\nrel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MergeFile(name, New(Entry{Path: "/c"})); err == nil || !strings.Contains(err.Error(), name+":2:") {
		t.Fatalf("error = %v, want one naming %s:2", err, name)
	}
	if data, _ := os.ReadFile(name); string(data) != "/a\nrel\n" {
		t.Fatalf("broken file rewritten: %q", data)
	}
}
