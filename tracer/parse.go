package tracer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// MaxLine bounds one line of strace output kept in memory. With -s 4096 only
// an execve with a huge argv comes near it.
const MaxLine = 1 << 20

// maxUnfinished bounds the number of pids with a pending <unfinished ...>
// line, so a fork bomb cannot grow the parser without bound.
const maxUnfinished = 1 << 16

// DefaultExclude lists the prefixes that are never recorded: pseudo file
// systems and scratch space the view provides by itself (the resolver's
// "base" extra brings the mount-point directories).
var DefaultExclude = []string{"/proc", "/sys", "/dev", "/run", "/tmp"}

// ParseOptions configures Parse.
type ParseOptions struct {
	// Cwd is the working directory of the first traced process; "" means "/".
	Cwd string
	// Exclude adds path prefixes to DefaultExclude. A prefix matches whole
	// components: /tmp excludes /tmp/x but not /tmpfoo.
	Exclude []string
	// Host makes Parse consult the host after reading the log: resolve ".."
	// physically, drop paths that no longer exist and compare birth times
	// against Started. Without it, ".." is resolved lexically and every
	// successfully accessed path is listed.
	Host bool
	// Started is the birth time of a file made just before the run began,
	// on the kernel's clock; zero means birth times are not consulted.
	Started time.Time
	// Log receives warnings (truncated strings) and, at debug level,
	// lines the parser did not understand. nil discards them.
	Log *zap.Logger
}

// Trace is what a traced run used.
type Trace struct {
	// Paths are the sorted, unique absolute paths the run accessed
	// successfully, minus excluded and created ones (see the package doc).
	Paths []string
	// Misses are the sorted, unique absolute paths whose lookup failed and
	// that were never found later.
	Misses []string
	// Execs are the binaries the run executed; they are in Paths too.
	Execs []string
	// Created are the paths left out because the run created them.
	Created []string
	// Vanished are paths accessed during the run that no longer exist.
	Vanished []string

	// Lines is the number of log lines read.
	Lines int
	// Truncated counts path arguments strace cut short; they are skipped.
	Truncated int
	// Unknown counts lines the parser did not understand.
	Unknown int
	// Pids is the number of distinct processes and threads seen.
	Pids int
}

// Parse reads a strace log written with -f -y (as Run does) and returns the
// paths it shows. It streams: memory grows with distinct paths and live
// pids, not with the log. Only a read error from r is returned as an error;
// malformed lines are counted in Trace.Unknown.
func Parse(r io.Reader, o ParseOptions) (*Trace, error) {
	return parse(r, o, nil)
}

// parse is Parse that also keeps live up to date with the pids running.
func parse(r io.Reader, o ParseOptions, live *liveSet) (*Trace, error) {
	p := newParser(o)
	p.live = live
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if len(long) < MaxLine {
				long = append(long, chunk...)
			} else {
				p.cutLine = true
			}
			continue
		case err != nil && err != io.EOF:
			return nil, fmt.Errorf("reading strace log: %w", err)
		}
		line := chunk
		if long != nil {
			if len(long) < MaxLine {
				long = append(long, chunk...)
			} else {
				p.cutLine = true
			}
			line = long
		}
		if len(line) > 0 {
			p.line(strings.TrimRight(string(line), "\r\n"))
		}
		long = long[:0]
		if long != nil && cap(long) > 4*MaxLine {
			long = nil
		}
		p.cutLine = false
		if err == io.EOF {
			break
		}
	}
	return p.finish(), nil
}

// touch kinds: what a successful call says about whether its path existed
// before the run.
type kind uint8

const (
	kRead   kind = iota // needs the path to exist: stat, access, plain open
	kMaybe              // O_CREAT open or creat: may have made it
	kCreate             // succeeds only by making it: mkdir, O_EXCL, link target
	kExec               // exec; needs the path
)

// first-touch states of a path.
const (
	stUnknown uint8 = iota
	stExisted
	stCreated
	stMaybe
)

type pathInfo struct {
	state uint8
	ok    bool // accessed successfully at least once
	miss  bool // a lookup failed at least once
	exec  bool
}

