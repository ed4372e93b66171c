package fs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

func TestReadyProtocolRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       error
		reported bool
		want     *DaemonError
	}{
		{name: "ok", reported: true},
		{name: "plain error is code 1", in: errors.New("boom"), reported: true, want: &DaemonError{Code: 1, Msg: "boom"}},
		{
			name:     "code, hints, newlines flattened",
			in:       &DaemonError{Code: 2, Msg: "bad\nspec", Hints: []string{"fix line 3", "or\nthat"}},
			reported: true,
			want:     &DaemonError{Code: 2, Msg: "bad spec", Hints: []string{"fix line 3", "or that"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := readReady(strings.NewReader(readyMessage(tc.in)))
			if ok != tc.reported {
				t.Fatalf("reported = %v, want %v", ok, tc.reported)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			var de *DaemonError
			if !errors.As(err, &de) || !reflect.DeepEqual(de, tc.want) {
				t.Fatalf("err = %#v, want %#v", err, tc.want)
			}
		})
	}
}

func TestReadyProtocolSilentChild(t *testing.T) {
	for _, in := range []string{"", "garbage\n", "OKAY\n"} {
		if ok, err := readReady(strings.NewReader(in)); ok || err != nil {
			t.Errorf("readReady(%q) = %v, %v; want not reported", in, ok, err)
		}
	}
}

// TestReportReadyOverPipe checks the fd end: the report arrives and the fd
// is closed after it, so the reader sees EOF.
func TestReportReadyOverPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fd, err := unix.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	ReportReady(fd, &DaemonError{Code: 2, Msg: "no", Hints: []string{"h"}})
	ok, rerr := readReady(r)
	var de *DaemonError
	if !ok || !errors.As(rerr, &de) || de.Code != 2 || de.Msg != "no" || len(de.Hints) != 1 {
		t.Fatalf("got %v, %#v", ok, rerr)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("fd %d still open after ReportReady: %v", fd, err)
	}
}

// startFakeDaemon starts a process whose command line looks like a mount
// daemon's for mnt, and reaps it in cleanup.
func startFakeDaemon(t *testing.T, mnt string) *exec.Cmd {
	t.Helper()
	c := exec.Command("sh", "-c", "sleep 30", "mount", mnt)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Process.Kill()
		_ = c.Wait()
	})
	return c
}

func writeTestPidFile(t *testing.T, mnt, body string) {
	t.Helper()
	p := PidFile(mnt)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemovePidFile(mnt) })
}

func TestDaemonPid(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "view with space")
	if _, ok := DaemonPid(mnt); ok {
		t.Fatal("DaemonPid found a daemon without a pid file")
	}
	// This test process is no mount daemon: its own pid is rejected.
	if err := WritePidFile(mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemovePidFile(mnt) })
	if pid, ok := DaemonPid(mnt); ok {
		t.Fatalf("DaemonPid accepted pid %d whose command line is no mount", pid)
	}

	c := startFakeDaemon(t, mnt)
	pid := c.Process.Pid
	writeTestPidFile(t, mnt, strconv.Itoa(pid)+"\n"+mnt+"\n")
	if got, ok := DaemonPid(mnt); !ok || got != pid {
		t.Fatalf("DaemonPid = %d, %v; want %d, true", got, ok, pid)
	}
	// A pid file naming another mountpoint is not this mount's.
	writeTestPidFile(t, mnt, strconv.Itoa(pid)+"\n"+mnt+"x\n")
	if _, ok := DaemonPid(mnt); ok {
		t.Fatal("DaemonPid accepted a pid file for another mountpoint")
	}
	for _, body := range []string{"", "\n", "-1\n" + mnt + "\n", "abc\n" + mnt + "\n", strconv.Itoa(pid)} {
		writeTestPidFile(t, mnt, body)
		if _, ok := DaemonPid(mnt); ok {
			t.Errorf("DaemonPid accepted pid file %q", body)
		}
	}
	RemovePidFile(mnt)
	if _, err := os.Stat(PidFile(mnt)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left after RemovePidFile: %v", err)
	}
}

func TestWaitGone(t *testing.T) {
	c := exec.Command("sleep", "30")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	if WaitGone(c.Process.Pid, 50*time.Millisecond) {
		t.Fatal("WaitGone says a sleeping process is gone")
	}
	// Killed but not reaped: a zombie, which serves nothing.
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !WaitGone(c.Process.Pid, 5*time.Second) {
		t.Fatal("WaitGone does not see a killed (zombie) process as gone")
	}
}

func TestDaemonErrorsRead(t *testing.T) {
	de := &DaemonDiedError{Err: errors.New("exit status 3")}
	if got, want := de.Error(), "mount daemon exited before the mount was live: exit status 3"; got != want {
		t.Errorf("DaemonDiedError = %q, want %q", got, want)
	}
	sr := &DaemonStillRunningError{Mountpoint: "/v", Pid: 7, Wait: time.Second}
	if got, want := sr.Error(), "/v: unmounted, but daemon pid 7 has not exited after 1s"; got != want {
		t.Errorf("DaemonStillRunningError = %q, want %q", got, want)
	}
}

// TestServeUntilSignal mounts, signals this process and checks the mount
// is gone, the pid file written while serving and removed after.
func TestServeUntilSignal(t *testing.T) {
	d := fixture(t)
	requireFUSE(t)
	srv, mnt := daemonMount(t, d)
	var pidBody []byte
	done := make(chan error, 1)
	go func() {
		done <- ServeUntilSignal(srv, zaptest.NewLogger(t), func() {
			pidBody, _ = os.ReadFile(PidFile(mnt))
			_ = unix.Kill(os.Getpid(), unix.SIGTERM)
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ServeUntilSignal did not return after SIGTERM")
	}
	if want := strconv.Itoa(os.Getpid()) + "\n" + mnt + "\n"; string(pidBody) != want {
		t.Errorf("pid file while serving = %q, want %q", pidBody, want)
	}
	if _, ok := FindMount(mnt); ok {
		t.Error("still mounted after SIGTERM")
	}
	if _, err := os.Stat(PidFile(mnt)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left after serving: %v", err)
	}
}

// TestSignalBeforeServe: a SIGTERM that arrives while the mount is still
// being set up is held, not fatal, and ends the serve cleanly.
func TestSignalBeforeServe(t *testing.T) {
	d := fixture(t)
	requireFUSE(t)
	CatchSignals()
	if err := unix.Kill(os.Getpid(), unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Without CatchSignals the test binary would have died here.
	time.Sleep(50 * time.Millisecond)
	srv, mnt := daemonMount(t, d)
	done := make(chan error, 1)
	go func() { done <- ServeUntilSignal(srv, zaptest.NewLogger(t), nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the held SIGTERM did not end the serve")
	}
	if _, ok := FindMount(mnt); ok {
		t.Error("still mounted after the held SIGTERM")
	}
}

// daemonMount mounts the fixture d in-process, unmounted (lazily) at the
// end if the test left it mounted.
func daemonMount(t *testing.T, d string) (*Server, string) {
	t.Helper()
	tr, err := NewTree(fixtureSpec(d), TreeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	srv, err := Mount(mnt, tr, MountOptions{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, ok := FindMount(mnt); ok {
			_ = Unmount(mnt, true)
			srv.Wait()
		}
	})
	return srv, mnt
}
