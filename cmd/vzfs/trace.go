package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/vzfs/vzfs/resolver"
	"github.com/vzfs/vzfs/spec"
	"github.com/vzfs/vzfs/tracer"
)

func init() { register(newTraceCmd) }

type traceOpts struct {
	output   string
	appendTo bool
	with     string
	exclude  []string
	keepLog  string
	misses   string
	strace   string
}

func newTraceCmd(g *globalOpts) *cobra.Command {
	o := &traceOpts{}
	cmd := &cobra.Command{
		Use:   "trace [flags] -- COMMAND [ARG...]",
		Short: "Write the spec of the files a command uses, by running it under strace",
		Long: `trace runs COMMAND under strace, records every path it opens, executes,
stats, probes or changes into, and writes the closure of those paths as a
spec: the ELF libraries of every binary and shared object, symlink chains
and #! interpreters are added as in 'vzfs ldd', with the --with extras.

It sees what a static reader cannot: modules loaded with dlopen (Python
extensions, libssl), data files, locale files, the compiler's internal
programs. It only sees what this run touched, so run the command the way it
will be used.

COMMAND keeps vzfs's stdin, stdout, stderr and environment, and vzfs exits
with COMMAND's exit status. The spec is written even when COMMAND fails, with
a warning. Without -o the spec goes to stdout after COMMAND ends.

Not recorded: paths under /proc, /sys, /dev, /run and /tmp (the 'base'
extra brings the mount points), --exclude prefixes, vzfs's own output files,
and files COMMAND created (it is their producer, not their user). Files that
existed and that COMMAND wrote to are kept. Lookups that failed go to
--misses FILE, so you can see what the program looked for and did not find.

Needs strace (Debian: apt-get install strace) and permission to ptrace:
in a container, CAP_SYS_PTRACE or a seccomp profile that allows ptrace.

Exit status: COMMAND's (128+N if signal N killed it); 2 if strace or
COMMAND cannot be found or a flag is wrong; 1 if tracing is refused.`,
		Example: `  # the spec of a shell pipeline
  vzfs trace -o sh.spec -- sh -c 'cd /etc && cat hostname'

  # a Python program with its dlopen'd modules, plus CA certificates
  vzfs trace -o py.spec --with nss,base,certs -- python3 -c 'import ssl'

  # add a second run to the same spec, keep strace's log and the misses
  vzfs trace -o py.spec --append --keep-log py.strace --misses py.misses -- python3 app.py

  # a build, leaving the build tree itself out
  vzfs trace -o cc.spec --exclude "$PWD" -- make`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr(errors.New("trace needs a COMMAND"), "try 'vzfs trace -o ls.spec -- ls /'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrace(cmd.Context(), g, o, args, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	// Flags after COMMAND belong to COMMAND.
	f.SetInterspersed(false)
	f.StringVarP(&o.output, "output", "o", "", "write the spec to this file (atomically) instead of stdout")
	f.BoolVar(&o.appendTo, "append", false, "merge into the existing -o file instead of replacing it")
	f.StringVar(&o.with, "with", "nss,base", "runtime extras: base, nss, certs, locale, tzdata, all or none")
	f.StringArrayVar(&o.exclude, "exclude", nil, "leave out paths under this prefix (repeatable)")
	f.StringVar(&o.keepLog, "keep-log", "", "also write strace's raw log to this file")
	f.StringVar(&o.misses, "misses", "", "write the paths COMMAND looked for and did not find to this file")
	f.StringVar(&o.strace, "strace", "", "strace binary to use (default: strace on PATH)")
	return cmd
}

func runTrace(ctx context.Context, g *globalOpts, o *traceOpts, argv []string, stdout io.Writer) error {
	with, err := resolver.ParseExtras(o.with)
	if err != nil {
		return usageErr(err)
	}
	if o.appendTo && o.output == "" {
		return usageErr(errors.New("--append needs -o SPEC"))
	}
	var excl []string
	for _, e := range o.exclude {
		a, err := filepath.Abs(e)
		if err != nil {
			return usageErr(fmt.Errorf("--exclude %q: %w", e, err))
		}
		excl = append(excl, a)
	}
	// vzfs's own output files are not COMMAND's inputs.
	for _, f := range []string{o.output, o.misses} {
		if f != "" {
			if a, err := filepath.Abs(f); err == nil {
				excl = append(excl, a)
			}
		}
	}
	// The resolver reads ld.so.cache while the command runs.
	type built struct {
		r   *resolver.Resolver
		err error
	}
	newRes := make(chan built, 1)
	go func() {
		r, err := resolver.New(resolver.Options{With: with, Log: g.log})
		newRes <- built{r, err}
	}()

	// Like a shell with a foreground job: Ctrl-C and Ctrl-\ are for
	// COMMAND (strace blocks them for itself), and vzfs must live on to
	// write the spec. SIGTERM stops the trace and still writes what it saw.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Reset(syscall.SIGINT, syscall.SIGQUIT)
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()

	tr, status, err := tracer.Run(ctx, tracer.Options{
		Strace: o.strace, Exclude: excl, KeepLog: o.keepLog, Log: g.log,
	}, argv)
	switch {
	case errors.Is(err, tracer.ErrNoStrace):
		return usageErr(err, "install strace (Debian/Ubuntu: apt-get install strace), or name it with --strace PATH")
	case errors.Is(err, tracer.ErrCommand):
		return usageErr(err, "check the command's name and PATH")
	case errors.Is(err, tracer.ErrPtrace):
		return failErr(err,
			"strace needs ptrace: run as a user allowed to trace its children",
			"in a container, add CAP_SYS_PTRACE (docker run --cap-add SYS_PTRACE) or allow ptrace in its seccomp profile",
			"check /proc/sys/kernel/yama/ptrace_scope (3 forbids all tracing)")
	case errors.Is(err, context.Canceled) && tr != nil:
		g.log.Warn("trace interrupted; writing what it recorded so far")
	case err != nil:
		return failErr(err)
	}
	g.log.Debug("trace done", zap.Int("lines", tr.Lines), zap.Int("paths", len(tr.Paths)),
		zap.Int("misses", len(tr.Misses)), zap.Int("created", len(tr.Created)), zap.Int("pids", tr.Pids))

	inputs := make([]string, 0, len(tr.Paths))
	for _, p := range tr.Paths {
		// The resolver reads a trailing "/**" as a subtree; a file really
		// named "**" cannot be told apart, so it is left out.
		if strings.HasSuffix(p, spec.SubtreeSuffix) {
			g.log.Warn("leaving out a path whose last component is **", zap.String("path", p))
			continue
		}
		inputs = append(inputs, p)
	}
	if len(inputs) == 0 {
		return failErr(fmt.Errorf("the trace of %s recorded no paths; not writing an empty spec", argv[0]),
			"run with --keep-log FILE to see what strace saw")
	}
	b := <-newRes
	if b.err != nil {
		return failErr(b.err)
	}
	res, err := b.r.Resolve(inputs...)
	if err != nil {
		return failErr(fmt.Errorf("resolving the traced paths: %w", err))
	}
	if err := res.Err(); err != nil {
		// A path that vanished, or a library a traced binary names but the
		// host lacks, must not lose the whole trace.
		g.log.Warn("some traced paths could not be followed; the spec may be incomplete", zap.Error(err))
	}
	out := res.Spec
	if o.misses != "" {
		m := &spec.Spec{}
		for _, p := range tr.Misses {
			if spec.Validate(p) == nil {
				m.AddPath(p)
			}
		}
		if err := m.WriteFile(o.misses); err != nil {
			return failErr(err)
		}
	}
	if err := writeSpec(out, o.output, o.appendTo, stdout); err != nil {
		return err
	}
	if status != 0 {
		g.log.Warn("the command failed; the spec covers only what it did before failing",
			zap.String("command", argv[0]), zap.Int("status", status))
		return statusErr(status)
	}
	return nil
}
