package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/vzfs/vzfs/fs"
	"github.com/vzfs/vzfs/spec"
)

func init() { register(newMountCmd) }

type mountOpts struct {
	foreground    bool
	revalidate    time.Duration
	suid, dev     bool
	skipMissing   bool
	force         bool
	noPassthrough bool
	learn         bool
	learnLog      string
	readyFd       int // set in the daemon child: where to report readiness
	revalidateSet bool
}

func newMountCmd(g *globalOpts) *cobra.Command {
	o := &mountOpts{readyFd: -1}
	cmd := &cobra.Command{
		Use:   "mount [flags] SPEC MOUNTPOINT",
		Short: "Serve a spec as a read-only directory (an instant chroot)",
		Long: `Mount shows exactly the spec's entries, and their parent directories, as a
read-only FUSE filesystem backed by the host's own files. Nothing is copied:
'chroot MOUNTPOINT PROGRAM' works at once.

Attributes, symlinks and hard links are the host's. A "/**" line exposes the
host directory below it. Writes of any kind fail with EROFS. The mount is
nosuid and nodev unless --suid or --dev is given, and permissions are the
host's, enforced by the kernel.

vzfs mount returns once the mount is live, leaving a daemon behind that
serves it; its logs go to --log-file. -f keeps it in the foreground.
SIGINT or SIGTERM to the daemon unmounts cleanly. 'vzfs umount' ends it.

Host files are taken as static while mounted, so the kernel caches entries
and attributes for an hour; --revalidate shortens that.

The mount is refused (exit 2) when the mountpoint is missing, is not a
directory, is already a vzfs mount or holds a dead mount ("transport
endpoint is not connected"; --force clears it), when the spec has errors,
and when spec entries are missing on the host (--skip-missing warns
instead).

Learn mode (--learn) lets a program teach the spec what it needs. A name
the spec lacks is served from the host when the host has it, and recorded:
appended to SPEC, one line written before the program gets its answer, so
even a kill -9 of the daemon loses nothing a program was given. A learned
directory lists and serves the whole host directory below it, recording
each name that is looked up in it; listing a directory records nothing.
Names that exist nowhere fail as usual and go to --learn-log. /proc, /sys,
/dev, /run, /tmp and the mountpoint itself are never served or recorded.
On unmount SPEC is rewritten sorted and deduplicated (atomically), and the
log says how many entries were learned and where. One learning mount per
SPEC: a second one is refused (exit 2) while SPEC.lock is held.

The workflow: start from the static closure, learn once by running the
test suite in the view, then mount strict and check the suite still passes.`,
		Example: `  vzfs ldd -o ls.spec ls
  mkdir -p /tmp/view && vzfs mount ls.spec /tmp/view
  chroot /tmp/view /usr/bin/ls /
  vzfs umount /tmp/view

  # learn what a build needs that ldd cannot see (compiler internals,
  # dlopen'd libraries, locale data), then serve exactly that
  vzfs ldd -o build.spec make
  mkdir -p /srv/view && vzfs mount --learn --learn-log misses.txt build.spec /srv/view
  mount --bind "$PWD" "/srv/view$PWD"   # if $PWD is not in the spec, 'vzfs run' is simpler
  chroot /srv/view sh -c "cd $PWD && make check"
  vzfs umount /srv/view                  # rewrites build.spec, logs the report
  vzfs mount build.spec /srv/view        # strict again

  # python with its standard library, in the foreground, logging to a file
  vzfs mount -f --log-file /tmp/vzfs.log py.spec /srv/py`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.revalidateSet = cmd.Flags().Changed("revalidate")
			return runMount(cmd, g, o, args[0], args[1])
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.foreground, "foreground", "f", false, "serve in the foreground instead of as a daemon")
	f.DurationVar(&o.revalidate, "revalidate", 0, "how long the kernel may cache entries and attributes (default 1h)")
	f.BoolVar(&o.suid, "suid", false, "honour setuid and setgid bits (default nosuid)")
	f.BoolVar(&o.dev, "dev", false, "allow device nodes (default nodev)")
	f.BoolVar(&o.skipMissing, "skip-missing", false, "warn about spec entries missing on the host instead of refusing")
	f.BoolVar(&o.force, "force", false, "clear a dead mount on MOUNTPOINT first")
	f.BoolVar(&o.noPassthrough, "no-passthrough", false, "read file data through the daemon even when the kernel offers FUSE passthrough")
	f.BoolVar(&o.learn, "learn", false, "serve host paths the spec lacks and append them to SPEC (learn mode)")
	f.StringVar(&o.learnLog, "learn-log", "", "with --learn: append paths looked up that exist nowhere to this file")
	f.IntVar(&o.readyFd, "ready-fd", -1, "internal: report readiness of the daemon on this fd")
	_ = f.MarkHidden("ready-fd")
	return cmd
}

