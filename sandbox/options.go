package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/vzfs/vzfs/fs"
	"github.com/vzfs/vzfs/spec"
)

// Options says what to run and how. Run checks them, then hands a copy
// (as JSON) to the sandbox's init, so every field but the I/O and Logger
// ones must survive encoding/json.
type Options struct {
	// Spec is the spec file the view is built from.
	Spec string
	// Argv is the command and its arguments. A command without a slash
	// is looked up on the sandbox's PATH, inside the view.
	Argv []string
	// Binds are host paths mounted into the view, in order.
	Binds []Bind
	// Writable puts a tmpfs-backed overlayfs over the view: the command
	// may write anywhere, and everything it writes is dropped at exit.
	Writable bool
	// Workdir is the command's working directory inside the sandbox;
	// "" means "/".
	Workdir string
	// User is who the command runs as; nil means root.
	User *User
	// Env holds K=V pairs added to the command's environment, overriding
	// what is there (see Environ).
	Env []string
	// KeepEnv passes the caller's whole environment instead of a clean
	// one.
	KeepEnv bool
	// View configures the FUSE view of the spec.
	View View
	// KeepCaps leaves root in the sandbox every capability. By default
	// all but a few (keptCaps) are dropped from the command's bounding,
	// effective, permitted and inheritable sets.
	KeepCaps bool `json:",omitempty"`
	// Exec is the command line of the exec trampoline: this binary
	// re-executed into a command that calls Exec. The init runs it, so
	// it must name the binary as the host sees it.
	Exec []string

	// Init is the command line that starts the sandbox's init: this
	// binary re-executed into a command that calls Init. Run adds nothing
	// to it; the init reads its orders from fd 3.
	Init []string `json:"-"`
	// Stdin, Stdout and Stderr are the command's; nil means the caller's.
	Stdin, Stdout, Stderr *os.File `json:"-"`
	// Logger gets what vzfs itself has to say; nil discards it.
	Logger *zap.Logger `json:"-"`
}

// View is the part of fs.MountOptions a sandbox lets the caller choose.
// The FUSE server runs in the sandbox's init, a separate process, so these
// are plain values that cross exec; MountOptions turns them into the real
// thing there. The learner of learn mode holds a lock and an open spec, so
// the init makes its own (fs.NewSpecLearner) from Learn and LearnLog.
type View struct {
	// Suid and Dev lift the view's nosuid and nodev.
	Suid, Dev bool `json:",omitempty"`
	// Timeout is fs.MountOptions.Timeout: 0 is the default, negative
	// means no caching.
	Timeout time.Duration `json:",omitempty"`
	// NoPassthrough reads file data through the daemon.
	NoPassthrough bool `json:",omitempty"`
	// SkipMissing serves a spec whose entries are partly missing on the
	// host, without them.
	SkipMissing bool `json:",omitempty"`
	// Learn serves host paths the spec lacks and appends them to the
	// spec (fs.MountOptions.Learn).
	Learn bool `json:",omitempty"`
	// LearnLog, with Learn, is the file that gets the paths looked up
	// that exist nowhere; absolute once Run has checked it.
	LearnLog string `json:",omitempty"`
}

// MountOptions is the one place a sandbox's view options become
// fs.MountOptions.
func (v View) MountOptions(fsName string, log *zap.Logger) fs.MountOptions {
	return fs.MountOptions{
		FsName:        fsName,
		Timeout:       v.Timeout,
		Suid:          v.Suid,
		Dev:           v.Dev,
		NoPassthrough: v.NoPassthrough,
		Logger:        log,
	}
}

// Bind is one --bind: the host path Src mounted on Dst inside the sandbox.
type Bind struct {
	Src, Dst string
	ReadOnly bool `json:",omitempty"`
	// Dir records whether Src is a directory; Run fills it in.
	Dir bool `json:",omitempty"`
}

func (b Bind) String() string {
	s := b.Src
	if b.Dst != b.Src {
		s += ":" + b.Dst
	}
	if b.ReadOnly {
		s += ":ro"
	}
	return s
}

