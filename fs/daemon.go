package fs

// The lifecycle of a mount daemon, apart from the command line: starting a
// detached daemon and waiting until its mount is live, serving until
// unmounted or signalled, finding the daemon of a mountpoint, and stopping
// it. Kept here, not in cmd/vzfs, so it is testable without a process and
// the command only parses flags.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/spec"
)

// Readiness protocol between the starter and its daemon child, over a
// pipe: one line "OK", or "ERR <exit code>" followed by the error line and
// hint lines. EOF without either means the child died. A pipe, not a
// signal or a poll of /proc/mounts, because it carries the failure (and
// its exit code and hints) back to the user's terminal, which the
// detached daemon no longer has.

// DaemonReadyFd is the fd on which StartDaemon's child finds the write end
// of the readiness pipe; the child's arguments must tell it so.
const DaemonReadyFd = 3

// DaemonError is a failure a daemon reported before its mount was live:
// the exit code and hints the daemon would have shown, for the starter to
// show instead.
type DaemonError struct {
	Code  int
	Msg   string
	Hints []string
}

func (e *DaemonError) Error() string { return e.Msg }

// DaemonDiedError reports a daemon that exited without reporting, so the
// cause is only in its log.
type DaemonDiedError struct {
	Err error // from Wait; nil when it exited 0
}

func (e *DaemonDiedError) Error() string {
	return fmt.Sprintf("mount daemon exited before the mount was live: %v", e.Err)
}

func (e *DaemonDiedError) Unwrap() error { return e.Err }

// ReportReady tells the waiting starter how the mount went: err nil means
// live. A *DaemonError in err carries its code and hints; any other error
// is reported with code 1. fd is closed after, so a second report cannot
// happen.
func ReportReady(fd int, err error) {
	f := os.NewFile(uintptr(fd), "ready")
	if f == nil {
		return
	}
	defer f.Close()
	_, _ = io.WriteString(f, readyMessage(err))
}

func readyMessage(err error) string {
	if err == nil {
		return "OK\n"
	}
	de := &DaemonError{Code: 1, Msg: err.Error()}
	errors.As(err, &de)
	var b strings.Builder
	fmt.Fprintf(&b, "ERR %d\n%s\n", de.Code, oneLine(de.Msg))
	for _, h := range de.Hints {
		b.WriteString(oneLine(h) + "\n")
	}
	return b.String()
}

// oneLine keeps a multi-line message from being read as hints.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// readReady reads the child's report. ok false means it reported nothing
// (it died), and the caller asks Wait why.
func readReady(r io.Reader) (ok bool, err error) {
	br := bufio.NewReader(r)
	status, _ := br.ReadString('\n')
	status = strings.TrimSpace(status)
	switch {
	case status == "OK":
		return true, nil
	case strings.HasPrefix(status, "ERR "):
		code, _ := strconv.Atoi(strings.TrimPrefix(status, "ERR "))
		msg, _ := br.ReadString('\n')
		de := &DaemonError{Code: code, Msg: strings.TrimSpace(msg)}
		for {
			h, err := br.ReadString('\n')
			if h = strings.TrimSpace(h); h != "" {
				de.Hints = append(de.Hints, h)
			}
			if err != nil {
				break
			}
		}
		return true, de
	default:
		return false, nil
	}
}

// StartDaemon re-executes the running binary with args as a session leader
// (setsid: no terminal, no job-control signals) in /, so it holds no
// directory busy, with stdio on /dev/null and the readiness pipe on
// DaemonReadyFd. It returns the daemon's pid once the daemon reports its
// mount live, a *DaemonError when the daemon reported a failure (it has
// exited by then), or a *DaemonDiedError when it exited without a word.
func StartDaemon(args []string) (pid int, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding the vzfs binary: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return 0, err
	}
	defer devnull.Close()
	child := exec.Command(exe, args...)
	child.Dir = "/"
	child.Stdin, child.Stdout, child.Stderr = devnull, devnull, devnull
	child.ExtraFiles = []*os.File{w} // fd 3 == DaemonReadyFd
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("starting the mount daemon: %w", err)
	}
	// Only the child may hold the write end, or EOF never comes.
	w.Close()
	pid = child.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()

	reported, rerr := readReady(r)
	switch {
	case reported && rerr == nil:
		// The daemon lives on; the goroutine reaps it only if this
		// process outlives it, which the command does not.
		return pid, nil
	case reported:
		<-exited
		return pid, rerr
	default:
		return pid, &DaemonDiedError{Err: <-exited}
	}
}

// caught receives SIGINT and SIGTERM once CatchSignals has run.
var (
	caught    = make(chan os.Signal, 2)
	catchOnce sync.Once
)

// CatchSignals starts holding SIGINT and SIGTERM for ServeUntilSignal. A
// daemon calls it before mounting: a signal that arrives while the mount
// is being set up (Ctrl-C in the foreground) would otherwise kill it with
// the default action, leaving a dead mount and a learned spec that is never
// rewritten. Held signals are acted on as soon as ServeUntilSignal runs.
func CatchSignals() {
	catchOnce.Do(func() { signal.Notify(caught, syscall.SIGINT, syscall.SIGTERM) })
}

