package tracer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Errors Run returns, wrapped with details; test them with errors.Is.
var (
	// ErrNoStrace: strace is not installed or not at Options.Strace.
	ErrNoStrace = errors.New("strace not found")
	// ErrPtrace: strace runs but cannot trace (ptrace refused, seccomp).
	ErrPtrace = errors.New("strace cannot trace processes here")
	// ErrCommand: the command to trace cannot be found or started.
	ErrCommand = errors.New("cannot run the command")
)

// Options configures Run.
type Options struct {
	// Strace is the strace binary; "" looks up "strace" on PATH.
	Strace string
	// Exclude adds path prefixes to DefaultExclude; the caller's own output
	// files (spec, log, misses) belong here.
	Exclude []string
	// KeepLog, if set, receives a copy of strace's raw log.
	KeepLog string
	// Stdin, Stdout and Stderr are the command's; nil means vzfs's own, so
	// the command sees the same terminal or files vzfs does.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Log receives progress and warnings; nil discards them.
	Log *zap.Logger
}

// straceArgs are the fixed options: follow forks, no attach/exit chatter,
// decode descriptors to paths, strings long enough for PATH_MAX, no signal
// lines (they carry no paths).
var straceArgs = []string{"-f", "-qq", "-y", "-s", "4096", "-e", "signal=none",
	"-e", "trace=%file,%process,chdir,fchdir"}

// Run runs argv under strace and returns what it used and the command's
// exit status (128+N if signal N killed it). The Trace is returned with a
// nil error whatever the command's status; a non-nil error means the trace
// could not be taken.
func Run(ctx context.Context, o Options, argv []string) (*Trace, int, error) {
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	if len(argv) == 0 {
		return nil, 0, fmt.Errorf("%w: no command given", ErrCommand)
	}
	strace, err := findStrace(o.Strace)
	if err != nil {
		return nil, 0, err
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrCommand, err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, 0, fmt.Errorf("finding the working directory: %w", err)
	}

	// --seccomp-bpf (strace 5.3 and later) stops the command only at
	// traced syscalls. Rather than spend a process asking strace's version,
	// try it: an older strace rejects the option before running anything,
	// and the run is repeated without it.
	t, status, err := runOnce(ctx, o, log, strace, cwd, argv, true)
	if errors.Is(err, errNoLog) {
		t, status, err = runOnce(ctx, o, log, strace, cwd, argv, false)
	}
	if errors.Is(err, errNoLog) {
		// strace never traced a single call: it could not start the
		// command, or could not trace at all. Ask it why, quietly.
		if msg, ok := probe(strace); !ok {
			return nil, status, fmt.Errorf("%w: %s", ErrPtrace, msg)
		}
		return nil, status, fmt.Errorf("%w: strace exited with status %d before running %s", ErrCommand, status, argv[0])
	}
	return t, status, err
}

// errNoLog: strace wrote no log line at all.
var errNoLog = errors.New("strace wrote no log")

