package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/fs"
	"github.com/vzfs/vzfs/spec"
)

// ScratchDir is where the init mounts its private tmpfs, which holds the
// view's mountpoint, the overlay's layers and the sandbox's root. It is
// shadowed inside the sandbox's mount namespace only, so concurrent
// sandboxes share it and the host never sees what is mounted there: all a
// run leaves on the host is this empty directory.
const ScratchDir = "/run/vzfs/run"

// The init's descriptors, as Run passes them.
const (
	configFd = 3
	statusFd = 4
)

// Init is the body of the sandbox's init, the process Run starts as
// o.Init. It must be PID 1 of a fresh PID namespace in a private mount
// namespace, as Run starts it; it refuses otherwise, since as PID 1 it
// kills every process it can see when the command ends. It reads its
// orders from fd 3, mounts the view and the sandbox, runs the command,
// reports to Run on fd 4 and returns the exit status to end with.
func Init(log *zap.Logger) int {
	if log == nil {
		log = zap.NewNop()
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vzfs: error: the sandbox init only runs under 'vzfs run'")
		return ExitUsage
	}
	// Not dumpable: /proc/1 of the sandbox (root, cwd, fds, memory) then
	// needs CAP_SYS_PTRACE, which the command lacks. The init's root is
	// the host's, and its descriptors include the FUSE connection.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "vzfs: error: sandbox init: making itself undumpable: %v\n", err)
		return ExitFailure
	}
	status := os.NewFile(statusFd, "status")
	cfgFile := os.NewFile(configFd, "config")
	if status == nil || cfgFile == nil {
		fmt.Fprintln(os.Stderr, "vzfs: error: sandbox init started without its pipes")
		return ExitFailure
	}
	// The command must not inherit the report pipe: Run reads it to EOF.
	unix.CloseOnExec(statusFd)
	defer status.Close()

	// Signals that arrive while the sandbox is built wait here and are
	// passed on as soon as the command runs.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)

	var cfg config
	err := json.NewDecoder(io.LimitReader(cfgFile, 16<<20)).Decode(&cfg)
	cfgFile.Close()
	if err != nil {
		return report(status, failure(fmt.Errorf("reading sandbox options: %w", err)))
	}
	s := &sandbox{cfg: &cfg, log: log, rootFd: -1}
	defer s.teardown()
	if e := s.setup(); e != nil {
		return report(status, e)
	}
	pid, e := s.start()
	if e != nil {
		return report(status, e)
	}
	_, _ = io.WriteString(status, "OK\n")
	code := s.wait(pid, sigs)
	s.teardown()
	fmt.Fprintf(status, "EXIT %d\n", code)
	return code
}

// report sends e to Run and returns its exit code.
func report(status io.Writer, e *Error) int {
	_, _ = io.WriteString(status, formatErr(e))
	return e.Code
}

// sandbox is the init's state.
type sandbox struct {
	cfg     *config
	log     *zap.Logger
	scratch string // mounted tmpfs, "" until then
	srv     *fs.Server
	learner *fs.SpecLearner // learn mode only
	root    string          // the command's root
	rootFd  int
}

