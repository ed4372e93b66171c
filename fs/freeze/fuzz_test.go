package freeze

import (
	"strings"
	"testing"
)

func FuzzParseMtime(f *testing.F) {
	for _, s := range []string{"@0", "@1700000000", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.5+01:00", "@", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseMtime(s)
		if err != nil {
			return
		}
		if tm.Unix() < 0 {
			t.Errorf("ParseMtime(%q) = %v, before the epoch", s, tm)
		}
		if strings.HasPrefix(s, "@") {
			again, err := ParseMtime("@" + strings.TrimLeft(s[1:], "0"))
			if s[1:] != strings.Repeat("0", len(s)-1) && (err != nil || !again.Equal(tm)) {
				t.Errorf("leading zeros change %q", s)
			}
		}
	})
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"/bin/ls -l", `["/bin/sh","-c","x"]`, "[", `[1]`, "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv, err := ParseCommand(s)
		if err != nil {
			return
		}
		if len(argv) == 0 || argv[0] == "" {
			t.Errorf("ParseCommand(%q) = %q: empty command accepted", s, argv)
		}
		for _, a := range argv {
			if strings.IndexByte(a, 0) >= 0 {
				t.Errorf("ParseCommand(%q): NUL in %q", s, a)
			}
		}
	})
}

func FuzzTarName(f *testing.F) {
	for _, s := range []string{"/usr/bin/ls", "/", "/a/../b", "a", "/a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := tarName(s)
		if err != nil {
			return
		}
		if n == "" || strings.HasPrefix(n, "/") || strings.Contains("/"+n+"/", "/../") || strings.Contains("/"+n+"/", "/./") || strings.Contains(n, "//") {
			t.Errorf("tarName(%q) = %q: unsafe name accepted", s, n)
		}
	})
}