// runOnce runs strace once; see Run.
func runOnce(ctx context.Context, o Options, log *zap.Logger, strace, cwd string, argv []string, seccomp bool) (*Trace, int, error) {
	dir, err := os.MkdirTemp("", "vzfs-trace-")
	if err != nil {
		return nil, 0, fmt.Errorf("making the log FIFO: %w", err)
	}
	defer os.RemoveAll(dir)
	fifo := filepath.Join(dir, "strace.log")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return nil, 0, fmt.Errorf("making the log FIFO %s: %w", fifo, err)
	}
	// The FIFO's birth is the run's start on the kernel's clock, the same
	// clock that stamps the files the command creates.
	started := stamp(fifo)

	// Open the read end without blocking, then hold a write end ourselves,
	// so the reader sees EOF only once strace is gone, even if strace dies
	// before it ever opens the FIFO.
	rfd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("opening the log FIFO %s: %w", fifo, err)
	}
	hold, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		unix.Close(rfd)
		return nil, 0, fmt.Errorf("opening the log FIFO %s: %w", fifo, err)
	}
	// Then read it blocking, outside Go's netpoller. strace writes every
	// line in two write(2) calls, and an fd in the (edge-triggered) poller
	// wakes the runtime at each of them, even while the parser sleeps:
	// thousands of wakeups that the command and strace pay for on a
	// machine with few cores. A blocking read wakes only a waiting reader.
	if err := unix.SetNonblock(rfd, false); err != nil {
		unix.Close(rfd)
		hold.Close()
		return nil, 0, fmt.Errorf("opening the log FIFO %s: %w", fifo, err)
	}
	rd := os.NewFile(uintptr(rfd), fifo)
	defer rd.Close()
	// A larger pipe lets strace run ahead of the parser in bursts (an
	// exec's ld.so search) instead of stalling the command. Where the limit
	// is lower (/proc/sys/fs/pipe-max-size), the pipe keeps its size.
	_, _ = unix.FcntlInt(uintptr(rfd), unix.F_SETPIPE_SZ, 1<<20)
	pipeSize, _ := unix.FcntlInt(uintptr(rfd), unix.F_GETPIPE_SZ, 0)

	args := []string{}
	if seccomp {
		args = append(args, "--seccomp-bpf")
	}
	args = append(args, straceArgs...)
	args = append(args, "-o", fifo, "--")
	args = append(args, argv...)
	cmd := exec.CommandContext(ctx, strace, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = orFile(o.Stdin, os.Stdin), orWriter(o.Stdout, os.Stdout), orWriter(o.Stderr, os.Stderr)
	// strace started with -o FILE blocks fatal signals (-I 3), and a killed
	// strace leaves its tracees running. So cancellation kills the traced
	// processes themselves; strace then exits as its last tracee does.
	live := &liveSet{pids: map[int]bool{}}
	waited := make(chan struct{})
	batch := newBatchReader(rd, pipeSize)
	cmd.Cancel = func() error {
		// The parser must see new pids at once to kill them.
		batch.drain()
		// Pids appear in the log a little after they start; keep killing
		// until strace is gone.
		go func() {
			for {
				for _, pid := range live.list() {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
				select {
				case <-waited:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		return nil
	}
	cmd.WaitDelay = 10 * time.Second

	var keep *os.File
	var src io.Reader = batch
	var keepW *bufio.Writer
	if o.KeepLog != "" {
		keep, err = os.Create(o.KeepLog)
		if err != nil {
			hold.Close()
			return nil, 0, fmt.Errorf("creating --keep-log file: %w", err)
		}
		defer keep.Close()
		keepW = bufio.NewWriterSize(keep, 256<<10)
		src = io.TeeReader(batch, keepW)
	}

	excl := append([]string{}, o.Exclude...)
	if o.KeepLog != "" {
		if a, err := filepath.Abs(o.KeepLog); err == nil {
			excl = append(excl, a)
		}
	}
	type parsed struct {
		t   *Trace
		err error
	}
	done := make(chan parsed, 1)
	if err := cmd.Start(); err != nil {
		hold.Close()
		return nil, 0, fmt.Errorf("%w: starting %s: %v", ErrNoStrace, strace, err)
	}
	log.Debug("tracing", zap.String("strace", strace), zap.Strings("args", args))
	go func() {
		t, err := parse(src, ParseOptions{Cwd: cwd, Exclude: excl, Host: true, Started: started, Log: log}, live)
		done <- parsed{t, err}
	}()
	waitErr := cmd.Wait()
	close(waited)
	// What is left in the pipe is all there will be: read it at once.
	batch.drain()
	hold.Close()
	res := <-done
	if keepW != nil {
		if err := keepW.Flush(); err != nil {
			return nil, 0, fmt.Errorf("writing --keep-log file %s: %w", o.KeepLog, err)
		}
		if err := keep.Close(); err != nil {
			return nil, 0, fmt.Errorf("writing --keep-log file %s: %w", o.KeepLog, err)
		}
	}
	if res.err != nil {
		return nil, 0, res.err
	}

	status := 0
	if cmd.ProcessState != nil {
		status = exitStatus(cmd.ProcessState)
	}
	if ctx.Err() != nil {
		return res.t, status, ctx.Err()
	}
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		return nil, 0, fmt.Errorf("running strace: %w", waitErr)
	}
	if res.t.Lines == 0 {
		return nil, status, errNoLog
	}
	return res.t, status, nil
}

func findStrace(name string) (string, error) {
	if name == "" {
		name = "strace"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoStrace, err)
	}
	return p, nil
}

// probe runs strace on true(1) and reports whether it can trace, with its
// complaint if not.
func probe(strace string) (string, bool) {
	var errb bytes.Buffer
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=none", "true")
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		msg := bytes.TrimSpace(errb.Bytes())
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) == 0 {
			return err.Error(), false
		}
		return string(msg), false
	}
	return "", true
}

