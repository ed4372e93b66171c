package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vzfs/vzfs/resolver"
)

func init() { register(newLddCmd) }

type lddOpts struct {
	output       string
	appendTo     bool
	root         string
	with         string
	libraryPath  string
	explain      bool
	allowMissing bool
	hwcaps       bool
}

func newLddCmd(g *globalOpts) *cobra.Command {
	o := &lddOpts{}
	cmd := &cobra.Command{
		Use:   "ldd [flags] FILE...",
		Short: "Write the spec of the files programs need, without running them",
		Long: `ldd resolves, without running anything, every file the given programs need
and prints it as a spec: the ELF libraries ld.so would load (following glibc's
search order: RPATH, --library-path, RUNPATH, ld.so.cache, default dirs; or
musl's), every symlink on the way to them, the interpreters of #! scripts,
and runtime extras loaded with dlopen.

A FILE without a slash is looked up on PATH. A FILE ending in /** is kept as
a subtree line. Directories and plain files are included as themselves.

Runtime extras (--with, comma-separated; default nss,base):
  base    /dev /proc /sys /tmp /run, /etc/ld.so.cache, libgcc_s.so.1
  nss     /etc/nsswitch.conf, passwd, group, hosts, resolv.conf, libnss_*
  certs   the CA bundle and its symlinks
  locale  locale-archive, C.utf8, gconv modules
  tzdata  /etc/localtime and zoneinfo
  all, none

With --root, resolution happens inside DIR as if it were /: absolute
symlinks are re-rooted and nothing outside DIR is read. Paths in the spec
are as seen inside DIR.

Exit status: 0 on success, 1 if a library could not be found (unless
--allow-missing), 2 for usage errors.`,
		Example: `  # the spec of ls, on stdout
  vzfs ldd ls

  # a spec for a Python program, with its standard library as a subtree
  vzfs ldd -o py.spec /usr/bin/python3 '/usr/lib/python3.11/**'

  # add curl to it, with CA certificates, and say why each line is there
  vzfs ldd -o py.spec --append --with nss,base,certs --explain curl

  # resolve inside a container's root filesystem
  vzfs ldd --root /srv/rootfs /usr/sbin/nginx`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr(errors.New("ldd needs at least one FILE"), "try 'vzfs ldd ls'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLdd(g, o, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "", "write the spec to this file (atomically) instead of stdout")
	f.BoolVar(&o.appendTo, "append", false, "merge into the existing -o file instead of replacing it")
	f.StringVar(&o.root, "root", "/", "resolve inside this directory, as if it were /")
	f.StringVar(&o.with, "with", "nss,base", "runtime extras: base, nss, certs, locale, tzdata, all or none")
	f.StringVar(&o.libraryPath, "library-path", "", "colon-separated directories searched like LD_LIBRARY_PATH")
	f.BoolVar(&o.explain, "explain", false, "print why each entry is there (to stderr, or stdout with -o)")
	f.BoolVar(&o.allowMissing, "allow-missing", false, "exit 0 even if libraries are missing")
	f.BoolVar(&o.hwcaps, "hwcaps", false, "also include glibc-hwcaps variants of libraries")
	return cmd
}

func runLdd(g *globalOpts, o *lddOpts, args []string, stdout, stderr io.Writer) error {
	with, err := resolver.ParseExtras(o.with)
	if err != nil {
		return usageErr(err)
	}
	if o.appendTo && o.output == "" {
		return usageErr(errors.New("--append needs -o SPEC"))
	}
	// A run allocates a few tens of megabytes at most and exits; collecting
	// less often saves a third of its CPU time on a thousand programs.
	debug.SetGCPercent(400)
	var lp []string
	if o.libraryPath != "" {
		lp = filepath.SplitList(o.libraryPath)
	}
	r, err := resolver.New(resolver.Options{Root: o.root, LibraryPath: lp, With: with, HWCaps: o.hwcaps, Log: g.log})
	if err != nil {
		return usageErr(err)
	}
	res, err := r.Resolve(args...)
	if err != nil {
		return usageErr(err)
	}
	out := res.Spec
	if err := writeSpec(out, o.output, o.appendTo, stdout); err != nil {
		return err
	}
	if o.explain {
		w := stderr
		if o.output != "" {
			w = stdout
		}
		for _, e := range res.Spec.Entries {
			fmt.Fprintf(w, "%s\t%s\n", e, strings.Join(res.Why(e.Path), " <- "))
		}
	}
	if err := res.Err(); err != nil {
		if o.allowMissing {
			g.log.Warn(err.Error())
			return nil
		}
		return failErr(err, "pass --allow-missing to write the spec anyway, or --library-path to search more directories")
	}
	return nil
}