func runMount(cmd *cobra.Command, g *globalOpts, o *mountOpts, specArg, mntArg string) error {
	specPath, err := filepath.Abs(specArg)
	if err != nil {
		return usageErr(err)
	}
	if o.learnLog != "" && !o.learn {
		return usageErr(errors.New("--learn-log needs --learn"))
	}
	if o.learnLog != "" {
		if o.learnLog, err = filepath.Abs(o.learnLog); err != nil {
			return usageErr(err)
		}
	}
	mnt, err := prepareMountpoint(mntArg, o.force, g.log)
	if err != nil {
		if o.readyFd >= 0 {
			reportReady(o.readyFd, err)
		}
		return err
	}
	if !o.foreground && o.readyFd < 0 {
		return startDaemon(cmd, g, o, specPath, mnt)
	}
	err = serve(g, o, specPath, mnt)
	if o.readyFd >= 0 && err != nil {
		reportReady(o.readyFd, err)
	}
	return err
}

// prepareMountpoint checks the mountpoint and, with force, clears a dead
// mount on it.
func prepareMountpoint(mnt string, force bool, log *zap.Logger) (string, error) {
	abs, err := fs.CheckMountpoint(mnt)
	var me *fs.MountError
	if errors.As(err, &me) && me.Kind == fs.MountpointStale && force {
		log.Info("clearing dead mount", zap.String("mountpoint", abs))
		if uerr := fs.ClearDeadMount(abs); uerr != nil {
			return "", failErr(uerr)
		}
		abs, err = fs.CheckMountpoint(mnt)
	}
	if errors.As(err, &me) {
		var hints []string
		if me.Hint != "" {
			hints = append(hints, me.Hint)
		}
		return "", usageErr(err, hints...)
	}
	if err != nil {
		return "", usageErr(err)
	}
	return abs, nil
}

// serve mounts and serves until unmounted or signalled. It is the daemon's
// body, and the whole command with -f.
func serve(g *globalOpts, o *mountOpts, specPath, mnt string) (err error) {
	log := g.log
	fs.CatchSignals()
	var learner *fs.SpecLearner
	if o.learn {
		// Locked before the spec is read: another learner may be
		// appending to it.
		if learner, err = openLearner(specPath, o.learnLog); err != nil {
			return err
		}
		// After a clean unmount the spec is rewritten; after a failure
		// it is left as appended and only the lock goes.
		defer func() {
			if err != nil {
				learner.Release()
				return
			}
			err = closeLearner(learner, log)
		}()
	}
	s, err := spec.ParseFile(specPath)
	if err != nil {
		return usageErr(err)
	}
	if s.Torn > 0 {
		log.Warn("spec ends in a torn line, ignored", zap.String("spec", specPath), zap.Int("line", s.Torn))
	}
	t, err := fs.NewTree(s, fs.TreeOptions{SkipMissing: o.skipMissing})
	var miss *fs.MissingError
	if errors.As(err, &miss) {
		return usageErr(err, missingHints(miss)...)
	}
	if err != nil {
		return usageErr(err)
	}
	if t.Len() > 100_000 {
		// Building a big tree leaves the spec and the build tables as
		// garbage; hand it back now, so the daemon's resident memory at
		// rest is the tree's.
		s = nil
		runtime.GC()
		debug.FreeOSMemory()
	}
	for _, m := range t.Missing() {
		log.Warn("spec entry missing on the host, skipped", zap.String("path", m.Path), zap.Error(m.Err))
	}
	for _, p := range t.Unreachable() {
		log.Warn("spec entry lies below a host symlink; add the link's target to the spec", zap.String("path", p))
	}
	timeout := o.revalidate
	if o.revalidateSet && timeout == 0 {
		timeout = -1 // asked for no caching at all; 0 means the default
	}
	srv, err := fs.Mount(mnt, t, fs.MountOptions{
		FsName:        specPath,
		Timeout:       timeout,
		Suid:          o.suid,
		Dev:           o.dev,
		NoPassthrough: o.noPassthrough,
		Logger:        log,
		Learn:         learnerOrNil(learner),
	})
	var me *fs.MountError
	if errors.As(err, &me) {
		if me.Hint == "" {
			return usageErr(err)
		}
		return usageErr(err, me.Hint)
	}
	if err != nil {
		return failErr(err)
	}
	log.Info("mounted", zap.String("spec", specPath), zap.String("mountpoint", mnt), zap.Int("nodes", t.Len()), zap.Bool("passthrough", srv.Passthrough()), zap.Bool("learn", o.learn))
	err = fs.ServeUntilSignal(srv, log, func() {
		if o.readyFd >= 0 {
			reportReady(o.readyFd, nil)
		}
	})
	if err != nil {
		return failErr(err)
	}
	return nil
}

