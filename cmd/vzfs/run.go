package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vzfs/vzfs/sandbox"
)

func init() {
	register(newRunCmd)
	register(newSandboxInitCmd)
	register(newSandboxExecCmd)
}

type runOpts struct {
	binds    []string
	writable bool
	workdir  string
	user     string
	env      []string
	keepEnv  bool
	suid     bool
	dev      bool
	learn    bool
	learnLog string
	keepCaps bool
}

func newRunCmd(g *globalOpts) *cobra.Command {
	o := &runOpts{}
	cmd := &cobra.Command{
		Use:   "run [flags] SPEC -- COMMAND [ARG...]",
		Short: "Run a command in a sandbox that holds exactly the spec",
		Long: `Run mounts the spec's read-only view in a private mount namespace and runs
COMMAND with the view as its root (pivot_root, in a mount namespace of its
own): the command sees the spec's files and nothing else. Nothing is copied,
and nothing is visible to the rest of the host.

Inside the sandbox:
  /proc    a fresh proc of the sandbox's own PID namespace
  /dev     a minimal, read-only /dev: null zero full random urandom tty,
           with its own pts and a writable shm
  /sys     read-only
  /tmp     an empty tmpfs; /run too
  --bind   host paths, read-write unless ":ro", nosuid and nodev unless
           --suid and --dev. A destination the spec lacks appears as an
           empty directory to mount on.

These mounts hide whatever the spec lists at or below /proc, /dev, /sys,
/tmp and /run; vzfs warns, naming those entries. Bind such files in instead.

The view is read-only. --writable puts an overlayfs with a tmpfs upper layer
over it: the command may write anywhere, and it is all thrown away at exit.

The command starts in --workdir (default /) as root, or as --user UID[:GID]
(GID defaults to UID; no supplementary groups), with a clean environment:
PATH, HOME, TERM and LANG, plus --env. --keep-env passes vzfs's whole
environment instead. A COMMAND without a slash is looked up on PATH inside
the sandbox.

What is contained, and what is not. Root in the sandbox keeps only
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETUID,
CAP_SETGID, CAP_NET_BIND_SERVICE and CAP_AUDIT_WRITE: it may read and change
any file it can see, but cannot mount, chroot again, ptrace, load modules,
make devices or open files by handle, and neither can a setuid program it
runs. The host's root is not in the command's mount namespace, and the
sandbox's init, whose root is the host's, cannot be reached through
/proc/1. --keep-caps keeps every capability: root can then reach the host
(through /proc/1/root, say), so use it only for trusted commands. Not
isolated in any case: the network, the IPC namespace, the hostname, the
kernel itself, and writable binds, where root can leave a setuid-root file
for the host to run. This is a chroot-style sandbox, not a container
boundary; see SECURITY.md.

SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to vzfs are passed on to the
command. vzfs exits with the command's status, 128+N if signal N ended it.
When the command ends, whatever it left running is killed, and every mount
goes. If vzfs itself is killed, even with SIGKILL, the sandbox dies with it.

vzfs run needs root. It exits 2, running nothing, when the spec or a bind
source is missing, the spec has errors or entries missing on the host, or the
kernel lacks FUSE (or overlayfs, for --writable); 127 when COMMAND is not in
the sandbox, 126 when it cannot be executed.

--learn lets the command teach the spec. Whatever it looks up that the spec
lacks but the host has is served and appended to SPEC before the command
gets its answer, so a crash loses nothing it was given; what exists nowhere
goes to --learn-log. Listing a directory records nothing; only names looked
up are. /proc, /sys, /dev, /run and /tmp are the sandbox's own and never
learned, and neither is what the command writes under --writable. At the
end SPEC is rewritten sorted and deduplicated, and vzfs logs how many
entries it learned and where. One learner per SPEC at a time (exit 2).

Learn once, with the whole test suite, then run strict: static resolution
(vzfs ldd) cannot see dlopen'd libraries, locale and gconv data or a
compiler's internals, but the suite touches them all.`,
		Example: `  # ls, with exactly the files ldd says it needs
  vzfs ldd -o ls.spec ls
  sudo vzfs run ls.spec -- ls -l /

  # a project's tests, the project bound in read-write, the sources read-only
  sudo vzfs run --bind "$PWD" --bind /srv/data:/data:ro --workdir "$PWD" \
      build.spec -- make check

  # try an installer without touching anything
  sudo vzfs run --writable --env DEBUG=1 tool.spec -- /usr/bin/install.sh

  # as nobody
  sudo vzfs run --user 65534 sh.spec -- sh -c 'id; cat /etc/shadow'

  # learn a C project's build and tests, then prove the spec is enough
  vzfs ldd -o build.spec make
  sudo vzfs run --learn --learn-log misses.txt --bind "$PWD" --workdir "$PWD" \
      build.spec -- make check
  sudo vzfs run --bind "$PWD" --workdir "$PWD" build.spec -- make check`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case len(args) == 0, dash < 0 && len(args) < 2, dash == 0:
				return usageErr(errors.New("run needs a SPEC and a COMMAND"), "vzfs run SPEC -- COMMAND [ARG...]")
			case dash > 1:
				return usageErr(fmt.Errorf("run takes one SPEC before --, got %d", dash), "vzfs run SPEC -- COMMAND [ARG...]")
			case dash == 1 && len(args) == 1:
				return usageErr(errors.New("no COMMAND after --"), "vzfs run SPEC -- COMMAND [ARG...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(g, o, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.binds, "bind", nil, "mount host path SRC on DST (default SRC) in the sandbox; SRC[:DST[:ro]], repeatable")
	f.BoolVar(&o.writable, "writable", false, "let the command write anywhere, into a tmpfs overlay dropped at exit")
	f.StringVar(&o.workdir, "workdir", "/", "the command's working directory inside the sandbox")
	f.StringVar(&o.user, "user", "", "run the command as UID[:GID] (numeric) instead of root")
	f.StringArrayVar(&o.env, "env", nil, "set K=V in the command's environment (K alone: copy K from vzfs's), repeatable")
	f.BoolVar(&o.keepEnv, "keep-env", false, "pass vzfs's whole environment instead of a clean one")
	f.BoolVar(&o.suid, "suid", false, "honour setuid and setgid bits in the view (default nosuid)")
	f.BoolVar(&o.dev, "dev", false, "allow device nodes in the view (default nodev)")
	f.BoolVar(&o.learn, "learn", false, "serve host paths the spec lacks and append them to SPEC (learn mode)")
	f.StringVar(&o.learnLog, "learn-log", "", "with --learn: append paths looked up that exist nowhere to this file")
	f.BoolVar(&o.keepCaps, "keep-caps", false, "leave root in the sandbox all capabilities (it can then reach the host)")
	return cmd
}

func runRun(g *globalOpts, o *runOpts, specArg string, argv []string) error {
	opts := sandbox.Options{
		Spec:     specArg,
		Argv:     argv,
		Writable: o.writable,
		Workdir:  o.workdir,
		KeepEnv:  o.keepEnv,
		KeepCaps: o.keepCaps,
		View:     sandbox.View{Suid: o.suid, Dev: o.dev, Learn: o.learn, LearnLog: o.learnLog},
		Logger:   g.log,
	}
	for _, b := range o.binds {
		bb, err := sandbox.ParseBind(b)
		if err != nil {
			return usageErr(fmt.Errorf("--bind: %w", err))
		}
		opts.Binds = append(opts.Binds, bb)
	}
	if o.user != "" {
		u, err := sandbox.ParseUser(o.user)
		if err != nil {
			return usageErr(fmt.Errorf("--user: %w", err))
		}
		opts.User = u
	}
	for _, e := range o.env {
		kv, ok, err := sandbox.ParseEnv(e, os.LookupEnv)
		if err != nil {
			return usageErr(fmt.Errorf("--env: %w", err))
		}
		if ok {
			opts.Env = append(opts.Env, kv)
		}
	}
	initArgv, err := initCommand(g)
	if err != nil {
		return failErr(err)
	}
	opts.Init = initArgv
	opts.Exec = []string{initArgv[0], "sandbox-exec"}
	code, err := sandbox.Run(opts)
	var se *sandbox.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sandbox.ExitUsage:
			return usageErr(se.Err, se.Hints...)
		case sandbox.ExitFailure:
			return failErr(se.Err, se.Hints...)
		}
		// 126, 127, 128+N: the shell's codes, with our message.
		fmt.Fprintf(os.Stderr, "vzfs: error: %v\n", se.Err)
		for _, h := range se.Hints {
			fmt.Fprintf(os.Stderr, "vzfs: hint: %s\n", h)
		}
		return statusErr(se.Code)
	}
	if err != nil {
		return failErr(err)
	}
	if code != 0 {
		return statusErr(code)
	}
	return nil
}

