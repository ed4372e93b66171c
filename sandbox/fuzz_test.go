package sandbox

import (
	"strings"
	"testing"

	"github.com/vzfs/vzfs/spec"
)

// The --bind, --user and --env parsers take the user's command line, and
// parseStatus takes what a possibly crashed init wrote: none may panic,
// and what they accept must be what the sandbox relies on.

func FuzzParseBind(f *testing.F) {
	for _, s := range []string{"/a", "/a:/b", "/a:/b:ro", "/a:ro", "rel", "/a::ro", "/a:/proc", ":::", "/a:/b/../c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBind(s)
		if err != nil {
			return
		}
		if spec.Validate(b.Dst) != nil || b.Dst == "/" || spec.Validate(b.Src) != nil {
			t.Fatalf("ParseBind(%q) accepted %+v", s, b)
		}
		for _, m := range kernelDirs {
			if b.Dst == m || strings.HasPrefix(b.Dst, m+"/") {
				t.Fatalf("ParseBind(%q) binds into %s", s, m)
			}
		}
	})
}

func FuzzParseUser(f *testing.F) {
	for _, s := range []string{"0", "65534", "1000:100", "x", ":", "4294967295"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUser(s)
		if err != nil {
			return
		}
		if u.Uid == 1<<32-1 || u.Gid == 1<<32-1 {
			t.Fatalf("ParseUser(%q) accepted the reserved id: %+v", s, u)
		}
	})
}

func FuzzParseEnv(f *testing.F) {
	for _, s := range []string{"K=V", "K", "=V", "", "A=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kv, ok, err := ParseEnv(s, func(string) (string, bool) { return "v", true })
		if err != nil || !ok {
			return
		}
		k, _, has := strings.Cut(kv, "=")
		if k == "" || !has || strings.IndexByte(kv, 0) >= 0 {
			t.Fatalf("ParseEnv(%q) = %q", s, kv)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"OK\nEXIT 0\n", "ERR 2\nmsg\nhint\n", "ERR\n", "EXIT 999", "OK"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st := parseStatus(b)
		if st.exited && (st.code < 0 || st.code > 255) {
			t.Fatalf("exit code %d out of range", st.code)
		}
		if st.err != nil && (st.err.Code < 1 || st.err.Code > 255) {
			t.Fatalf("error code %d out of range", st.err.Code)
		}
	})
}