// ServeUntilSignal is the daemon's body once srv is mounted: it writes the
// pid file that StopDaemon finds the daemon by, calls ready (may be nil)
// once SIGINT and SIGTERM are caught, and returns when the mount is gone.
// On a signal it unmounts, detaching the mount (lazy) when it is busy so
// the daemon can exit and no dead mount is left behind; the kernel frees
// it when its last user leaves. Learn mode's spec rewrite, done by the
// caller after this returns, thus always runs.
func ServeUntilSignal(srv *Server, log *zap.Logger, ready func()) error {
	if log == nil {
		log = zap.NewNop()
	}
	mnt := srv.Mountpoint()
	if err := WritePidFile(mnt); err != nil {
		log.Warn("cannot write pid file; vzfs umount will not wait for this daemon", zap.Error(err))
	}
	defer RemovePidFile(mnt)

	CatchSignals()
	if ready != nil {
		ready()
	}
	select {
	case <-srv.Done():
		log.Info("unmounted from outside", zap.String("mountpoint", mnt))
	case sig := <-caught:
		log.Info("signal: unmounting", zap.Stringer("signal", sig))
		if err := srv.Unmount(); err != nil {
			log.Warn("mount busy, detaching it", zap.Error(err))
			if err := Unmount(mnt, true); err != nil {
				return fmt.Errorf("unmounting %s: %w", mnt, err)
			}
			srv.Wait()
		}
	}
	return nil
}

// ClearDeadMount unmounts the dead FUSE mount on mnt (a killed daemon's),
// lazily if a plain unmount fails, and removes the dead daemon's pid file.
func ClearDeadMount(mnt string) error {
	if err := Unmount(mnt, false); err != nil {
		if err = Unmount(mnt, true); err != nil {
			return fmt.Errorf("clearing dead mount: %w", err)
		}
	}
	RemovePidFile(mnt)
	return nil
}

// The daemon of a mount is found through a pid file named after the
// mountpoint, under /run/vzfs/mounts (root) or the user's runtime dir:
// mountinfo does not say which process serves a FUSE mount.

func pidDir() string {
	if os.Geteuid() == 0 {
		return "/run/vzfs/mounts"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "vzfs", "mounts")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("vzfs-%d", os.Geteuid()), "mounts")
}

// PidFile returns the pid file of the daemon serving mnt (absolute). It
// holds the pid and mnt, one a line.
func PidFile(mnt string) string {
	return filepath.Join(pidDir(), url.PathEscape(mnt)+".pid")
}

// WritePidFile records this process as the daemon serving mnt. It is
// written atomically, so a reader never sees half a pid.
func WritePidFile(mnt string) error {
	p := PidFile(mnt)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	body := fmt.Sprintf("%d\n%s\n", os.Getpid(), mnt)
	return spec.WriteFileAtomic(p, func(w io.Writer) error { _, err := io.WriteString(w, body); return err })
}

// RemovePidFile removes mnt's pid file, if any.
func RemovePidFile(mnt string) { _ = os.Remove(PidFile(mnt)) }

// DaemonPid returns the pid of the daemon serving mnt, if its pid file
// names a live process whose command line is a mount of mnt. The pid may
// have been reused since the daemon died, hence the command line check.
func DaemonPid(mnt string) (int, bool) {
	b, err := os.ReadFile(PidFile(mnt))
	if err != nil {
		return 0, false
	}
	lines := strings.SplitN(string(b), "\n", 3)
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 || len(lines) < 2 || lines[1] != mnt {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "\x00mount\x00") || !strings.Contains(string(cmdline), "\x00"+mnt) {
		return 0, false
	}
	return pid, true
}

// WaitGone waits up to d for process pid to exit, and reports whether it
// did. A zombie counts as gone: it serves nothing, and its parent may not
// be us to reap it.
func WaitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			return true
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				return true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// DaemonStillRunningError reports a daemon that outlived its unmount by
// more than StopDaemon's wait.
type DaemonStillRunningError struct {
	Mountpoint string
	Pid        int
	Wait       time.Duration
}

func (e *DaemonStillRunningError) Error() string {
	return fmt.Sprintf("%s: unmounted, but daemon pid %d has not exited after %v", e.Mountpoint, e.Pid, e.Wait)
}

// StopDaemon unmounts mnt (absolute), lazily with lazy, and waits up to
// wait for the daemon that served it to exit, so that when it returns
// nothing of the mount is left (a learning daemon has rewritten its spec).
// pid is the daemon's, 0 when no pid file named a live daemon. A lazy
// unmount of a busy mount leaves the daemon serving the remaining users:
// then detached is true and StopDaemon returns after a second. A busy
// mount without lazy gives an error wrapping unix.EBUSY; a daemon that
// does not exit in time, a *DaemonStillRunningError.
func StopDaemon(mnt string, lazy bool, wait time.Duration) (pid int, detached bool, err error) {
	pid, havePid := DaemonPid(mnt)
	if err := Unmount(mnt, lazy); err != nil {
		return pid, false, err
	}
	if havePid && lazy && !WaitGone(pid, time.Second) {
		return pid, true, nil
	}
	if havePid && !WaitGone(pid, wait) {
		return pid, false, &DaemonStillRunningError{Mountpoint: mnt, Pid: pid, Wait: wait}
	}
	RemovePidFile(mnt)
	return pid, false, nil
}
