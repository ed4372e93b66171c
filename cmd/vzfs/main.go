// Command vzfs builds minimal chroots and images from spec files: lists of
// the exact host paths a program needs.
//
// The command is a thin layer: each subcommand checks its flags and calls one
// library package (spec, resolver, tracer, fs). Errors are printed in one
// format from one place, here.
package main

import (
	"errors"
	"fmt"
	"os"
)

// Exit codes shared by every subcommand.
const (
	exitOK      = 0
	exitFailure = 1 // the work was done but is incomplete (unresolved libraries, ...)
	exitUsage   = 2 // bad flags, bad spec, bad mountpoint: nothing was done
)

// exitError carries an exit code and optional hints to main.
type exitError struct {
	code  int
	err   error
	hints []string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage error (exit 2), with hints that teach the fix.
func usageErr(err error, hints ...string) error {
	return &exitError{code: exitUsage, err: err, hints: hints}
}

// failErr marks err as a failure of the work itself (exit 1).
func failErr(err error, hints ...string) error {
	return &exitError{code: exitFailure, err: err, hints: hints}
}

// statusErr makes vzfs exit with code without printing anything: the
// command it ran already spoke for itself.
type statusErr int

func (s statusErr) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var st statusErr
	if errors.As(err, &st) {
		return int(st)
	}
	fmt.Fprintf(os.Stderr, "vzfs: error: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		for _, h := range ee.hints {
			fmt.Fprintf(os.Stderr, "vzfs: hint: %s\n", h)
		}
		return ee.code
	}
	// Errors from cobra itself (unknown flag, wrong argument count) are
	// usage errors.
	if isCobraUsage(err) {
		fmt.Fprintf(os.Stderr, "vzfs: hint: run 'vzfs help' for usage\n")
		return exitUsage
	}
	return exitFailure
}