type fsInfo struct{ cwd string }

type proc struct {
	fs   *fsInfo
	sure bool // cwd known from a clone result, chdir or AT_FDCWD<...>
}

type parser struct {
	o       ParseOptions
	log     *zap.Logger
	exclude []string

	procs      map[int]*proc
	unfinished map[int]string
	cloning    map[int]bool
	lastCloner int
	lastPid    int
	seen       map[int]bool

	paths map[string]*pathInfo

	live    *liveSet
	cutLine bool
	args    []string // reused by split
	created int      // paths whose first event proved the run made them
	t       Trace
}

func newParser(o ParseOptions) *parser {
	p := &parser{
		o:          o,
		log:        o.Log,
		procs:      map[int]*proc{},
		unfinished: map[int]string{},
		cloning:    map[int]bool{},
		seen:       map[int]bool{},
		paths:      map[string]*pathInfo{},
		lastCloner: -1,
	}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	for _, e := range append(append([]string{}, DefaultExclude...), o.Exclude...) {
		if e = path.Clean("/" + e); e != "/" {
			p.exclude = append(p.exclude, e)
		}
	}
	if p.o.Cwd == "" || p.o.Cwd[0] != '/' {
		p.o.Cwd = "/"
	}
	return p
}

// line handles one line of the log.
func (p *parser) line(s string) {
	p.t.Lines++
	pid, rest, ok := splitPid(s)
	if !ok {
		p.unknown(s, "no pid")
		return
	}
	if pid < 0 {
		pid = p.lastPid
	}
	p.lastPid = pid
	if !p.seen[pid] {
		p.seen[pid] = true
		p.t.Pids++
		p.live.add(pid)
	}
	switch {
	case rest == "":
		return
	case strings.HasPrefix(rest, "---"):
		return // a signal delivery
	case strings.HasPrefix(rest, "+++"):
		p.exit(pid, rest)
		return
	case strings.HasPrefix(rest, "<... "):
		p.resumed(pid, rest)
		return
	case strings.HasSuffix(rest, " <unfinished ...>"):
		head := strings.TrimSuffix(rest, " <unfinished ...>")
		if p.cutLine {
			// The head alone is all we will ever have of this call.
			p.cut(pid, head)
			return
		}
		if _, dup := p.unfinished[pid]; !dup && len(p.unfinished) >= maxUnfinished {
			p.unknown(s, "too many unfinished calls")
			return
		}
		p.unfinished[pid] = head
		if name, _, _ := strings.Cut(head, "("); isClone(name) {
			p.cloning[pid] = true
			p.lastCloner = pid
		}
		return
	}
	if p.cutLine {
		p.cut(pid, rest)
		return
	}
	c, ok := p.split(rest, false)
	if !ok {
		p.unknown(s, "not a syscall line")
		return
	}
	p.call(pid, &c)
}

// split is splitCall reusing the parser's argument slice; the call is
// valid until the next split.
func (p *parser) split(s string, allowCut bool) (call, bool) {
	c, ok := splitCallArgs(s, allowCut, p.args)
	p.args = c.args[:0]
	return c, ok
}

// liveSet is the set of traced pids that have not exited, shared with
// Run so a cancelled run can kill them. A nil *liveSet ignores everything.
type liveSet struct {
	mu   sync.Mutex
	pids map[int]bool
}

func (l *liveSet) add(pid int) {
	if l == nil || pid <= 0 {
		return
	}
	l.mu.Lock()
	l.pids[pid] = true
	l.mu.Unlock()
}

func (l *liveSet) remove(pid int) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.pids, pid)
	l.mu.Unlock()
}

func (l *liveSet) list() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int, 0, len(l.pids))
	for pid := range l.pids {
		out = append(out, pid)
	}
	return out
}

