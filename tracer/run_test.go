package tracer

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireStrace skips without strace, except in CI (VZFS_REQUIRE_FUSE=1),
// where strace is installed and its absence is a failure.
func requireStrace(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("strace"); err != nil {
		if os.Getenv("VZFS_REQUIRE_FUSE") == "1" {
			t.Fatal("strace is missing and VZFS_REQUIRE_FUSE=1 forbids skipping")
		}
		t.Skip("needs strace")
	}
}

// TestRunCreatedRule runs a real command that reads one file, appends to
// another that existed, and creates a third: the first two are kept, the
// third is left out by the birth-time rule. The status is the command's.
func TestRunCreatedRule(t *testing.T) {
	requireStrace(t)
	dir, err := os.MkdirTemp("/var/tmp", "vzfs-tracer-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	read, appended, created := filepath.Join(dir, "read"), filepath.Join(dir, "appended"), filepath.Join(dir, "created")
	must(t, os.WriteFile(read, []byte("r\n"), 0o644))
	must(t, os.WriteFile(appended, []byte("a\n"), 0o644))
	script := "cat " + read + " >/dev/null; echo x >> " + appended + "; echo y > " + created + "; exit 3"
	tr, status, err := Run(context.Background(), Options{Stdout: os.Stderr}, []string{"sh", "-c", script})
	if err != nil {
		t.Fatal(err)
	}
	if status != 3 {
		t.Errorf("status = %d, want 3", status)
	}
	wantIn(t, "Paths", tr.Paths, read, appended, "/usr/bin/cat")
	wantNotIn(t, "Paths", tr.Paths, created)
	wantIn(t, "Created", tr.Created, created)
	wantIn(t, "Execs", tr.Execs, "/usr/bin/cat")
}

func TestRunSignal(t *testing.T) {
	requireStrace(t)
	_, status, err := Run(context.Background(), Options{}, []string{"sh", "-c", "kill -9 $$"})
	if err != nil {
		t.Fatal(err)
	}
	if status != 128+9 {
		t.Errorf("status = %d, want 137", status)
	}
}

func TestRunErrors(t *testing.T) {
	requireStrace(t)
	if _, _, err := Run(context.Background(), Options{Strace: "/nonexistent/strace"}, []string{"true"}); !errors.Is(err, ErrNoStrace) {
		t.Errorf("missing strace: err = %v, want ErrNoStrace", err)
	}
	if _, _, err := Run(context.Background(), Options{}, []string{"vzfs-no-such-command"}); !errors.Is(err, ErrCommand) {
		t.Errorf("missing command: err = %v, want ErrCommand", err)
	}
}

// TestRunCancel checks that cancelling stops the command and returns.
func TestRunCancel(t *testing.T) {
	requireStrace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := Run(ctx, Options{}, []string{"sleep", "30"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v after cancel", d)
	}
}

// fakeStrace writes a shell script standing in for strace.
func fakeStrace(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "strace")
	must(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

// TestRunOldStrace checks the retry without --seccomp-bpf for a strace
// that does not know it.
func TestRunOldStrace(t *testing.T) {
	requireStrace(t)
	real, _ := exec.LookPath("strace")
	fake := fakeStrace(t, `for a; do [ "$a" = --seccomp-bpf ] && { echo "strace: unrecognized option '--seccomp-bpf'" >&2; exit 1; }; done
exec `+real+` "$@"
`)
	tr, status, err := Run(context.Background(), Options{Strace: fake, Stderr: io.Discard}, []string{"cat", "/etc/hostname"})
	if err != nil {
		t.Fatal(err)
	}
	if status != 0 {
		t.Errorf("status = %d", status)
	}
	wantIn(t, "Paths", tr.Paths, "/etc/hostname")
}

// TestRunPtraceRefused checks that a strace that cannot trace gives
// ErrPtrace with strace's own words.
func TestRunPtraceRefused(t *testing.T) {
	fake := fakeStrace(t, `echo "strace: test_ptrace_get_syscall_info: PTRACE_TRACEME: Operation not permitted" >&2; exit 1
`)
	_, _, err := Run(context.Background(), Options{Strace: fake, Stderr: io.Discard}, []string{"true"})
	if !errors.Is(err, ErrPtrace) || !strings.Contains(err.Error(), "Operation not permitted") {
		t.Errorf("err = %v, want ErrPtrace with strace's message", err)
	}
}