// stamp returns the birth time of name, or its change time where the file
// system has no birth time (they are equal for a file just made).
func stamp(name string) time.Time {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME|unix.STATX_CTIME, &st); err != nil {
		return time.Now()
	}
	if st.Mask&unix.STATX_BTIME != 0 {
		return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec))
	}
	return time.Unix(st.Ctime.Sec, int64(st.Ctime.Nsec))
}

func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func orFile(r io.Reader, def *os.File) io.Reader {
	if r == nil {
		return def
	}
	return r
}

func orWriter(w io.Writer, def *os.File) io.Writer {
	if w == nil {
		return def
	}
	return w
}

// batchReader reads the FIFO in batches: once it has emptied the pipe it
// pauses, so strace's lines pile up there, instead of waking for each of
// strace's writes (two per line). On a machine with few cores the command,
// strace and vzfs compete, and every wakeup of vzfs, including the Go
// runtime's own (its sysmon thread polls every 20µs for a while after each
// syscall), is time taken from the command. The pause adapts to the log
// rate so that the pipe stays well below full and strace never blocks on
// it; drain ends the pauses once strace is gone.
type batchReader struct {
	r          io.Reader
	size       int // pipe capacity
	pause      time.Duration
	minP, maxP time.Duration // bounds of pause
	got        int           // bytes read since the last pause
	timer      *time.Timer
	done       chan struct{}
	once       sync.Once
}

// Bounds of the pause. At the longest pause, filling a quarter of a 1 MiB
// pipe takes 5 MB/s of log, some 40000 lines a second.
const (
	minPause = time.Millisecond
	maxPause = 50 * time.Millisecond
)

func newBatchReader(r io.Reader, pipeSize int) *batchReader {
	t := time.NewTimer(time.Hour)
	t.Stop()
	if pipeSize <= 0 {
		pipeSize = 64 << 10
	}
	return &batchReader{r: r, size: pipeSize, pause: maxPause / 5, minP: minPause, maxP: maxPause,
		timer: t, done: make(chan struct{})}
}

// drain ends the pauses: strace is gone (or being stopped), so nothing
// more will pile up and the rest should be parsed without delay.
func (b *batchReader) drain() { b.once.Do(func() { close(b.done) }) }

func (b *batchReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.got += n
	if err != nil || n == len(p) {
		// The pipe may hold more: read on.
		return n, err
	}
	// The pipe is empty. Aim for a quarter of it per pause.
	switch {
	case b.got > b.size/4:
		b.pause = max(b.pause/2, b.minP)
	case b.got < b.size/16:
		b.pause = min(b.pause*2, b.maxP)
	}
	b.got = 0
	select {
	case <-b.done:
		return n, err
	default:
	}
	b.timer.Reset(b.pause)
	select {
	case <-b.timer.C:
	case <-b.done:
		b.timer.Stop()
	}
	return n, err
}
