package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

// globalOpts holds the persistent flags; root's PersistentPreRunE turns them
// into a logger once, so every subcommand gets the same one.
type globalOpts struct {
	logLevel  string
	logFormat string
	logFile   string

	log *zap.Logger
}

// commands lists the subcommand constructors; each command file adds its own
// in init, so commands stay independent of each other.
var commands []func(*globalOpts) *cobra.Command

func register(c func(*globalOpts) *cobra.Command) { commands = append(commands, c) }

func newRootCmd() *cobra.Command {
	g := &globalOpts{}
	root := &cobra.Command{
		Use:   "vzfs",
		Short: "Minimal chroots and images from spec files",
		Long: `vzfs builds chroots and container images that hold exactly the files a
program needs, and nothing else.

The core is the spec: a text file with one absolute host path per line.
'vzfs ldd' writes one from a static ELF closure; the other commands serve,
run or freeze it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(g.logLevel, g.logFormat, g.logFile)
			if err != nil {
				return usageErr(err)
			}
			g.log = log
			return nil
		},
		PersistentPostRun: func(cmd *cobra.Command, args []string) {
			if g.log != nil {
				_ = g.log.Sync()
			}
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text for people, json for machines")
	pf.StringVar(&g.logFile, "log-file", "", "write logs to this file instead of stderr")
	for _, c := range commands {
		root.AddCommand(c(g))
	}
	root.AddCommand(newVersionCmd())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr(err, "run '"+c.CommandPath()+" --help' for usage")
	})
	return root
}

// newLogger builds the zap logger: human-readable text on a terminal,
// JSON for machines.
func newLogger(level, format, file string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.Set(level); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	out := os.Stderr
	if file != "" {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--log-file: %w", err)
		}
		out = f
	}
	switch format {
	case "text", "json":
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	var enc zapcore.Encoder
	if format == "json" {
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	} else {
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		if term.IsTerminal(int(out.Fd())) {
			cfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		enc = zapcore.NewConsoleEncoder(cfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(out), lvl)), nil
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, s := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires exactly", "flag needs an argument", "invalid argument"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// version is set by the Makefile with -ldflags; builds without it fall back
// to the module's build info.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			return "devel-" + rev + dirty
		}
		return bi.Main.Version
	}
	return "unknown"
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print vzfs's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "vzfs", versionString())
		},
	}
}
