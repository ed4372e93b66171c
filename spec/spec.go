// Package spec reads and writes vzfs spec files.
//
// # Format
//
// A spec is a text file with one absolute host path per line:
//
//	# comments start with '#'; blank lines are ignored
//	/usr/bin/ls
//	/usr/lib/x86_64-linux-gnu/libc.so.6
//	/usr/lib/python3.11/**
//
// A line names exactly one entry: a file, a symlink or a directory itself.
// A directory line does not bring the directory's contents with it; a line
// ending in "/**" does, for the whole subtree below it. A symlink's target is
// a line of its own.
//
// A path that holds a newline, a backslash, a control character, invalid
// UTF-8 or a leading or trailing space is written as a Go-quoted string
// ("..."); the "/**" suffix then sits inside the quotes. Parse accepts both
// forms.
//
// Paths must be clean: absolute, no "." or ".." components, no empty
// components, no trailing slash and no NUL byte. Write emits entries sorted
// and unique with "\n" endings, so the same set of entries always gives the
// same bytes.
//
// # Appending
//
// Learn mode appends to a spec while it is in use, so a reader may see a final
// line without its newline. Parse keeps an unterminated final line that is
// valid and drops one that is not, recording its number in Spec.Torn instead
// of failing.
package spec

import (
	"slices"
	"sort"
	"strings"
)

// SubtreeSuffix marks a line that includes the whole subtree below a path.
const SubtreeSuffix = "/**"

// Entry is one line of a spec.
type Entry struct {
	// Path is the clean absolute host path the line names.
	Path string
	// Subtree is set for "/**" lines: Path and everything below it.
	Subtree bool
}

// String returns the entry as it is written in a spec file, quoted if needed.
func (e Entry) String() string { return formatLine(e) }

// Covers reports whether e includes path p: p is e's path, or e is a subtree
// entry and p lies below it.
func (e Entry) Covers(p string) bool {
	if p == e.Path {
		return true
	}
	if !e.Subtree {
		return false
	}
	if e.Path == "/" {
		return strings.HasPrefix(p, "/")
	}
	return strings.HasPrefix(p, e.Path) && len(p) > len(e.Path) && p[len(e.Path)] == '/'
}

// Spec is an ordered, deduplicated set of entries: everything a producer
// (resolver, tracer, learn mode) and a consumer (view, freeze) share.
//
// The zero value is an empty spec ready to use.
type Spec struct {
	// Entries holds the entries sorted by path, plain before subtree, with no
	// duplicates. Use Add and Merge to keep that true.
	Entries []Entry

	// Torn is the line number of an unterminated final line that did not
	// parse and was dropped (a write cut short), or 0.
	Torn int
}

// New returns a spec holding the given entries, sorted and deduplicated.
func New(entries ...Entry) *Spec {
	s := &Spec{}
	s.Add(entries...)
	return s
}

func compare(a, b Entry) int {
	if c := strings.Compare(a.Path, b.Path); c != 0 {
		return c
	}
	switch {
	case a.Subtree == b.Subtree:
		return 0
	case b.Subtree:
		return -1
	}
	return 1
}

func less(a, b Entry) bool {
	if a.Path != b.Path {
		return a.Path < b.Path
	}
	return !a.Subtree && b.Subtree
}

// Add inserts entries, keeping the spec sorted and unique. Entries must be
// valid; use Validate on untrusted input first.
func (s *Spec) Add(entries ...Entry) {
	if len(entries) == 0 {
		return
	}
	if len(entries) == 1 {
		e := entries[0]
		i := sort.Search(len(s.Entries), func(i int) bool { return !less(s.Entries[i], e) })
		if i < len(s.Entries) && s.Entries[i] == e {
			return
		}
		s.Entries = append(s.Entries, Entry{})
		copy(s.Entries[i+1:], s.Entries[i:])
		s.Entries[i] = e
		return
	}
	s.Entries = append(s.Entries, entries...)
	s.normalize()
}

// AddPath adds a plain entry for path p.
func (s *Spec) AddPath(p string) { s.Add(Entry{Path: p}) }

// Merge adds every entry of other to s.
func (s *Spec) Merge(other *Spec) {
	if other != nil {
		s.Add(other.Entries...)
	}
}

// Has reports whether the spec holds exactly entry e.
func (s *Spec) Has(e Entry) bool {
	i := sort.Search(len(s.Entries), func(i int) bool { return !less(s.Entries[i], e) })
	return i < len(s.Entries) && s.Entries[i] == e
}

// Covers reports whether some entry includes path p, either as itself or
// inside a subtree entry.
func (s *Spec) Covers(p string) bool {
	if s.Has(Entry{Path: p}) {
		return true
	}
	for d := p; ; {
		if s.Has(Entry{Path: d, Subtree: true}) {
			return true
		}
		if d == "/" {
			return false
		}
		d = parentDir(d)
	}
}

// Paths returns the entries' paths in order; subtree entries give their root.
func (s *Spec) Paths() []string {
	out := make([]string, len(s.Entries))
	for i, e := range s.Entries {
		out[i] = e.Path
	}
	return out
}

// Len returns the number of entries.
func (s *Spec) Len() int { return len(s.Entries) }

func (s *Spec) normalize() {
	// Specs are written sorted, so most parses arrive in order: check
	// before paying for a sort.
	if !slices.IsSortedFunc(s.Entries, compare) {
		slices.SortFunc(s.Entries, compare)
	}
	out := s.Entries[:0]
	for _, e := range s.Entries {
		if len(out) > 0 && e == out[len(out)-1] {
			continue
		}
		out = append(out, e)
	}
	s.Entries = out
}

func parentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}