func missingHints(m *fs.MissingError) []string {
	const show = 50
	var h []string
	for i, e := range m.Entries {
		if i == show {
			h = append(h, fmt.Sprintf("... and %d more", len(m.Entries)-show))
			break
		}
		h = append(h, "missing: "+e.Path)
	}
	return append(h, "remove them from the spec, or pass --skip-missing to mount without them")
}

// reportReady hands the daemon's outcome to the waiting 'vzfs mount',
// with the exit code and hints it would have shown itself.
func reportReady(fd int, err error) {
	if err == nil {
		fs.ReportReady(fd, nil)
		return
	}
	de := &fs.DaemonError{Code: exitFailure, Msg: err.Error()}
	var ee *exitError
	if errors.As(err, &ee) {
		de.Code, de.Hints = ee.code, ee.hints
	}
	fs.ReportReady(fd, de)
}

// startDaemon runs this mount again as a detached daemon (the same flags,
// absolute paths, plus the hidden --ready-fd) and returns once it reports
// the mount live or failed.
func startDaemon(cmd *cobra.Command, g *globalOpts, o *mountOpts, specPath, mnt string) error {
	args := []string{"--log-level", g.logLevel, "--log-format", g.logFormat}
	if g.logFile != "" {
		lf, err := filepath.Abs(g.logFile)
		if err != nil {
			return usageErr(err)
		}
		args = append(args, "--log-file", lf)
	}
	args = append(args, "mount", "--ready-fd", strconv.Itoa(fs.DaemonReadyFd))
	if o.revalidateSet {
		args = append(args, "--revalidate", o.revalidate.String())
	}
	for name, on := range map[string]bool{"suid": o.suid, "dev": o.dev, "skip-missing": o.skipMissing, "no-passthrough": o.noPassthrough, "learn": o.learn} {
		if on {
			args = append(args, "--"+name)
		}
	}
	if o.learnLog != "" {
		args = append(args, "--learn-log", o.learnLog)
	}
	args = append(args, "--", specPath, mnt)
	pid, err := fs.StartDaemon(args)
	var de *fs.DaemonError
	var died *fs.DaemonDiedError
	switch {
	case err == nil:
		fmt.Fprintf(cmd.OutOrStdout(), "mounted %s on %s (daemon pid %d)\n", specPath, mnt, pid)
		return nil
	case errors.As(err, &de):
		e := errors.New(de.Msg)
		if de.Code == exitUsage {
			return usageErr(e, de.Hints...)
		}
		return failErr(e, de.Hints...)
	case errors.As(err, &died):
		hint := "run with -f to see the daemon's output"
		if g.logFile != "" {
			hint = "see the daemon's log in " + g.logFile
		}
		return failErr(err, hint)
	default:
		return failErr(err)
	}
}

// openLearner takes the spec's learn lock; a spec locked by another
// learning mount is a usage error.
func openLearner(specPath, missLog string) (*fs.SpecLearner, error) {
	l, err := fs.NewSpecLearner(specPath, missLog)
	var le *fs.LockedError
	if errors.As(err, &le) {
		return nil, usageErr(err, "unmount the other learning view first, or learn into a copy of the spec")
	}
	if err != nil {
		return nil, usageErr(err)
	}
	return l, nil
}

// closeLearner rewrites the learned spec and logs the report.
func closeLearner(l *fs.SpecLearner, log *zap.Logger) error {
	l.LogReport(log)
	if err := l.Close(); err != nil {
		log.Error("spec left unsorted", zap.Error(err))
		return failErr(err, "the spec is still valid as appended; rewrite it later with a clean learning mount")
	}
	return nil
}

// learnerOrNil keeps a nil *SpecLearner from becoming a non-nil Learner.
func learnerOrNil(l *fs.SpecLearner) fs.Learner {
	if l == nil {
		return nil
	}
	return l
}
