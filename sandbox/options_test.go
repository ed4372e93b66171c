package sandbox

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseBind(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in      string
		want    Bind
		wantErr string
	}{
		{in: "/src", want: Bind{Src: "/src", Dst: "/src"}},
		{in: "/src:/dst", want: Bind{Src: "/src", Dst: "/dst"}},
		{in: "/src:/dst:ro", want: Bind{Src: "/src", Dst: "/dst", ReadOnly: true}},
		{in: "/src:/dst:rw", want: Bind{Src: "/src", Dst: "/dst"}},
		{in: "/src:ro", want: Bind{Src: "/src", Dst: "/src", ReadOnly: true}},
		{in: "/src::ro", want: Bind{Src: "/src", Dst: "/src", ReadOnly: true}},
		{in: "/a/../src/", want: Bind{Src: "/src", Dst: "/src"}},
		{in: "rel/dir", want: Bind{Src: filepath.Join(cwd, "rel/dir"), Dst: filepath.Join(cwd, "rel/dir")}},
		{in: "/tmp/x:/tmp/y", want: Bind{Src: "/tmp/x", Dst: "/tmp/y"}},
		{in: "/src:/run", want: Bind{Src: "/src", Dst: "/run"}},
		{in: "", wantErr: "empty source"},
		{in: ":/dst", wantErr: "empty source"},
		{in: "/src:/dst:rx", wantErr: `unknown option "rx"`},
		{in: "/src:/dst:ro:x", wantErr: "paths with ':'"},
		{in: "/src:dst", wantErr: "destination"},
		{in: "/src:/dst/", wantErr: "trailing slash"},
		{in: "/src:/a/../b", wantErr: `".." component`},
		{in: "/src:/", wantErr: "root"},
		{in: "/src:/proc", wantErr: "/proc is the sandbox's own"},
		{in: "/src:/dev/kvm", wantErr: "/dev is the sandbox's own"},
		{in: "/src:/sys/x:ro", wantErr: "/sys is the sandbox's own"},
		{in: "/src:/device", want: Bind{Src: "/src", Dst: "/device"}},
		{in: "/s\x00rc", wantErr: "NUL"},
	}
	for _, tt := range tests {
		got, err := ParseBind(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseBind(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseBind(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestBindString(t *testing.T) {
	for _, s := range []string{"/a", "/a:/b", "/a:/b:ro", "/a:ro"} {
		b, err := ParseBind(s)
		if err != nil {
			t.Fatal(err)
		}
		if b.String() != s {
			t.Errorf("ParseBind(%q).String() = %q", s, b.String())
		}
	}
}

func TestParseUser(t *testing.T) {
	tests := []struct {
		in      string
		want    User
		wantErr string
	}{
		{in: "0", want: User{0, 0}},
		{in: "65534", want: User{65534, 65534}},
		{in: "1000:100", want: User{1000, 100}},
		{in: "4294967294:0", want: User{4294967294, 0}},
		{in: "", wantErr: "uid: empty"},
		{in: ":5", wantErr: "uid: empty"},
		{in: "5:", wantErr: "gid: empty"},
		{in: "nobody", wantErr: "names are not supported"},
		{in: "-1", wantErr: "not a number"},
		{in: "4294967295", wantErr: "reserved"},
		{in: "1:4294967295", wantErr: "reserved"},
		{in: "4294967296", wantErr: "not a number"},
		{in: "1:2:3", wantErr: "gid"},
	}
	for _, tt := range tests {
		got, err := ParseUser(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseUser(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || *got != tt.want {
			t.Errorf("ParseUser(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseEnv(t *testing.T) {
	host := map[string]string{"HOSTVAR": "h=1", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := host[k]; return v, ok }
	tests := []struct {
		in      string
		want    string
		ok      bool
		wantErr string
	}{
		{in: "K=V", want: "K=V", ok: true},
		{in: "K=", want: "K=", ok: true},
		{in: "K=a=b", want: "K=a=b", ok: true},
		{in: "HOSTVAR", want: "HOSTVAR=h=1", ok: true},
		{in: "EMPTY", want: "EMPTY=", ok: true},
		{in: "UNSET", ok: false},
		{in: "=V", wantErr: "empty name"},
		{in: "", wantErr: "empty name"},
		{in: "K=a\x00b", wantErr: "NUL"},
	}
	for _, tt := range tests {
		got, ok, err := ParseEnv(tt.in, lookup)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseEnv(%q) = %q, %v, %v; want error containing %q", tt.in, got, ok, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want || ok != tt.ok {
			t.Errorf("ParseEnv(%q) = %q, %v, %v; want %q, %v", tt.in, got, ok, err, tt.want, tt.ok)
		}
	}
}

func TestEnviron(t *testing.T) {
	caller := []string{"PATH=/host/bin", "HOME=/home/me", "TERM=xterm", "SECRET=x", "LANG=C.UTF-8", "LANGUAGE=de"}
	tests := []struct {
		name  string
		keep  bool
		uid   uint32
		extra []string
		want  []string
	}{
		{name: "clean root", want: []string{"PATH=" + DefaultPath, "HOME=/root", "TERM=xterm", "LANG=C.UTF-8"}},
		{name: "clean user", uid: 65534, want: []string{"PATH=" + DefaultPath, "HOME=/", "TERM=xterm", "LANG=C.UTF-8"}},
		{name: "extra overrides in place", extra: []string{"FOO=1", "PATH=/x", "FOO=2"},
			want: []string{"PATH=/x", "HOME=/root", "TERM=xterm", "LANG=C.UTF-8", "FOO=2"}},
		{name: "keep", keep: true, extra: []string{"SECRET=y"},
			want: []string{"PATH=/host/bin", "HOME=/home/me", "TERM=xterm", "SECRET=y", "LANG=C.UTF-8", "LANGUAGE=de"}},
	}
	for _, tt := range tests {
		got := Environ(caller, tt.keep, tt.uid, tt.extra)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Environ = %q; want %q", tt.name, got, tt.want)
		}
	}
	if got := lookupEnv([]string{"PATH=/a", "PATH=/b"}, "PATH"); got != "/b" {
		t.Errorf("lookupEnv takes the last setting: got %q", got)
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in   string
		want status
	}{
		{in: "", want: status{}},
		{in: "OK\n", want: status{started: true}},
		{in: "OK\nEXIT 7\n", want: status{started: true, exited: true, code: 7}},
		{in: "OK\nEXIT 300\n", want: status{started: true}},
		{in: "OK\nEXIT -1\n", want: status{started: true}},
		{in: "OK\nEXIT", want: status{started: true}},
	}
	for _, tt := range tests {
		if got := parseStatus([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseStatus(%q) = %+v; want %+v", tt.in, got, tt.want)
		}
	}
	e := &Error{Code: ExitUsage, Err: plainError("spec x:3: bad\nline"), Hints: []string{"fix it", "or not"}}
	st := parseStatus([]byte(formatErr(e)))
	if st.err == nil || st.err.Code != 2 || st.err.Error() != "spec x:3: bad line" || !reflect.DeepEqual(st.err.Hints, e.Hints) {
		t.Errorf("ERR round trip: got %+v", st.err)
	}
	if st := parseStatus([]byte("ERR zz\n")); st.err == nil || st.err.Code != ExitFailure || st.err.Error() != "sandbox setup failed" {
		t.Errorf("garbled ERR: got %+v", st.err)
	}
}

func TestFilesystemsHas(t *testing.T) {
	data := []byte("nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n")
	for fs, want := range map[string]bool{"overlay": true, "ext4": true, "tmpfs": true, "nodev": false, "over": false, "fuse": false} {
		if got := filesystemsHas(data, fs); got != want {
			t.Errorf("filesystemsHas(%q) = %v; want %v", fs, got, want)
		}
	}
}

func TestExtraDirs(t *testing.T) {
	binds := []Bind{
		{Src: "/a", Dst: "/proj", Dir: true},
		{Src: "/b", Dst: "/tmp/x", Dir: true},
		{Src: "/c", Dst: "/etc/f"},
		{Src: "/d", Dst: "/run/d", Dir: true},
		{Src: "/e", Dst: "/runner", Dir: true},
	}
	want := []string{"/proc", "/dev", "/sys", "/tmp", "/run", "/proj", "/runner"}
	if got := extraDirs(binds); !reflect.DeepEqual(got, want) {
		t.Errorf("extraDirs = %q; want %q", got, want)
	}
}

func TestPrepareErrors(t *testing.T) {
	if _, err := prepare(Options{Spec: "x"}); err == nil || err.(*Error).Code != ExitUsage {
		t.Errorf("no command: got %v", err)
	}
	if os.Geteuid() != 0 {
		_, err := prepare(Options{Spec: "x", Argv: []string{"true"}})
		if err == nil || !strings.Contains(err.Error(), "needs root") {
			t.Errorf("non-root: got %v", err)
		}
		return
	}
	dir := t.TempDir()
	specFile := filepath.Join(dir, "s.spec")
	if err := os.WriteFile(specFile, []byte("/bin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		o       Options
		wantErr string
	}{
		{Options{Spec: filepath.Join(dir, "none.spec"), Argv: []string{"true"}}, "no such file"},
		{Options{Spec: dir, Argv: []string{"true"}}, "is a directory"},
		{Options{Spec: specFile, Argv: []string{"true"}, Workdir: "rel"}, "--workdir"},
		{Options{Spec: specFile, Argv: []string{"true"}, Binds: []Bind{{Src: filepath.Join(dir, "gone"), Dst: "/x"}}}, "bind source " + filepath.Join(dir, "gone")},
		{Options{Spec: specFile, Argv: []string{"true"}, View: View{LearnLog: "misses.txt"}}, "learn mode"},
	}
	for _, tt := range tests {
		_, err := prepare(tt.o)
		var e *Error
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("prepare(%+v) = %v; want error containing %q", tt.o, err, tt.wantErr)
		} else if e = err.(*Error); e.Code != ExitUsage {
			t.Errorf("prepare(%+v): code %d, want %d", tt.o, e.Code, ExitUsage)
		}
	}
	cfg, err := prepare(Options{Spec: specFile, Argv: []string{"true"}, Binds: []Bind{{Src: dir, Dst: "/x"}, {Src: specFile, Dst: "/y"}}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workdir != "/" || !cfg.Binds[0].Dir || cfg.Binds[1].Dir || cfg.Spec != specFile {
		t.Errorf("prepare filled in %+v", cfg)
	}
	// The init runs in "/": the misses log must reach it absolute.
	cfg, err = prepare(Options{Spec: specFile, Argv: []string{"true"}, View: View{Learn: true, LearnLog: "misses.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	if wd, _ := os.Getwd(); cfg.View.LearnLog != filepath.Join(wd, "misses.txt") {
		t.Errorf("learn log %q is not made absolute", cfg.View.LearnLog)
	}
}

func TestInitRefusesOutsideSandbox(t *testing.T) {
	if os.Getpid() == 1 {
		t.Skip("running as PID 1")
	}
	if code := Init(nil); code != ExitUsage {
		t.Errorf("Init outside a PID namespace = %d; want %d", code, ExitUsage)
	}
}
