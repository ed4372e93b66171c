package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/vzfs/vzfs/spec"
)

// forwarded are the signals Run and the init pass on to the command.
var forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT}

// config is what Run sends the init on fd 3.
type config struct {
	Options
	// Environ is the command's final environment.
	Environ []string
	// Foreground makes the command the terminal's foreground process
	// group, so ^C and ^Z reach it and it may read the terminal.
	Foreground bool `json:",omitempty"`
}

// Run runs o.Argv in a sandbox of the spec o.Spec and returns its exit
// status, 128+N if a signal N ended it. Run passes SIGINT, SIGTERM, SIGHUP
// and SIGQUIT on to the command while it runs. A failure of the sandbox
// itself is an *Error, with the exit status vzfs should end with.
//
// Run needs root. It starts the init (o.Init) in a new mount and PID
// namespace that dies with Run: the init serves the view, builds the
// sandbox and runs the command, and when the command ends (or Run is
// killed) every process and mount in the sandbox goes with it.
func Run(o Options) (int, error) {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := prepare(o)
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		return 0, failure(fmt.Errorf("encoding sandbox options: %w", err))
	}
	if len(o.Init) == 0 || len(o.Exec) == 0 {
		return 0, failure(errors.New("sandbox: no init or exec trampoline command"))
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return 0, failure(err)
	}
	defer cfgW.Close()
	stR, stW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return 0, failure(err)
	}
	defer stR.Close()

	child := exec.Command(o.Init[0], o.Init[1:]...)
	child.Stdin, child.Stdout, child.Stderr = orStd(o.Stdin, os.Stdin), orStd(o.Stdout, os.Stdout), orStd(o.Stderr, os.Stderr)
	child.ExtraFiles = []*os.File{cfgR, stW}
	child.Dir = "/"
	child.SysProcAttr = &syscall.SysProcAttr{
		// A private mount namespace: nothing mounted inside is seen
		// outside, and it all goes when its last process does. Go makes
		// "/" rprivate in the child before exec, so no mount propagates
		// back to the host.
		Unshareflags: unix.CLONE_NEWNS,
		// A PID namespace makes the init its PID 1: when the init dies,
		// the kernel kills every process left in the sandbox, and a fresh
		// /proc shows the sandbox's processes only.
		Cloneflags: unix.CLONE_NEWPID,
		// If vzfs dies, even by SIGKILL, the init dies too, and with it
		// the namespaces.
		Pdeathsig: unix.SIGKILL,
		// Signals to vzfs's process group (a shell's job control, a
		// test harness) must reach the command once, through Run, not a
		// second time through the init.
		Setpgid: true,
	}
	// Catch signals before the init exists, so none is lost between
	// Start and forwarding.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	err = child.Start()
	cfgR.Close()
	stW.Close()
	if err != nil {
		return 0, failure(fmt.Errorf("starting the sandbox init %s: %w", o.Init[0], err))
	}
	if cfg.Foreground {
		// The command takes the terminal; taking it back afterwards
		// from the background needs SIGTTOU ignored. Ignoring it only
		// now keeps the init and the command from inheriting that.
		signal.Ignore(unix.SIGTTOU)
	}
	log.Debug("sandbox init started", zap.Int("pid", child.Process.Pid))
	go func() {
		// The init reads its orders before anything else; a write
		// error means it died, which Wait reports.
		_, _ = cfgW.Write(body)
		cfgW.Close()
	}()
	report := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(stR, maxStatus))
		report <- b
	}()
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()

	var werr error
wait:
	for {
		select {
		case sig := <-sigs:
			log.Debug("forwarding signal", zap.Stringer("signal", sig))
			_ = child.Process.Signal(sig)
		case werr = <-exited:
			break wait
		}
	}
	if cfg.Foreground {
		_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
	}
	st := parseStatus(<-report)
	switch {
	case st.err != nil:
		return 0, st.err
	case st.exited:
		return st.code, nil
	}
	// The init died without saying how the command ended: it crashed or
	// was killed from outside.
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 0, &Error{Code: 128 + int(ws.Signal()), Err: fmt.Errorf("sandbox init killed by %v", ws.Signal())}
		}
		return 0, failure(fmt.Errorf("sandbox init failed: %v", werr))
	}
	return 0, failure(errors.New("sandbox init ended without reporting the command's status"))
}