// ParseBind parses SRC[:DST[:ro|rw]] as --bind takes it. SRC may be
// relative (to the current directory); DST must be absolute and defaults
// to SRC. Since DST is absolute, "SRC:ro" is read as SRC with the ro
// option. Paths with colons cannot be bound.
func ParseBind(s string) (Bind, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return Bind{}, fmt.Errorf("bind %q: want SRC[:DST[:ro]]; paths with ':' cannot be bound", s)
	}
	var b Bind
	src := parts[0]
	if src == "" {
		return Bind{}, fmt.Errorf("bind %q: empty source", s)
	}
	if strings.IndexByte(src, 0) >= 0 {
		return Bind{}, fmt.Errorf("bind %q: NUL byte in source", s)
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return Bind{}, fmt.Errorf("bind %q: %w", s, err)
	}
	b.Src = abs
	dst, opt := "", ""
	switch len(parts) {
	case 2:
		if p := parts[1]; p == "ro" || p == "rw" {
			opt = p
		} else {
			dst = p
		}
	case 3:
		dst, opt = parts[1], parts[2]
		if dst == "" {
			// "SRC::ro" spells the default DST explicitly.
			dst = b.Src
		}
	}
	switch opt {
	case "", "rw":
	case "ro":
		b.ReadOnly = true
	default:
		return Bind{}, fmt.Errorf("bind %q: unknown option %q: want ro or rw", s, opt)
	}
	if dst == "" {
		dst = b.Src
	}
	if err := spec.Validate(dst); err != nil {
		return Bind{}, fmt.Errorf("bind %q: destination: %w", s, err)
	}
	if dst == "/" {
		return Bind{}, fmt.Errorf("bind %q: cannot bind over the sandbox's root", s)
	}
	for _, m := range kernelDirs {
		if dst == m || strings.HasPrefix(dst, m+"/") {
			return Bind{}, fmt.Errorf("bind %q: %s is the sandbox's own; bind somewhere else", s, m)
		}
	}
	b.Dst = dst
	return b, nil
}

// kernelDirs are the sandbox's own kernel filesystems; nothing may be
// bound over or into them. /tmp and /run are tmpfs and may hold binds.
var kernelDirs = []string{"/proc", "/dev", "/sys"}

// mountDirs are the directories every sandbox mounts something on.
var mountDirs = []string{"/proc", "/dev", "/sys", "/tmp", "/run"}

// User is a numeric uid and gid the command runs as, with no
// supplementary groups.
type User struct {
	Uid, Gid uint32
}

// ParseUser parses UID[:GID] as --user takes it. Names are not accepted:
// they would have to be looked up in the view's passwd, which may not
// exist. GID defaults to UID, which matches nobody:nogroup and most
// per-user groups.
func ParseUser(s string) (*User, error) {
	us, gs, hasGid := strings.Cut(s, ":")
	uid, err := parseID(us)
	if err != nil {
		return nil, fmt.Errorf("user %q: uid: %w", s, err)
	}
	gid := uid
	if hasGid {
		if gid, err = parseID(gs); err != nil {
			return nil, fmt.Errorf("user %q: gid: %w", s, err)
		}
	}
	return &User{Uid: uid, Gid: gid}, nil
}

func parseID(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number (names are not supported)", s)
	}
	// (uid_t)-1 means "unchanged" to setuid(2) and friends.
	if n == 1<<32-1 {
		return 0, fmt.Errorf("%d is reserved", n)
	}
	return uint32(n), nil
}

// ParseEnv checks one --env argument. "K=V" is taken as is; a bare "K"
// takes K's value from lookup (the caller's environment) and is dropped
// when K is unset there, as with docker run -e.
func ParseEnv(s string, lookup func(string) (string, bool)) (kv string, ok bool, err error) {
	k, _, hasValue := strings.Cut(s, "=")
	if k == "" {
		return "", false, fmt.Errorf("env %q: empty name", s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", false, fmt.Errorf("env %q: NUL byte", s)
	}
	if hasValue {
		return s, true, nil
	}
	if lookup == nil {
		return "", false, nil
	}
	v, set := lookup(k)
	if !set {
		return "", false, nil
	}
	return k + "=" + v, true, nil
}

// DefaultPath is the PATH of a clean environment.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Environ builds the command's environment. A clean one has PATH, HOME,
// and TERM and LANG when the caller has them; keep passes the caller's
// whole environment instead. extra (K=V) comes last and wins over both.
func Environ(caller []string, keep bool, uid uint32, extra []string) []string {
	var env []string
	if keep {
		env = append(env, caller...)
	} else {
		home := "/"
		if uid == 0 {
			home = "/root"
		}
		env = append(env, "PATH="+DefaultPath, "HOME="+home)
		for _, kv := range caller {
			if k, _, _ := strings.Cut(kv, "="); k == "TERM" || k == "LANG" {
				env = append(env, kv)
			}
		}
	}
	env = append(env, extra...)
	// Later settings win; keep the first position of each name so the
	// order stays readable.
	pos := map[string]int{}
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := pos[k]; ok {
			out[i] = kv
			continue
		}
		pos[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// lookupEnv returns the value of k in env.
func lookupEnv(env []string, k string) string {
	v := ""
	for _, kv := range env {
		if kk, vv, _ := strings.Cut(kv, "="); kk == k {
			v = vv
		}
	}
	return v
}