// initCommand is the command line of the sandbox's init: this binary,
// with the same logging, running the hidden sandbox-init command.
func initCommand(g *globalOpts) ([]string, error) {
	// The binary's path gives the init a recognisable name in ps;
	// /proc/self/exe is the fallback that works even if the binary was
	// removed since.
	exe := "/proc/self/exe"
	if p, err := os.Executable(); err == nil {
		if _, err := os.Stat(p); err == nil {
			exe = p
		}
	}
	args := []string{exe, "--log-level", g.logLevel, "--log-format", g.logFormat}
	if g.logFile != "" {
		lf, err := filepath.Abs(g.logFile)
		if err != nil {
			return nil, err
		}
		args = append(args, "--log-file", lf)
	}
	return append(args, "sandbox-init"), nil
}

func newSandboxInitCmd(g *globalOpts) *cobra.Command {
	return &cobra.Command{
		Use:    "sandbox-init",
		Short:  "internal: the init of a 'vzfs run' sandbox",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := sandbox.Init(g.log); code != 0 {
				return statusErr(code)
			}
			return nil
		},
	}
}

func newSandboxExecCmd(g *globalOpts) *cobra.Command {
	return &cobra.Command{
		Use:    "sandbox-exec",
		Short:  "internal: enters a 'vzfs run' sandbox and executes the command",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Exec returns only on failure, after telling the init why;
			// the init reports it, so say nothing more here.
			return statusErr(sandbox.Exec())
		},
	}
}