// splitPid strips "PID  " or "[pid PID] " from a line. pid is -1 for a
// line without one (strace traced one process only).
func splitPid(s string) (pid int, rest string, ok bool) {
	if strings.HasPrefix(s, "[pid ") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return 0, "", false
		}
		n, err := strconv.Atoi(strings.TrimSpace(s[5:end]))
		if err != nil || n < 0 {
			return 0, "", false
		}
		return n, strings.TrimLeft(s[end+1:], " "), true
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i == len(s) || s[i] != ' ' {
		return -1, s, true
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil {
		return 0, "", false
	}
	return n, strings.TrimLeft(s[i:], " "), true
}

func (p *parser) unknown(s, why string) {
	p.t.Unknown++
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	p.log.Debug("strace line not understood", zap.String("why", why), zap.String("line", s))
}

// exit handles "+++ exited with N +++", "+++ killed by SIG +++" and
// "+++ superseded by execve in pid N +++".
func (p *parser) exit(pid int, rest string) {
	p.live.remove(pid)
	delete(p.procs, pid)
	delete(p.unfinished, pid)
	delete(p.cloning, pid)
	// The pid may be reused by a later process; it is then new.
	delete(p.seen, pid)
}

func (p *parser) resumed(pid int, rest string) {
	after := strings.TrimPrefix(rest, "<... ")
	name, tail, ok := strings.Cut(after, " resumed>")
	if !ok {
		p.unknown(rest, "bad resumed line")
		return
	}
	head, had := p.unfinished[pid]
	delete(p.unfinished, pid)
	delete(p.cloning, pid)
	if !had || !strings.HasPrefix(head, name+"(") {
		p.unknown(rest, "resumed without its unfinished start")
		return
	}
	full := head + tail
	if p.cutLine {
		p.cut(pid, full)
		return
	}
	c, ok := p.split(full, false)
	if !ok {
		p.unknown(full, "resumed call not understood")
		return
	}
	p.call(pid, &c)
}

// cut salvages a line longer than MaxLine: only an execve's path is taken,
// since the exec'd file is not opened by any other call the log shows.
func (p *parser) cut(pid int, head string) {
	c, ok := p.split(head, true)
	if !ok || (c.name != "execve" && c.name != "execveat") {
		p.unknown(head, "line longer than MaxLine")
		return
	}
	p.log.Warn("strace line too long; taking the exec'd path from its start", zap.Int("pid", pid))
	c.ret = "0" // the host check after the run decides whether it exists
	c.cut = true
	p.call(pid, &c)
}

// sysDesc says where a syscall keeps its path.
type sysDesc struct {
	dirfd, path, flags int // argument indexes, -1 if none
	kind               kind
}

var syscalls = map[string]sysDesc{
	"open":       {-1, 0, 1, kMaybe},
	"openat":     {0, 1, 2, kMaybe},
	"openat2":    {0, 1, 2, kMaybe},
	"creat":      {-1, 0, -1, kMaybe},
	"execve":     {-1, 0, -1, kExec},
	"execveat":   {0, 1, 4, kExec},
	"stat":       {-1, 0, -1, kRead},
	"lstat":      {-1, 0, -1, kRead},
	"stat64":     {-1, 0, -1, kRead},
	"lstat64":    {-1, 0, -1, kRead},
	"newfstatat": {0, 1, 3, kRead},
	"fstatat64":  {0, 1, 3, kRead},
	"statx":      {0, 1, 2, kRead},
	"access":     {-1, 0, -1, kRead},
	"faccessat":  {0, 1, -1, kRead},
	"faccessat2": {0, 1, -1, kRead},
	"readlink":   {-1, 0, -1, kRead},
	"readlinkat": {0, 1, -1, kRead},
	"chdir":      {-1, 0, -1, kRead},
	"truncate":   {-1, 0, -1, kRead},
	"truncate64": {-1, 0, -1, kRead},
	"utimensat":  {0, 1, -1, kRead},
	"getxattr":   {-1, 0, -1, kRead},
	"lgetxattr":  {-1, 0, -1, kRead},
	// These create their path; they are not recorded, but they tell the
	// created-file rule that the run made the path.
	"mkdir":     {-1, 0, -1, kCreate},
	"mkdirat":   {0, 1, -1, kCreate},
	"mknod":     {-1, 0, -1, kCreate},
	"mknodat":   {0, 1, -1, kCreate},
	"symlink":   {-1, 1, -1, kCreate},
	"symlinkat": {1, 2, -1, kCreate},
	"link":      {-1, 1, -1, kCreate},
	"linkat":    {2, 3, -1, kCreate},
	"rename":    {-1, 1, -1, kCreate},
	"renameat":  {2, 3, -1, kCreate},
	"renameat2": {2, 3, -1, kCreate},
}

