package spec

import (
	"bytes"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts
// survives a Write/Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/usr/bin/ls\n", "# c\n\n/a/**\n", "\"/x\\ny\"\n", "/a\n/b", "/a\n\"/c\\", "rel\n", "/a/../b\n", "\"\"\n", "/**\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := s.Write(&buf); err != nil {
			t.Fatal(err)
		}
		s2, err := Parse(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", buf.Bytes(), err)
		}
		if len(s2.Entries) != len(s.Entries) {
			t.Fatalf("round trip changed %d entries to %d", len(s.Entries), len(s2.Entries))
		}
		for i := range s.Entries {
			if s.Entries[i] != s2.Entries[i] {
				t.Fatalf("entry %d: %q became %q", i, s.Entries[i], s2.Entries[i])
			}
			if err := Validate(s.Entries[i].Path); err != nil {
				t.Fatalf("accepted invalid path: %v", err)
			}
		}
	})
}
