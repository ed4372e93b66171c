package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// The exec trampoline's descriptors, as the init passes them.
const (
	ordersFd = 3
	reportFd = 4
)

// execOrders is what the init tells the exec trampoline on fd 3.
type execOrders struct {
	// Root is the sandbox's root, a mount point in the init's namespace.
	Root string
	// Workdir is the command's working directory inside Root.
	Workdir string
	// Path is the command to execute, as found inside Root.
	Path string
	Argv []string
	Env  []string
	// User is who to become; nil stays root.
	User *User `json:",omitempty"`
	// KeepCaps keeps every capability (--keep-caps).
	KeepCaps bool `json:",omitempty"`
}

// keptCaps are the capabilities root keeps inside the sandbox: those a
// build, an installer or a test suite uses on its own files (owners,
// modes, reading any file, becoming another user, signals) and none that
// reach past the mount namespace. It is a list of what stays, not of
// what goes, so that a capability a newer kernel adds is dropped too.
// Dropped, among others: SYS_CHROOT (the double-chroot escape), SYS_ADMIN
// (mount, and most of the rest), SYS_PTRACE (/proc/1/root, the init's
// descriptors), DAC_READ_SEARCH (open_by_handle_at), MKNOD, SYS_MODULE,
// SYS_RAWIO, SYS_BOOT, NET_ADMIN and NET_RAW (the network is the host's),
// SETPCAP and SETFCAP.
var keptCaps = []uintptr{
	unix.CAP_CHOWN,
	unix.CAP_DAC_OVERRIDE,
	unix.CAP_FOWNER,
	unix.CAP_FSETID,
	unix.CAP_KILL,
	unix.CAP_SETGID,
	unix.CAP_SETUID,
	unix.CAP_NET_BIND_SERVICE,
	unix.CAP_AUDIT_WRITE,
}

// keptMask is keptCaps as a 64-bit capability mask.
func keptMask() uint64 {
	var m uint64
	for _, c := range keptCaps {
		m |= 1 << c
	}
	return m
}

// Exec is the body of the exec trampoline: the process the init starts for
// the command, this binary re-executed (Options.Exec). It reads its orders
// from fd 3, puts itself in a mount namespace of its own whose root is the
// sandbox's (pivot_root, the host's root detached), becomes the user, drops
// capabilities and executes the command. It returns only on failure, with
// the exit status to end with, after reporting the error on fd 4; a
// successful exec closes fd 4 with nothing written.
//
// Everything is done on one locked OS thread, and the exec from it: mount
// namespace, root, credentials and the capability bounding set are a
// thread's, and the command gets those of the thread that executed it.
// Run by hand, it changes nothing outside its own new namespace.
func Exec() int {
	// Never unlocked: the thread is changed for good, and must not run
	// other goroutines or go back to the runtime's pool.
	runtime.LockOSThread()
	// Both are pipes from the init. Checked, since by the time this runs
	// the Go runtime may have opened descriptors of its own there.
	for _, fd := range []int{ordersFd, reportFd} {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			fmt.Fprintln(os.Stderr, "vzfs: error: the sandbox exec trampoline only runs under 'vzfs run'")
			return ExitUsage
		}
	}
	report := os.NewFile(reportFd, "report")
	orders := os.NewFile(ordersFd, "orders")
	// Neither reaches the command.
	unix.CloseOnExec(reportFd)
	unix.CloseOnExec(ordersFd)
	var o execOrders
	err := json.NewDecoder(io.LimitReader(orders, 16<<20)).Decode(&o)
	orders.Close()
	var e *Error
	if err != nil {
		e = failure(fmt.Errorf("reading the command's orders: %w", err))
	} else {
		e = o.exec()
	}
	_, _ = io.WriteString(report, formatErr(e))
	report.Close()
	return e.Code
}

// exec enters the sandbox and executes the command; it returns only with
// the reason it could not.
func (o *execOrders) exec() *Error {
	if len(o.Argv) == 0 || o.Path == "" {
		return failure(errors.New("no command in the orders"))
	}
	if err := enterRoot(o.Root); err != nil {
		return failure(fmt.Errorf("entering the sandbox root %s: %w", o.Root, err))
	}
	if !o.KeepCaps {
		if err := dropBounding(keptMask()); err != nil {
			return failure(fmt.Errorf("dropping capabilities: %w", err))
		}
	}
	if u := o.User; u != nil {
		if err := becomeUser(u.Uid, u.Gid); err != nil {
			return failure(fmt.Errorf("becoming %d:%d: %w", u.Uid, u.Gid, err))
		}
	}
	if !o.KeepCaps {
		if err := dropCaps(keptMask()); err != nil {
			return failure(fmt.Errorf("dropping capabilities: %w", err))
		}
	}
	// As the user, as execve(2) would see it: a workdir the user cannot
	// enter fails here, as it would for a login.
	if err := unix.Chdir(o.Workdir); err != nil {
		return usage(fmt.Errorf("--workdir %s: %w inside the sandbox", o.Workdir, err))
	}
	err := unix.Exec(o.Path, o.Argv, o.Env)
	code := ExitFailure
	var hints []string
	switch {
	case errors.Is(err, unix.ENOENT):
		code = ExitNotFound
		hints = []string{"if it is a script, its interpreter may be missing from the spec"}
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EPERM):
		code = ExitCannotRun
	}
	return &Error{Code: code, Err: fmt.Errorf("running %s in the sandbox: %w", o.Argv[0], err), Hints: hints}
}

// enterRoot gives the calling thread a mount namespace of its own and makes
// root its root: pivot_root, then the old root, the host's, detached. A
// chroot alone would leave the host's root in the namespace, a chdir("..")
// loop away for anyone who can chroot again; after this there is nothing
// above the sandbox's root to reach.
func enterRoot(root string) error {
	// CLONE_NEWNS takes CLONE_FS with it: this thread alone moves.
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	// Nothing done below may propagate back to the init's namespace, and
	// pivot_root refuses shared mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	if err := unix.Chdir(root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on the new one; detaching
	// "." then leaves the new root alone (pivot_root(2), NOTES).
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}

// dropBounding removes every capability not in keep from the thread's
// bounding set, so that no later execve, of a setuid-root file or as root,
// can regain it.
func dropBounding(keep uint64) error {
	for c := uintptr(0); c < 64; c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			if err == unix.EINVAL {
				// Past the kernel's last capability.
				break
			}
			return fmt.Errorf("bounding set, capability %d: %w", c, err)
		}
	}
	// Ambient capabilities would survive an exec as a user; there should
	// be none, but make sure.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("ambient set: %w", err)
	}
	return nil
}

// dropCaps removes every capability not in keep from the thread's
// effective, permitted and inheritable sets.
func dropCaps(keep uint64) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for i := range data {
		k := uint32(keep >> (32 * i))
		data[i].Effective &= k
		data[i].Permitted &= k
		data[i].Inheritable &= k
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// becomeUser sets the thread's groups, gid and uid. Raw system calls, not
// syscall.Setuid: that one changes every thread of the process (and fails
// in a cgo binary), while the exec that follows takes this thread's.
func becomeUser(uid, gid uint32) error {
	// No supplementary groups: root's must not leak to the user.
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("setresgid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("setresuid: %w", e)
	}
	return nil
}