func isClone(name string) bool {
	switch name {
	case "clone", "clone3", "fork", "vfork":
		return true
	}
	return false
}

// proc returns the state of pid, creating it for a pid seen first. A new
// pid is most likely the child of a clone still in flight; it borrows that
// parent's working directory until the clone's result or an AT_FDCWD
// annotation says for sure.
func (p *parser) proc(pid int) *proc {
	if pr := p.procs[pid]; pr != nil {
		return pr
	}
	cwd := p.o.Cwd
	if p.cloning[p.lastCloner] {
		if parent := p.procs[p.lastCloner]; parent != nil {
			cwd = parent.fs.cwd
		}
	}
	pr := &proc{fs: &fsInfo{cwd: cwd}, sure: len(p.procs) == 0}
	p.procs[pid] = pr
	return pr
}

func (p *parser) call(pid int, c *call) {
	if c.name == "exit_group" {
		// -qq hides "+++ exited" lines; this is the last sign of life.
		p.live.remove(pid)
	}
	if isClone(c.name) {
		p.clone(pid, c)
		return
	}
	if c.name == "fchdir" {
		if c.succeeded() && len(c.args) == 1 {
			if dir, ok := annotation(c.args[0]); ok {
				pr := p.proc(pid)
				pr.fs.cwd, pr.sure = dir, true
			}
		}
		return
	}
	d, ok := syscalls[c.name]
	if !ok || d.path >= len(c.args) {
		return
	}
	pr := p.proc(pid)
	var dirArg string
	if d.dirfd >= 0 && d.dirfd < len(c.args) {
		dirArg = c.args[d.dirfd]
		if strings.HasPrefix(dirArg, "AT_FDCWD<") {
			if cwd, ok := annotation(dirArg); ok {
				pr.fs.cwd, pr.sure = cwd, true
			}
		}
	}
	name, truncated, ok := quoted(c.args[d.path])
	if truncated {
		p.t.Truncated++
		p.log.Warn("strace truncated a path; skipping it", zap.String("syscall", c.name), zap.Int("pid", pid))
		return
	}
	if !ok {
		return // NULL or an unreadable address
	}
	if name == "" {
		// An empty path with AT_EMPTY_PATH names the descriptor itself. It
		// was opened by a call already seen, or inherited (stdout), except
		// for fexecve, whose file is the exec'd binary.
		if c.name != "execveat" || d.dirfd < 0 {
			return
		}
		dir, ok := annotation(dirArg)
		if !ok {
			return
		}
		name = dir
	}
	abs, ok := p.abs(pr, d.dirfd >= 0, dirArg, name)
	if !ok {
		return
	}
	k := d.kind
	if k == kMaybe && d.flags >= 0 && d.flags < len(c.args) {
		f := c.args[d.flags]
		switch {
		case hasFlag(f, "O_EXCL") && hasFlag(f, "O_CREAT"):
			k = kCreate
		case !hasFlag(f, "O_CREAT") && !hasFlag(f, "O_TMPFILE"):
			k = kRead
		}
	}
	if c.name == "creat" {
		k = kMaybe
	}
	switch {
	case c.succeeded():
		p.touch(abs, k)
		if c.name == "chdir" {
			pr.fs.cwd, pr.sure = path.Clean(abs), true
		}
	case !c.failed():
	case existsErrno(c.name, c.errno):
		p.touch(abs, kRead)
	case lookupErrno[c.errno] && k != kCreate:
		p.miss(abs, c.errno)
	}
}

// lookupErrno lists the errors of a failed path lookup: the misses.
var lookupErrno = map[string]bool{
	"ENOENT": true, "ENOTDIR": true, "ELOOP": true, "ENAMETOOLONG": true, "EACCES": true,
}

