// Package sandbox runs a command inside the view of a spec: the read-only
// FUSE view (package fs) as its root, in mount and PID namespaces of its
// own, so that the command sees exactly the spec and the host sees nothing
// of the sandbox. It is what 'vzfs run' calls.
//
// # Processes
//
// Run is the caller's side. It checks what it can (root, FUSE, overlayfs,
// the spec and bind sources) and starts the init: the same binary,
// re-executed (Options.Init) into a command that calls Init, in a new
// mount namespace and as PID 1 of a new PID namespace, with a parent-death
// signal. Namespaces are made at clone time rather than with unshare(2)
// in-process, because Go's threads would not all follow.
//
// Init is the sandbox's side. It serves the view over FUSE from its own
// goroutines, mounts what the command sees, starts the command, passes
// signals on and reaps. When the command ends, it
// kills what is left, unmounts and exits with the command's status. If
// Run is killed, even by SIGKILL, the init is killed with it; the kernel
// then kills every process in the PID namespace and drops every mount with
// the mount namespace, so nothing outlives vzfs.
//
// The command is started through the exec trampoline (Options.Exec, which
// calls Exec): the same binary again, which on one locked thread unshares
// a mount namespace of its own, makes the sandbox's root its root with
// pivot_root and detaches the host's, becomes the user, drops
// capabilities and executes the command. The init itself keeps the host's
// root, which serving the view needs.
//
// # The sandbox
//
// The root is the view, or with Writable an overlayfs of the view under a
// tmpfs. /proc is a fresh proc of the PID namespace; /dev is a minimal
// tmpfs (null, zero, full, random, urandom, tty, its own pts and a shm),
// read-only once built; /sys is read-only; /tmp and /run are empty tmpfs.
// Binds follow in order. Every mount inside the root is made on a
// descriptor opened with RESOLVE_IN_ROOT, so a symlink in the view never
// points a mount out to the host. All of it lives below ScratchDir in the
// init's namespace only. Binds are nosuid and nodev unless View.Suid and
// View.Dev say otherwise, like the view. Whatever the spec lists at or
// below /proc, /dev, /sys, /tmp and /run is hidden by these mounts; the
// init warns, naming it.
//
// # What is contained
//
// The command's mount namespace holds the sandbox and nothing else: the
// host's root is detached, so no chdir("..") or second chroot reaches it.
// Root in the sandbox keeps only the capabilities of keptCaps (chown, read
// and write any file it sees, setuid, kill, low ports), in its bounding
// set too, so a setuid-root program gets no more: without CAP_SYS_ADMIN,
// CAP_SYS_CHROOT, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, CAP_MKNOD,
// CAP_SYS_MODULE, CAP_SYS_RAWIO and CAP_SYS_BOOT it cannot remount,
// re-chroot, open files by handle, make devices or load modules. The init,
// whose root and descriptors are the host's, is not dumpable, so /proc/1
// needs the CAP_SYS_PTRACE the command lacks. Options.KeepCaps keeps every
// capability, and root can then reach the host through /proc/1/root.
//
// Not contained: the network, IPC, UTS and user namespaces are the host's;
// the kernel is shared; root may write anything a writable bind exposes,
// a setuid-root file for the host included; a view in learn mode serves
// the whole host. This is a chroot with the easy escapes closed, not a
// container boundary against a hostile root.
//
// # Learn mode
//
// With View.Learn the init serves a learning view (fs.MountOptions.Learn)
// through an fs.SpecLearner it makes itself, since the learner holds the
// spec's lock and an open file. Teardown waits for the server to stop,
// then rewrites the spec and logs the report, before the init reports the
// command's status; a spec another learner holds is ExitUsage.
//
// # Errors
//
// Run returns *Error for failures of the sandbox itself, with the exit
// code vzfs should end with: ExitUsage when nothing could run (not root,
// missing spec or bind source, spec errors, no overlayfs), ExitNotFound
// and ExitCannotRun when the command is not in the sandbox or cannot be
// executed, ExitFailure otherwise. The command's own status is Run's int
// result.
package sandbox
