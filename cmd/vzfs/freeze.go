package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/term"

	vfs "github.com/vzfs/vzfs/fs"
	"github.com/vzfs/vzfs/fs/freeze"
	"github.com/vzfs/vzfs/resolver"
	"github.com/vzfs/vzfs/spec"
)

func init() { register(newFreezeCmd) }

type freezeOpts struct {
	noResolve   bool
	with        string
	link        string
	update      bool
	checksum    bool
	jobs        int
	skipMissing bool

	tar   string
	mtime string

	oci        string
	tag        string
	entrypoint string
	env        []string
	workdir    string
}

func newFreezeCmd(g *globalOpts) *cobra.Command {
	o := &freezeOpts{}
	cmd := &cobra.Command{
		Use:   "freeze [flags] SPEC DEST | --tar FILE SPEC | --oci FILE.tar|DIR SPEC",
		Short: "Write a spec's view out as a directory tree, a tar or an OCI image",
		Long: `freeze writes out the view of a spec: every entry with its ancestor
directories, and the host subtrees below /** lines, walked from the same
model that 'vzfs mount' serves.

First the spec goes through the same closure as 'vzfs ldd' (libraries,
symlinks, interpreters, and the --with extras), so a hand-written spec gets
what its programs load; the added entries are logged. The result is then
what 'vzfs mount' would serve for the completed spec. --no-resolve freezes
the spec exactly as it is, as 'vzfs mount' serves it.

A directory tree (DEST) keeps content, mode (setuid, setgid, sticky too),
owner, times, xattrs (security.capability too), holes in sparse files, hard
links between its files, symlinks verbatim, FIFOs and device nodes (skipped
with a warning when not root). Sockets are skipped with a warning.
It is built in a temporary directory beside DEST and renamed into place, so
a failed or killed freeze leaves no half tree. Nothing is ever written
through a symlink: DEST may not be or pass through one, and everything in it
is made relative to directories opened with O_NOFOLLOW.

  --link copy     copy data with copy_file_range, --jobs files at a time
  --link hard     hard-link files from the host (DEST then shares the host's
                  inodes: editing a file in DEST edits the host's). Files on
                  another filesystem than DEST are copied, with a warning.
  --link reflink  clone with FICLONE where the filesystem can, else copy
  --update        make an existing DEST match: unchanged files (same size,
                  mtime, mode, owner; with --checksum same content) are kept,
                  others copied, entries not in the spec removed. The new tree
                  is swapped in with one atomic exchange, so DEST is always
                  the old tree or the new one; nothing is written when
                  nothing changed.

--tar writes a POSIX/PAX tar ('-' for stdout): sorted, numeric owners,
xattrs as SCHILY.xattr records, hard links as links. --mtime T (RFC 3339 or
@UNIXSECONDS; default $SOURCE_DATE_EPOCH) clamps every time, so the same
spec gives a byte-identical tar.

--oci writes an image with that tar as its one layer, as an oci-archive
(FILE.tar, for 'podman load' or 'skopeo copy oci-archive:FILE.tar ...') or an
OCI layout directory (any other name). Same spec and --mtime, same digest.

Exit status: 0 on success, 1 if the freeze failed (nothing is left at the
destination), 2 for usage errors.`,
		Example: `  # a chroot for python3 and its standard library
  vzfs ldd -o py.spec /usr/bin/python3 '/usr/lib/python3.11/**'
  vzfs freeze py.spec /srv/py && chroot /srv/py python3 -c 'print(42)'

  # refresh it after a package upgrade, copying only what changed
  vzfs freeze --update py.spec /srv/py

  # a reproducible tarball
  vzfs freeze --tar py.tar --mtime 2024-01-01T00:00:00Z py.spec

  # an image for podman
  vzfs freeze --oci py-oci.tar --tag py:3.11 --entrypoint /usr/bin/python3 py.spec
  podman load -i py-oci.tar`,
		Args: func(cmd *cobra.Command, args []string) error {
			n := 2
			if o.tar != "" || o.oci != "" {
				n = 1
			}
			if len(args) != n {
				if n == 1 {
					return usageErr(fmt.Errorf("freeze --tar/--oci takes one argument, SPEC; got %d", len(args)), "try 'vzfs freeze --tar out.tar my.spec'")
				}
				return usageErr(fmt.Errorf("freeze takes SPEC and DEST; got %d arguments", len(args)), "try 'vzfs freeze my.spec /srv/root', or --tar/--oci")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFreeze(g, o, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.noResolve, "no-resolve", false, "freeze the spec as it is, without adding libraries and interpreters")
	f.StringVar(&o.with, "with", "nss,base", "runtime extras to add when resolving: base, nss, certs, locale, tzdata, all or none")
	f.StringVar(&o.link, "link", "copy", "how to fill in file data: copy, hard or reflink")
	f.BoolVar(&o.update, "update", false, "make an existing DEST match the spec, keeping unchanged files")
	f.BoolVar(&o.checksum, "checksum", false, "with --update, compare file content and xattrs, not just size and mtime")
	f.IntVar(&o.jobs, "jobs", 0, "files copied at once (default: max(4, number of CPUs))")
	f.BoolVar(&o.skipMissing, "skip-missing", false, "leave out spec entries missing on the host instead of failing")
	f.StringVar(&o.tar, "tar", "", "write a tar to this file ('-' for stdout) instead of a directory")
	f.StringVar(&o.mtime, "mtime", "", "clamp times in --tar/--oci output: RFC 3339 or @UNIXSECONDS (default $SOURCE_DATE_EPOCH)")
	f.StringVar(&o.oci, "oci", "", "write an OCI image: FILE.tar for an oci-archive, else a layout directory")
	f.StringVar(&o.tag, "tag", freeze.DefaultTag, "with --oci, the image's NAME:TAG")
	f.StringVar(&o.entrypoint, "entrypoint", "", `with --oci, the entrypoint: "prog arg..." or a JSON array`)
	f.StringArrayVar(&o.env, "env", nil, "with --oci, an environment variable K=V (repeatable)")
	f.StringVar(&o.workdir, "workdir", "", "with --oci, the working directory")
	return cmd
}

// check rejects flag combinations that would be silently ignored.
func (o *freezeOpts) check() error {
	dirOnly := map[string]bool{"--link": o.link != "copy", "--update": o.update, "--checksum": o.checksum, "--jobs": o.jobs != 0}
	ociOnly := map[string]bool{"--tag": o.tag != freeze.DefaultTag, "--entrypoint": o.entrypoint != "", "--env": len(o.env) > 0, "--workdir": o.workdir != ""}
	switch {
	case o.tar != "" && o.oci != "":
		return errors.New("--tar and --oci exclude each other; run freeze twice")
	case o.tar == "" && o.oci == "":
		if o.mtime != "" {
			return errors.New("--mtime applies to --tar and --oci output")
		}
		for k, set := range ociOnly {
			if set {
				return fmt.Errorf("%s applies to --oci output", k)
			}
		}
	default:
		for k, set := range dirOnly {
			if set {
				return fmt.Errorf("%s applies to a directory DEST", k)
			}
		}
		if o.tar != "" {
			for k, set := range ociOnly {
				if set {
					return fmt.Errorf("%s applies to --oci output", k)
				}
			}
		}
	}
	if o.checksum && !o.update {
		return errors.New("--checksum needs --update")
	}
	if o.jobs < 0 {
		return fmt.Errorf("--jobs %d: want a positive number", o.jobs)
	}
	return nil
}

func runFreeze(g *globalOpts, o *freezeOpts, args []string, stdout, stderr io.Writer) error {
	if err := o.check(); err != nil {
		return usageErr(err, "run 'vzfs freeze --help' for usage")
	}
	link, err := freeze.ParseLink(o.link)
	if err != nil {
		return usageErr(err)
	}
	var mtime *time.Time
	if o.tar != "" || o.oci != "" {
		switch {
		case o.mtime != "":
			t, err := freeze.ParseMtime(o.mtime)
			if err != nil {
				return usageErr(fmt.Errorf("--mtime: %w", err))
			}
			mtime = &t
		case os.Getenv("SOURCE_DATE_EPOCH") != "":
			t, err := freeze.ParseMtime("@" + os.Getenv("SOURCE_DATE_EPOCH"))
			if err != nil {
				return usageErr(fmt.Errorf("SOURCE_DATE_EPOCH: %w", err))
			}
			mtime = &t
		}
	}
	var entrypoint []string
	if o.entrypoint != "" {
		if entrypoint, err = freeze.ParseCommand(o.entrypoint); err != nil {
			return usageErr(fmt.Errorf("--entrypoint: %w", err))
		}
	}

	s, err := spec.ParseFile(args[0])
	if err != nil {
		return usageErr(err)
	}
	if !o.noResolve {
		if err := resolveSpec(g.log, s, o.with); err != nil {
			return err
		}
	}
	tree, err := vfs.NewTree(s, vfs.TreeOptions{SkipMissing: o.skipMissing})
	if err != nil {
		var me *vfs.MissingError
		if errors.As(err, &me) {
			// Exit 2, as for mount and run: nothing was written.
			return usageErr(fmt.Errorf("%s: %w", args[0], err), "pass --skip-missing to freeze without them")
		}
		return failErr(fmt.Errorf("%s: %w", args[0], err))
	}
	for _, m := range tree.Missing() {
		g.log.Warn("spec entry missing on the host; left out", zap.String("path", m.Path))
	}
	for _, u := range tree.Unreachable() {
		g.log.Warn("spec entry below a host symlink or file; reached through the link, not frozen itself", zap.String("path", u))
	}

	prog := newFreezeProgress(stderr)
	var stats freeze.Stats
	var where string
	switch {
	case o.tar == "-":
		where = "stdout"
		prog = nil // the bar would share the terminal with the archive's reader
		stats, err = freeze.ToTar(tree, stdout, freeze.TarOptions{Mtime: mtime, Log: g.log})
	case o.tar != "":
		where = o.tar
		stats, err = freeze.ToTarFile(tree, o.tar, freeze.TarOptions{Mtime: mtime, Log: g.log, Progress: prog.progress()})
	case o.oci != "":
		where = o.oci
		var res freeze.OCIResult
		res, err = freeze.ToOCI(tree, o.oci, freeze.OCIOptions{
			Tag: o.tag, Entrypoint: entrypoint, Env: o.env, WorkDir: o.workdir,
			Mtime: mtime, Log: g.log, Progress: prog.progress(),
		})
		stats = res.Stats
		if err == nil {
			g.log.Info("wrote OCI image", zap.String("tag", res.Tag), zap.String("digest", res.Digest.String()))
		}
	default:
		where = args[1]
		stats, err = freeze.ToDir(tree, args[1], freeze.DirOptions{
			Link: link, Update: o.update, Checksum: o.checksum, Jobs: o.jobs,
			Log: g.log, Progress: prog.progress(),
		})
	}
	prog.finish()
	if err != nil {
		var ee *freeze.ExistsError
		if errors.As(err, &ee) {
			return failErr(err, "pass --update to make it match the spec, or remove it first")
		}
		return failErr(err)
	}
	if stats.Unchanged {
		fmt.Fprintf(stderr, "vzfs: %s already matches %s; nothing written (%s)\n", where, args[0], stats.Elapsed.Round(time.Millisecond))
		return nil
	}
	fmt.Fprintf(stderr, "vzfs: froze %d entries (%d files, %s; %d copied, %d linked, %d skipped) to %s in %s (%s/s)\n",
		stats.Entries, stats.Files, humanBytes(stats.Bytes), stats.Copied, stats.Linked, stats.Skipped, where,
		stats.Elapsed.Round(time.Millisecond), humanBytes(int64(float64(stats.Bytes)/max(stats.Elapsed.Seconds(), 1e-3))))
	return nil
}

// resolveSpec merges the resolver's closure of s into s and logs what it
// added.
func resolveSpec(log *zap.Logger, s *spec.Spec, with string) error {
	extras, err := resolver.ParseExtras(with)
	if err != nil {
		return usageErr(err)
	}
	r, err := resolver.New(resolver.Options{With: extras, Log: log})
	if err != nil {
		return failErr(err)
	}
	added, res, err := r.Complete(s)
	if err != nil {
		return usageErr(err)
	}
	if err := res.Err(); err != nil {
		log.Warn("resolving the spec: " + err.Error())
	}
	if len(added) > 0 {
		log.Info("resolver added entries to the spec", zap.Int("count", len(added)))
		for _, a := range added {
			log.Debug("added", zap.Stringer("entry", a))
		}
	}
	return nil
}

// freezeProgress draws a bar on a terminal: files, bytes and rate.
type freezeProgress struct {
	bar   *progressbar.ProgressBar
	files atomic.Int64
	bytes atomic.Int64
	mu    sync.Mutex
	last  time.Time
}

func newFreezeProgress(w io.Writer) *freezeProgress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(f),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription("freezing"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish(),
	)
	return &freezeProgress{bar: bar}
}

func (p *freezeProgress) progress() freeze.Progress {
	if p == nil {
		return nil
	}
	return p
}

func (p *freezeProgress) Add(entries int, bytes int64) {
	n := p.files.Add(int64(entries))
	b := p.bytes.Add(bytes)
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := time.Now(); now.Sub(p.last) > 100*time.Millisecond {
		p.last = now
		p.bar.Describe(fmt.Sprintf("%d files, %s", n, humanBytes(b)))
	}
	_ = p.bar.Add64(bytes)
}

func (p *freezeProgress) finish() {
	if p != nil {
		_ = p.bar.Finish()
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