// existsErrno reports whether a call failing with errno proves that its
// path exists: readlink on a non-link, getxattr without the attribute,
// mkdir or O_EXCL on an existing path, exec of a non-executable file.
func existsErrno(name, errno string) bool {
	switch errno {
	case "ENODATA", "ERANGE", "EOPNOTSUPP", "ENOTSUP", "EEXIST", "EISDIR", "ENOEXEC", "ETXTBSY":
		return true
	case "EINVAL":
		return name == "readlink" || name == "readlinkat"
	}
	return false
}

// abs makes name absolute against the dirfd's annotation or the cwd, and
// cleans "." and empty components; ".." stays for finish to resolve.
func (p *parser) abs(pr *proc, hasDirfd bool, dirArg, name string) (string, bool) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", false
	}
	if name[0] != '/' {
		base := pr.fs.cwd
		if hasDirfd && !strings.HasPrefix(dirArg, "AT_FDCWD") {
			dir, ok := annotation(dirArg)
			if !ok {
				// A descriptor strace could not name: nothing to anchor to.
				return "", false
			}
			base = dir
		} else if hasDirfd {
			if dir, ok := annotation(dirArg); ok {
				base = dir
			}
		}
		name = base + "/" + name
	}
	name = cleanKeepDotDot(name)
	if len(name) >= pathMax {
		// The kernel refuses such paths (ENAMETOOLONG); only a corrupt
		// log or a runaway cwd guess makes them.
		return "", false
	}
	return name, true
}

// pathMax is Linux's PATH_MAX, terminating NUL included.
const pathMax = 4096

// cleanKeepDotDot removes empty and "." components but keeps "..", which
// only the host can resolve correctly when a symlink precedes it.
func cleanKeepDotDot(p string) string {
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") && !strings.HasSuffix(p, "/") {
		return p
	}
	parts := strings.Split(p, "/")
	out := parts[:0]
	for _, c := range parts {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return "/" + strings.Join(out, "/")
}

func (p *parser) info(abs string) *pathInfo {
	pi := p.paths[abs]
	if pi == nil {
		pi = &pathInfo{}
		p.paths[abs] = pi
	}
	return pi
}

// touch records a successful access and, for the first decisive event,
// whether the path existed before the run.
func (p *parser) touch(abs string, k kind) {
	pi := p.info(abs)
	pi.ok = true
	if k == kExec {
		pi.exec = true
	}
	if pi.state == stUnknown {
		switch k {
		case kRead, kExec:
			pi.state = stExisted
		case kCreate:
			pi.state = stCreated
			p.created++
		case kMaybe:
			pi.state = stMaybe
		}
	}
}

func (p *parser) miss(abs, errno string) {
	pi := p.info(abs)
	pi.miss = true
	if pi.state == stUnknown && errno == "ENOENT" {
		pi.state = stCreated
		p.created++
	}
}

// clone handles clone, clone3, fork and vfork: the child inherits the
// parent's working directory, or shares it with CLONE_FS.
func (p *parser) clone(pid int, c *call) {
	child, err := strconv.Atoi(c.ret)
	if err != nil || child <= 0 {
		return
	}
	parent := p.proc(pid)
	share := (c.name == "clone" || c.name == "clone3") && len(c.args) > 0 && hasFlag(strings.Join(c.args, ","), "CLONE_FS")
	fs := parent.fs
	if !share {
		fs = &fsInfo{cwd: parent.fs.cwd}
	}
	if pr := p.procs[child]; pr != nil && pr.sure {
		if share {
			// A thread that already showed its cwd shares it with us.
			cwd := pr.fs.cwd
			pr.fs = fs
			fs.cwd = cwd
		}
		return
	}
	p.procs[child] = &proc{fs: fs, sure: true}
}

func (p *parser) excluded(abs string) bool {
	for _, e := range p.exclude {
		if strings.HasPrefix(abs, e) && (len(abs) == len(e) || abs[len(e)] == '/') {
			return true
		}
	}
	return false
}
