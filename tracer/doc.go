// Package tracer runs a command under strace and turns the log into the
// list of host paths the command used.
//
// # Running
//
// Run starts strace as
//
//	strace [--seccomp-bpf] -f -qq -y -s 4096 -e signal=none \
//	       -e trace=%file,%process,chdir,fchdir -o FIFO -- COMMAND...
//
// The command keeps vzfs's stdin, stdout, stderr and environment. strace
// writes its log into a FIFO in a private temporary directory, and Parse
// reads it while the command runs, so memory tracks the number of distinct
// paths, not the length of the run. strace opens the FIFO close-on-exec, so
// the command never sees an extra descriptor. Run returns the command's exit
// status (128+N when a signal N killed it).
//
// Run returns ErrNoStrace when strace cannot be found and ErrPtrace when
// strace cannot trace at all (ptrace refused, as in a container without
// CAP_SYS_PTRACE); ErrCommand when COMMAND cannot be found.
//
// # What is recorded
//
// Successful open, openat, openat2, creat, execve, execveat, stat, lstat,
// newfstatat, statx, access, faccessat, faccessat2, readlink, readlinkat,
// chdir, truncate, utimensat, getxattr and lgetxattr calls record their path
// in Trace.Paths; failed ones record it in Trace.Misses. A path that was
// both found and not found (looked for, then created) is not a miss.
// Successful execve and execveat calls also go to Trace.Execs.
//
// Relative paths are resolved against the dirfd's path as strace's -y prints
// it (AT_FDCWD</cwd>, 3</dir>), or else against the calling process's working
// directory. The working directory is tracked per pid across chdir, fchdir,
// fork, vfork, clone and clone3; threads made with CLONE_FS share one. Every
// AT_FDCWD</path> strace prints also resets the process's working directory
// to the kernel's view, so a guess made for a child whose clone had not yet
// returned is corrected at its first *at call.
//
// A path with ".." components is recorded as the directory before each ".."
// (the kernel walked through it, so a chroot needs it) plus the physical path
// the ".." leads to on the host (symlinks before ".." are followed, as the
// kernel does). Paths under /proc, /sys, /dev, /run and /tmp are dropped,
// as are Options.Exclude and ParseOptions.Exclude prefixes.
//
// # Files the command created
//
// A path the command created is the run's output, not its input, and is left
// out (Trace.Created lists it). A path that existed before the run is kept,
// even if the command wrote to it. The rule, decided after the run:
//
//  1. If the first event the log shows for a path is a success that cannot
//     create it (a read-only open, stat, access, readlink, exec, chdir,
//     truncate, utimensat), the path existed before the run: kept.
//  2. If the first event is a failed lookup (ENOENT), or a call that only
//     succeeds by creating the path (O_EXCL opens, mkdir, mknod, symlink,
//     link and rename targets), the run created it: left out.
//  3. Otherwise the first event was an open with O_CREAT or creat, which may
//     or may not have created the file. The host decides: if statx reports a
//     birth time later than the birth of the log FIFO, made just before strace
//     started, the run created it. Both times come from the same kernel clock.
//     A file system without birth times keeps the path: a spare entry costs
//     little, a missing one breaks the chroot.
//
// Finally, only paths that exist on the host when the run ends are kept.
//
// # Parsing
//
// Parse understands strace's line formats: "PID  " and "[pid PID] "
// prefixes, <unfinished ...> and <... NAME resumed> pairs interleaved across
// pids, C-escaped strings (\", \\, \n, \ooo, \xNN), -y annotations, signal
// lines, "+++ exited/killed by +++" lines and "= ?" results. A string strace
// truncated ("..."...) cannot name a path: it is counted and warned about,
// then skipped. Lines it does not understand are logged at debug level and
// counted; they never stop the parse. Lines longer than MaxLine are skipped,
// except that an execve's path is still taken from the line's start.
package tracer