// setup mounts the view and everything the command sees, in the order of
// issue 5: view, overlay (--writable), /proc, /dev, /sys, /tmp, /run,
// binds.
func (s *sandbox) setup() *Error {
	cfg := s.cfg
	if cfg.View.Learn {
		// Locked before the spec is read: another learner may be
		// appending to it.
		l, err := fs.NewSpecLearner(cfg.Spec, cfg.View.LearnLog)
		var le *fs.LockedError
		if errors.As(err, &le) {
			return usage(err, "wait for the other learning run or mount to end, or learn into a copy of the spec")
		}
		if err != nil {
			return usage(err)
		}
		s.learner = l
	}
	sp, err := spec.ParseFile(cfg.Spec)
	if err != nil {
		return usage(err)
	}
	if sp.Torn > 0 {
		s.log.Warn("spec ends in a torn line, ignored", zap.String("spec", cfg.Spec), zap.Int("line", sp.Torn))
	}
	t, err := fs.NewTree(sp, fs.TreeOptions{ExtraDirs: extraDirs(cfg.Binds), SkipMissing: cfg.View.SkipMissing})
	var miss *fs.MissingError
	if errors.As(err, &miss) {
		return usage(err, "remove them from the spec, or rebuild it with 'vzfs ldd'")
	}
	if err != nil {
		return usage(fmt.Errorf("spec %s: %w", cfg.Spec, err))
	}
	for _, m := range t.Missing() {
		s.log.Warn("spec entry missing on the host, skipped", zap.String("path", m.Path), zap.Error(m.Err))
	}
	if hidden, n := hiddenEntries(sp, maxHiddenNamed); n > 0 {
		s.log.Warn("spec entries hidden: the sandbox mounts its own /proc, /dev, /sys, /tmp and /run over them",
			zap.Strings("paths", hidden), zap.Int("count", n))
	}

	if err := os.MkdirAll(ScratchDir, 0o700); err != nil {
		return failure(fmt.Errorf("creating %s: %w", ScratchDir, err))
	}
	if err := unix.Mount("vzfs-run", ScratchDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return failure(fmt.Errorf("mounting a tmpfs on %s: %w", ScratchDir, err))
	}
	s.scratch = ScratchDir
	view := filepath.Join(ScratchDir, "view")
	dirs := []string{view}
	if cfg.Writable {
		dirs = append(dirs, filepath.Join(ScratchDir, "root"), filepath.Join(ScratchDir, "upper"), filepath.Join(ScratchDir, "work"))
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			return failure(err)
		}
	}
	mo := cfg.View.MountOptions(cfg.Spec, quiet(s.log))
	if s.learner != nil {
		mo.Learn = s.learner
	}
	s.srv, err = fs.Mount(view, t, mo)
	if err != nil {
		return failure(fmt.Errorf("mounting the view of %s: %w", cfg.Spec, err))
	}
	s.root = view
	if cfg.Writable {
		s.root = filepath.Join(ScratchDir, "root")
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", view, filepath.Join(ScratchDir, "upper"), filepath.Join(ScratchDir, "work"))
		if err := unix.Mount("vzfs-overlay", s.root, "overlay", s.viewFlags(), opts); err != nil {
			return usage(fmt.Errorf("mounting an overlayfs over the view: %w", err), "run without --writable, or see dmesg for overlayfs's reason")
		}
	}
	s.rootFd, err = unix.Open(s.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return failure(fmt.Errorf("opening the sandbox root: %w", err))
	}
	if e := s.mountKernel(); e != nil {
		return e
	}
	for _, b := range cfg.Binds {
		if e := s.bind(b); e != nil {
			return e
		}
	}
	fd, err := s.openIn(cfg.Workdir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return usage(fmt.Errorf("--workdir %s: %w inside the sandbox", cfg.Workdir, err), "add it to the spec, or --bind a host directory there")
	}
	unix.Close(fd)
	return nil
}

// viewFlags are the mount flags for what the command runs from.
func (s *sandbox) viewFlags() uintptr {
	var f uintptr
	if !s.cfg.View.Suid {
		f |= unix.MS_NOSUID
	}
	if !s.cfg.View.Dev {
		f |= unix.MS_NODEV
	}
	return f
}

// quiet keeps the view's informational logs out of the command's stderr
// unless vzfs was asked for debug logs.
func quiet(log *zap.Logger) *zap.Logger {
	if log.Core().Enabled(zapcore.DebugLevel) {
		return log
	}
	return log.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
}

// maxHiddenNamed bounds how many hidden entries the warning names.
const maxHiddenNamed = 10

// hiddenEntries returns up to max of the spec's entries that the sandbox's
// own mounts cover (at or below a mountDirs directory), and how many there
// are: the command never sees them, which a user should hear about rather
// than find out.
func hiddenEntries(sp *spec.Spec, max int) ([]string, int) {
	var names []string
	n := 0
	for _, e := range sp.Entries {
		if !hiddenEntry(e) {
			continue
		}
		n++
		if len(names) < max {
			name := e.Path
			if e.Subtree {
				name += "/**"
			}
			names = append(names, name)
		}
	}
	return names, n
}