func orStd(f, std *os.File) *os.File {
	if f != nil {
		return f
	}
	return std
}

// prepare checks everything that can be checked from outside the sandbox,
// so that common mistakes exit 2 with one clear line before anything is
// mounted, and fills in the init's config.
func prepare(o Options) (*config, error) {
	if len(o.Argv) == 0 || o.Argv[0] == "" {
		return nil, usage(errors.New("no command to run"), "put it after the spec: vzfs run SPEC -- COMMAND [ARG...]")
	}
	if os.Geteuid() != 0 {
		return nil, usage(errors.New("vzfs run needs root: it mounts the view and makes mount and PID namespaces"),
			"run it with sudo; rootless sandboxes in a user namespace are not supported yet")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, usage(fmt.Errorf("FUSE is not available: %w", err), "load the fuse module (modprobe fuse) or, in a container, pass --device /dev/fuse")
	}
	if o.Writable {
		if ok, why := overlayAvailable(); !ok {
			return nil, usage(fmt.Errorf("--writable needs overlayfs, and this kernel has none (%s)", why), "load it with 'modprobe overlay', or run without --writable")
		}
	}
	abs, err := filepath.Abs(o.Spec)
	if err != nil {
		return nil, usage(err)
	}
	o.Spec = abs
	if fi, err := os.Stat(o.Spec); err != nil {
		return nil, usage(fmt.Errorf("spec %s: %w", o.Spec, unwrapPath(err)), "write one with 'vzfs ldd -o "+o.Spec+" COMMAND'")
	} else if fi.IsDir() {
		return nil, usage(fmt.Errorf("spec %s: is a directory, not a spec file", o.Spec))
	}
	if o.View.LearnLog != "" {
		if !o.View.Learn {
			return nil, usage(errors.New("a learn log needs learn mode"), "add --learn")
		}
		if o.View.LearnLog, err = filepath.Abs(o.View.LearnLog); err != nil {
			return nil, usage(err)
		}
	}
	if o.Workdir == "" {
		o.Workdir = "/"
	}
	if err := spec.Validate(o.Workdir); err != nil {
		return nil, usage(fmt.Errorf("--workdir: %w", err))
	}
	binds := make([]Bind, len(o.Binds))
	for i, b := range o.Binds {
		fi, err := os.Stat(b.Src)
		if err != nil {
			return nil, usage(fmt.Errorf("bind source %s: %w", b.Src, unwrapPath(err)))
		}
		b.Dir = fi.IsDir()
		binds[i] = b
	}
	o.Binds = binds
	var uid uint32
	if o.User != nil {
		uid = o.User.Uid
	}
	cfg := &config{Options: o, Environ: Environ(os.Environ(), o.KeepEnv, uid, o.Env)}
	cfg.Foreground = isForeground(o.Stdin)
	return cfg, nil
}

// unwrapPath drops the path from a *PathError, which the message already
// names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// isForeground reports whether stdin is a terminal whose foreground
// process group is ours: then the command should take it over.
func isForeground(stdin *os.File) bool {
	fd := 0
	if stdin != nil {
		fd = int(stdin.Fd())
	}
	if fd != 0 || !term.IsTerminal(fd) {
		// Foreground in the init uses fd 0 as the terminal.
		return false
	}
	pg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pg == unix.Getpgrp()
}

// overlayAvailable reports whether the kernel has overlayfs, loaded or
// loadable on demand (the kernel asks modprobe for "fs-overlay" at mount).
func overlayAvailable() (bool, string) {
	if b, err := os.ReadFile("/proc/filesystems"); err == nil && filesystemsHas(b, "overlay") {
		return true, ""
	}
	if _, err := os.Stat("/sys/module/overlay"); err == nil {
		return true, ""
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		rel := unix.ByteSliceToString(u.Release[:])
		for _, f := range []string{"modules.dep", "modules.builtin"} {
			b, err := os.ReadFile(filepath.Join("/lib/modules", rel, f))
			if err == nil && strings.Contains(string(b), "/overlay.ko") {
				return true, ""
			}
		}
	}
	return false, "not in /proc/filesystems, and no overlay module"
}

// filesystemsHas reports whether /proc/filesystems lists fstype.
func filesystemsHas(b []byte, fstype string) bool {
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}