// hiddenEntry reports whether the sandbox's mounts cover what e lists:
// something below one of mountDirs, or one's whole subtree. The directory
// alone is just where the mount goes (vzfs ldd lists them for that).
func hiddenEntry(e spec.Entry) bool {
	for _, m := range mountDirs {
		if strings.HasPrefix(e.Path, m+"/") || (e.Path == m && e.Subtree) {
			return true
		}
	}
	return false
}

// extraDirs are the directories the view must have so that mounts can be
// made on them: the kernel filesystems' and those of directory binds.
// Binds below /tmp and /run get theirs in those tmpfs instead.
func extraDirs(binds []Bind) []string {
	dirs := append([]string(nil), mountDirs...)
	for _, b := range binds {
		if b.Dir && !underTmpfs(b.Dst) {
			dirs = append(dirs, b.Dst)
		}
	}
	return dirs
}

// underTmpfs reports whether p lies in the sandbox's /tmp or /run.
func underTmpfs(p string) bool {
	return p == "/tmp" || p == "/run" || strings.HasPrefix(p, "/tmp/") || strings.HasPrefix(p, "/run/")
}

// openIn opens p inside the sandbox root, resolving every symlink on the
// way as the command would see it, never out to the host.
func (s *sandbox) openIn(p string, flags int) (int, error) {
	for {
		fd, err := unix.Openat2(s.rootFd, p, &unix.OpenHow{
			Flags:   uint64(flags | unix.O_CLOEXEC),
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EINTR || err == unix.EAGAIN {
			// EAGAIN: a rename raced the resolution; try again.
			continue
		}
		return fd, err
	}
}

// fdPath names what fd refers to, for mount(2): mounting on
// /proc/self/fd/N mounts exactly on what was opened, never on something a
// symlink swapped in since.
func fdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// mountAt mounts on p inside the root.
func (s *sandbox) mountAt(p, source, fstype string, flags uintptr, data string) error {
	fd, err := s.openIn(p, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", p, err)
	}
	defer unix.Close(fd)
	if err := unix.Mount(source, fdPath(fd), fstype, flags, data); err != nil {
		return fmt.Errorf("mounting %s on %s: %w", fstype, p, err)
	}
	return nil
}

// mountKernel mounts /proc, /dev, /sys, /tmp and /run.
func (s *sandbox) mountKernel() *Error {
	const safe = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	// A fresh proc, mounted from inside the PID namespace, lists the
	// sandbox's processes only.
	if err := s.mountAt("/proc", "proc", "proc", safe, ""); err != nil {
		return failure(err)
	}
	if e := s.mountDev(); e != nil {
		return e
	}
	if err := s.mountAt("/sys", "sysfs", "sysfs", safe|unix.MS_RDONLY, ""); err != nil {
		return failure(err)
	}
	if err := s.mountAt("/tmp", "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return failure(err)
	}
	if err := s.mountAt("/run", "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return failure(err)
	}
	return nil
}

// devNodes is the minimal /dev: no disk, no host terminal but the
// controlling one.
var devNodes = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// mountDev builds a minimal /dev on a tmpfs, read-only once built, with
// its own devpts instance and a writable /dev/shm. Binding the host's
// /dev would hand the command every disk.
func (s *sandbox) mountDev() *Error {
	if err := s.mountAt("/dev", "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return failure(err)
	}
	dev, err := s.openIn("/dev", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return failure(fmt.Errorf("opening the sandbox's /dev: %w", err))
	}
	defer unix.Close(dev)
	fail := func(what string, err error) *Error {
		return failure(fmt.Errorf("building the sandbox's /dev: %s: %w", what, err))
	}
	for _, n := range devNodes {
		if err := unix.Mknodat(dev, n.name, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fail(n.name, err)
		}
		// mknod applies the umask.
		if err := unix.Fchmodat(dev, n.name, 0o666, 0); err != nil {
			return fail(n.name, err)
		}
	}
	for _, d := range []struct {
		name string
		mode uint32
	}{{"pts", 0o755}, {"shm", 0o1777}} {
		if err := unix.Mkdirat(dev, d.name, d.mode); err != nil {
			return fail(d.name, err)
		}
		if err := unix.Fchmodat(dev, d.name, d.mode, 0); err != nil {
			return fail(d.name, err)
		}
	}
	for _, l := range [][2]string{{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}} {
		if err := unix.Symlinkat(l[0], dev, l[1]); err != nil {
			return fail(l[1], err)
		}
	}
	if err := s.mountAt("/dev/pts", "devpts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return failure(err)
	}
	if err := s.mountAt("/dev/shm", "shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return failure(err)
	}
	// Read-only from here on; pts and shm are mounts of their own and
	// stay writable. dev was opened before them and still names the
	// tmpfs's root.
	if err := unix.MountSetattr(dev, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fail("making it read-only", err)
	}
	return nil
}

// bind mounts b.Src on b.Dst, recursively, read-only if asked.
func (s *sandbox) bind(b Bind) *Error {
	if underTmpfs(b.Dst) || s.cfg.Writable {
		// A writable place: make the mount point if the view lacks it.
		if err := s.makeMountpoint(b.Dst, b.Dir); err != nil {
			return failure(fmt.Errorf("bind %s: creating the destination: %w", b, err))
		}
	}
	dst, err := s.openIn(b.Dst, unix.O_PATH)
	if err != nil {
		hint := "add it to the spec"
		if !b.Dir {
			hint = "a file can only be bound onto a file the spec has, or below /tmp or /run, or with --writable"
		}
		return usage(fmt.Errorf("bind %s: destination %s: %w inside the sandbox", b, b.Dst, err), hint)
	}
	defer unix.Close(dst)
	src, err := unix.Open(b.Src, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return usage(fmt.Errorf("bind source %s: %w", b.Src, err))
	}
	defer unix.Close(src)
	if err := unix.Mount(fdPath(src), fdPath(dst), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return failure(fmt.Errorf("bind %s: %w", b, err))
	}
	// A bind keeps the flags of the host's mount: on most hosts, suid
	// and dev. It gets the view's nosuid and nodev, or a setuid-root file
	// bound in would give root to --user. dst still names the directory
	// below the new mount: open the mount's root.
	top, err := s.openIn(b.Dst, unix.O_PATH)
	if err != nil {
		return failure(fmt.Errorf("bind %s: %w", b, err))
	}
	defer unix.Close(top)
	attr := s.bindAttr(b)
	if attr == 0 {
		return nil
	}
	// Recursive, so mounts under the source get them too: the user asked
	// for the whole tree.
	if err := unix.MountSetattr(top, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attr}); err != nil {
		return failure(fmt.Errorf("bind %s: setting %s: %w", b, attrNames(attr), err))
	}
	return nil
}

// bindAttr is the MOUNT_ATTR_* set for bind b: rdonly for ":ro", nosuid
// and nodev unless --suid and --dev lift them.
func (s *sandbox) bindAttr(b Bind) uint64 {
	var attr uint64
	if b.ReadOnly {
		attr |= unix.MOUNT_ATTR_RDONLY
	}
	if !s.cfg.View.Suid {
		attr |= unix.MOUNT_ATTR_NOSUID
	}
	if !s.cfg.View.Dev {
		attr |= unix.MOUNT_ATTR_NODEV
	}
	return attr
}

// attrNames spells a MOUNT_ATTR_* set for errors.
func attrNames(attr uint64) string {
	var names []string
	for _, a := range []struct {
		bit  uint64
		name string
	}{{unix.MOUNT_ATTR_RDONLY, "ro"}, {unix.MOUNT_ATTR_NOSUID, "nosuid"}, {unix.MOUNT_ATTR_NODEV, "nodev"}} {
		if attr&a.bit != 0 {
			names = append(names, a.name)
		}
	}
	return strings.Join(names, ",")
}

// makeMountpoint creates p inside the root, a directory or an empty file,
// with its parents, unless it exists.
func (s *sandbox) makeMountpoint(p string, dir bool) error {
	if fd, err := s.openIn(p, unix.O_PATH); err == nil {
		unix.Close(fd)
		return nil
	}
	parent, name := path.Split(p)
	parent = path.Clean(parent)
	comps := strings.Split(strings.TrimPrefix(parent, "/"), "/")
	cur := "/"
	for _, c := range comps {
		if c == "" {
			continue
		}
		if err := s.mkdirIn(cur, c); err != nil {
			return err
		}
		cur = path.Join(cur, c)
	}
	if dir {
		return s.mkdirIn(cur, name)
	}
	pfd, err := s.openIn(cur, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	fd, err := unix.Openat(pfd, name, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// mkdirIn creates name in the directory dir of the root, if missing.
func (s *sandbox) mkdirIn(dir, name string) error {
	pfd, err := s.openIn(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, name, 0o755); err != nil && err != unix.EEXIST {
		return fmt.Errorf("%s: %w", path.Join(dir, name), err)
	}
	return nil
}

// start finds the command inside the root and starts it there, through
// the exec trampoline (Options.Exec, which calls Exec): the command must
// not share the init's mount namespace, whose root is the host's, nor keep
// root's every capability, and a forked Go child can do neither before it
// executes.
func (s *sandbox) start() (int, *Error) {
	cfg := s.cfg
	argv0, e := s.findCommand(cfg.Argv[0])
	if e != nil {
		return 0, e
	}
	if len(cfg.Exec) == 0 {
		return 0, failure(errors.New("sandbox: no exec trampoline command"))
	}
	body, err := json.Marshal(execOrders{
		Root:     s.root,
		Workdir:  cfg.Workdir,
		Path:     argv0,
		Argv:     cfg.Argv,
		Env:      cfg.Environ,
		User:     cfg.User,
		KeepCaps: cfg.KeepCaps,
	})
	if err != nil {
		return 0, failure(fmt.Errorf("encoding the command's orders: %w", err))
	}
	ordR, ordW, err := os.Pipe()
	if err != nil {
		return 0, failure(err)
	}
	defer ordW.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		ordR.Close()
		return 0, failure(err)
	}
	defer repR.Close()
	attr := &syscall.SysProcAttr{
		// Its own process group: Run and the init pass signals on
		// once each, and a terminal's ^C reaches the command's group
		// only.
		Setpgid: true,
	}
	if cfg.Foreground {
		attr.Foreground = true
		attr.Ctty = 0
	}
	p, err := os.StartProcess(cfg.Exec[0], cfg.Exec, &os.ProcAttr{
		Dir: "/",
		// The trampoline is a Go program: the command's environment
		// (GODEBUG, GOMAXPROCS, ...) must not steer it. It gets that in
		// its orders.
		Env:   []string{},
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, ordR, repW},
		Sys:   attr,
	})
	ordR.Close()
	repW.Close()
	if err != nil {
		return 0, failure(fmt.Errorf("starting the sandbox's exec trampoline %s: %w", cfg.Exec[0], err))
	}
	pid := p.Pid
	// Waiting is done with wait4, as PID 1 must reap everyone.
	_ = p.Release()
	// It reads its orders before anything else; a write error means it
	// died, which the report below says.
	_, _ = ordW.Write(body)
	ordW.Close()
	// EOF with nothing said: the exec closed the pipe, the command runs.
	rep, _ := io.ReadAll(io.LimitReader(repR, maxStatus))
	if len(rep) > 0 {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
		if st := parseStatus(rep); st.err != nil {
			return 0, st.err
		}
		return 0, failure(fmt.Errorf("the sandbox's exec trampoline failed: %q", rep))
	}
	s.log.Debug("command started", zap.Strings("argv", cfg.Argv), zap.Int("pid", pid))
	return pid, nil
}

// findCommand resolves a command name as execvp would, but on the
// sandbox's PATH and inside its root.
func (s *sandbox) findCommand(name string) (string, *Error) {
	if strings.Contains(name, "/") {
		p := name
		if !path.IsAbs(p) {
			p = path.Join(s.cfg.Workdir, p)
		}
		fd, err := s.openIn(p, unix.O_PATH)
		if err != nil {
			return "", &Error{Code: ExitNotFound, Err: fmt.Errorf("%s: %w inside the sandbox", name, err),
				Hints: []string{"add it to the spec: vzfs ldd --append -o " + s.cfg.Spec + " " + p}}
		}
		unix.Close(fd)
		return name, nil
	}
	pathEnv := lookupEnv(s.cfg.Environ, "PATH")
	for _, dir := range filepath.SplitList(pathEnv) {
		if !path.IsAbs(dir) {
			continue
		}
		p := path.Join(dir, name)
		fd, err := s.openIn(p, unix.O_PATH)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
			return p, nil
		}
	}
	return "", &Error{Code: ExitNotFound, Err: fmt.Errorf("%s: not found on the sandbox's PATH (%s)", name, pathEnv),
		Hints: []string{"add it to the spec: vzfs ldd --append -o " + s.cfg.Spec + " " + name}}
}

// reaped is one child wait4 collected.
type reaped struct {
	pid int
	ws  unix.WaitStatus
}

// wait passes signals on to the command until it ends, then kills what
// it left behind, reaps everything and returns its exit status.
func (s *sandbox) wait(pid int, sigs <-chan os.Signal) int {
	children := make(chan reaped, 16)
	go func() {
		defer close(children)
		for {
			var ws unix.WaitStatus
			p, err := unix.Wait4(-1, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return // ECHILD: nobody left
			}
			children <- reaped{p, ws}
		}
	}()
	code := -1
	var deadline <-chan time.Time
	for {
		select {
		case sig := <-sigs:
			if code < 0 {
				s.log.Debug("forwarding signal", zap.Stringer("signal", sig))
				_ = unix.Kill(pid, sig.(syscall.Signal))
			}
		case c, ok := <-children:
			if !ok {
				return max(code, 0)
			}
			if c.pid != pid || code >= 0 {
				continue
			}
			code = exitStatus(c.ws)
			// What the command left running goes with it; PID 1's
			// kill(-1) reaches the sandbox's processes only.
			_ = unix.Kill(-1, unix.SIGKILL)
			deadline = time.After(10 * time.Second)
		case <-deadline:
			s.log.Warn("processes left by the command did not die; leaving them to the kernel")
			return code
		}
	}
}

// exitStatus is a shell's $? for ws.
func exitStatus(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return ExitFailure
}

// teardown unmounts everything: the scratch tmpfs and all below it go in
// one lazy detach, after which the FUSE server sees its mount released
// and stops. It runs once; exiting would drop it all anyway, but the
// server deserves a clean end (learn mode will write the spec then).
func (s *sandbox) teardown() {
	if s.rootFd >= 0 {
		unix.Close(s.rootFd)
		s.rootFd = -1
	}
	if s.scratch != "" {
		if err := unix.Unmount(s.scratch, unix.MNT_DETACH); err != nil {
			s.log.Warn("unmounting the sandbox", zap.String("path", s.scratch), zap.Error(err))
		}
		s.scratch = ""
	}
	mounted := s.srv != nil
	if s.srv != nil {
		select {
		case <-s.srv.Done():
		case <-time.After(10 * time.Second):
			s.log.Warn("the view's server did not stop after unmount; exiting anyway")
		}
		s.srv = nil
	}
	if s.learner != nil {
		s.closeLearner(mounted)
		s.learner = nil
	}
}

// closeLearner ends learn mode: after a run, the report and the rewrite
// of the spec, sorted and deduplicated; after a failed setup, only the
// lock goes. Its lookups have all been answered (the server is done, or
// Close makes any late one fail), so nothing is lost either way.
func (s *sandbox) closeLearner(mounted bool) {
	if !mounted {
		s.learner.Release()
		return
	}
	s.learner.LogReport(s.log)
	if err := s.learner.Close(); err != nil {
		s.log.Error("learned spec left unsorted; it is valid as appended", zap.Error(err))
	}
}
